//! Where budget counters live: the [`BudgetStore`] trait and the in-memory store.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use llm_tower_core::Money;

use crate::rate_limit::StoreFuture;

/// Identifies one reservation within a budget counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReservationId(pub String);

/// The result of a reservation attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The amount is held.
    Reserved(ReservationId),
    /// It does not fit: `spent + reserved + amount > limit`. Nothing was held.
    Exceeded {
        /// Settled spend in the period.
        spent: Money,
        /// Spend held by requests in flight.
        reserved: Money,
    },
}

/// Settled spend before and after one settlement, from one atomic update, so alert
/// thresholds are crossed by exactly one settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Spend before.
    pub before: Money,
    /// Spend after.
    pub after: Money,
}

/// A budget counter's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetUsage {
    /// Settled spend.
    pub spent: Money,
    /// Held by requests in flight.
    pub reserved: Money,
}

/// Where budget counters live. `key` names one budget, scope value and period.
///
/// Implementations must make `reserve` and `settle` atomic: concurrent reservations can
/// never hold more than `limit - spent`, and a settlement replaces its reservation with
/// the real amount in one step. Reservations not settled within `ttl` are released (an
/// instance that died must not leak held spend).
pub trait BudgetStore: Send + Sync + fmt::Debug + 'static {
    /// Holds `amount` if `spent + reserved + amount <= limit`.
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        amount: Money,
        limit: Money,
        ttl: Duration,
    ) -> StoreFuture<'a, ReserveOutcome>;

    /// Releases the reservation and adds `actual` to the spend.
    fn settle<'a>(
        &'a self,
        key: &'a str,
        id: &'a ReservationId,
        actual: Money,
    ) -> StoreFuture<'a, Settled>;

    /// The counter's state.
    fn usage<'a>(&'a self, key: &'a str) -> StoreFuture<'a, BudgetUsage>;

    /// Claims the one-time marker `key`: `true` for exactly one claim per key, across
    /// every instance sharing the store. The tracker claims `<counter key>:alert:1000`
    /// before delivering a budget's 100 % alert, so that alert goes out once per period
    /// whether a settlement crosses the limit or a refused reservation finds it exhausted.
    ///
    /// The provided implementation needs nothing beyond the atomic `reserve` and
    /// `settle`: it reserves 1 nano-USD against a limit of 1 nano-USD on `key` and settles
    /// it, after which the marker's counter is full and every later claim is refused.
    /// (`ttl` bounds the hold between the two steps.) A store may override it with a
    /// native set-if-absent; the marker must live at least as long as the counter it
    /// marks.
    fn claim_once<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let one = Money::from_nanos(1);
            match self.reserve(key, one, one, ttl).await? {
                ReserveOutcome::Reserved(id) => {
                    self.settle(key, &id, one).await?;
                    Ok(true)
                }
                ReserveOutcome::Exceeded { .. } => Ok(false),
            }
        })
    }
}

impl<T: BudgetStore + ?Sized> BudgetStore for std::sync::Arc<T> {
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        amount: Money,
        limit: Money,
        ttl: Duration,
    ) -> StoreFuture<'a, ReserveOutcome> {
        (**self).reserve(key, amount, limit, ttl)
    }
    fn settle<'a>(
        &'a self,
        key: &'a str,
        id: &'a ReservationId,
        actual: Money,
    ) -> StoreFuture<'a, Settled> {
        (**self).settle(key, id, actual)
    }
    fn usage<'a>(&'a self, key: &'a str) -> StoreFuture<'a, BudgetUsage> {
        (**self).usage(key)
    }
    fn claim_once<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, bool> {
        (**self).claim_once(key, ttl)
    }
}

#[derive(Default)]
struct Counter {
    spent: Money,
    reserved: Money,
    holds: HashMap<u64, Money>,
}

/// Budget counters in this process's memory. Reservations live until settled (the
/// process that holds them is the one that settles them).
#[derive(Default)]
pub struct MemoryBudgetStore {
    counters: Mutex<HashMap<String, Counter>>,
    next: AtomicU64,
}

impl MemoryBudgetStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryBudgetStore::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Counter>) -> R) -> R {
        let mut g = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut g)
    }

    /// Reserves synchronously (the trait method wraps this).
    pub fn reserve_now(&self, key: &str, amount: Money, limit: Money) -> ReserveOutcome {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.with(|m| {
            let c = match m.get_mut(key) {
                Some(c) => c,
                None => m.entry(key.to_owned()).or_default(),
            };
            if c.spent.saturating_add(c.reserved).saturating_add(amount) > limit {
                return ReserveOutcome::Exceeded {
                    spent: c.spent,
                    reserved: c.reserved,
                };
            }
            c.reserved += amount;
            c.holds.insert(id, amount);
            ReserveOutcome::Reserved(ReservationId(id.to_string()))
        })
    }

    /// Settles synchronously (the trait method wraps this).
    pub fn settle_now(&self, key: &str, id: &ReservationId, actual: Money) -> Settled {
        self.with(|m| {
            let c = match m.get_mut(key) {
                Some(c) => c,
                None => m.entry(key.to_owned()).or_default(),
            };
            if let Some(held) = id.0.parse::<u64>().ok().and_then(|n| c.holds.remove(&n)) {
                c.reserved = c.reserved.saturating_sub(held);
            }
            let before = c.spent;
            c.spent += actual;
            Settled {
                before,
                after: c.spent,
            }
        })
    }

    /// Raises the counter's settled spend to at least `spent` (never lowers it). A shared
    /// store's local fallback uses it to start from the last spend the shared store
    /// reported, instead of from zero.
    pub fn raise_spent(&self, key: &str, spent: Money) {
        self.with(|m| {
            let c = match m.get_mut(key) {
                Some(c) => c,
                None => m.entry(key.to_owned()).or_default(),
            };
            if c.spent < spent {
                c.spent = spent;
            }
        });
    }

    /// The counter's state, synchronously.
    pub fn usage_now(&self, key: &str) -> BudgetUsage {
        self.with(|m| {
            m.get(key)
                .map(|c| BudgetUsage {
                    spent: c.spent,
                    reserved: c.reserved,
                })
                .unwrap_or_default()
        })
    }
}

impl fmt::Debug for MemoryBudgetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.with(|m| m.len());
        f.debug_struct("MemoryBudgetStore")
            .field("counters", &n)
            .finish()
    }
}

impl BudgetStore for MemoryBudgetStore {
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        amount: Money,
        limit: Money,
        _ttl: Duration,
    ) -> StoreFuture<'a, ReserveOutcome> {
        Box::pin(std::future::ready(Ok(self.reserve_now(key, amount, limit))))
    }

    fn settle<'a>(
        &'a self,
        key: &'a str,
        id: &'a ReservationId,
        actual: Money,
    ) -> StoreFuture<'a, Settled> {
        Box::pin(std::future::ready(Ok(self.settle_now(key, id, actual))))
    }

    fn usage<'a>(&'a self, key: &'a str) -> StoreFuture<'a, BudgetUsage> {
        Box::pin(std::future::ready(Ok(self.usage_now(key))))
    }
}

/// The conformance suite every [`BudgetStore`] must pass. Each case uses keys starting
/// with `prefix` so a shared server can run it repeatedly.
pub mod conformance {
    use super::*;
    use std::sync::Arc;

    async fn reserve(s: &dyn BudgetStore, key: &str, amount: i64, limit: i64) -> ReserveOutcome {
        match s
            .reserve(
                key,
                Money::from_nanos(amount),
                Money::from_nanos(limit),
                Duration::from_secs(60),
            )
            .await
        {
            Ok(o) => o,
            Err(e) => panic!("reserve failed: {e}"),
        }
    }

    async fn settle(s: &dyn BudgetStore, key: &str, id: &ReservationId, actual: i64) -> Settled {
        match s.settle(key, id, Money::from_nanos(actual)).await {
            Ok(o) => o,
            Err(e) => panic!("settle failed: {e}"),
        }
    }

    /// Runs every case.
    pub async fn run(store: Arc<dyn BudgetStore>, prefix: &str) {
        reserve_settle_round_trip(&*store, &format!("{prefix}:a")).await;
        reservations_count_against_the_limit(&*store, &format!("{prefix}:b")).await;
        concurrent_reservations_never_exceed(store.clone(), &format!("{prefix}:c")).await;
        a_marker_is_claimed_once(store.clone(), &format!("{prefix}:d")).await;
    }

    /// 50 concurrent claims of one marker: exactly one wins; other markers are separate.
    pub async fn a_marker_is_claimed_once(s: Arc<dyn BudgetStore>, key: &str) {
        let futs = (0..50).map(|_| {
            let s = s.clone();
            let key = key.to_owned();
            async move { s.claim_once(&key, Duration::from_secs(60)).await }
        });
        let won = futures_util::future::join_all(futs)
            .await
            .into_iter()
            .filter(|r| matches!(r, Ok(true)))
            .count();
        assert_eq!(won, 1, "exactly one claim of {key:?} wins");
        assert!(
            matches!(
                s.claim_once(&format!("{key}:other"), Duration::from_secs(60))
                    .await,
                Ok(true)
            ),
            "another marker is claimed separately"
        );
    }

    /// Reserve 100, settle 60: spent 60, nothing held; before/after reported.
    pub async fn reserve_settle_round_trip(s: &dyn BudgetStore, key: &str) {
        let ReserveOutcome::Reserved(id) = reserve(s, key, 100, 1000).await else {
            panic!("should fit")
        };
        let u = s.usage(key).await.unwrap_or_default();
        assert_eq!(u.reserved, Money::from_nanos(100));
        let st = settle(s, key, &id, 60).await;
        assert_eq!((st.before, st.after), (Money::ZERO, Money::from_nanos(60)));
        let u = s.usage(key).await.unwrap_or_default();
        assert_eq!((u.spent, u.reserved), (Money::from_nanos(60), Money::ZERO));
    }

    /// Held amounts block new reservations until settled; an exceeded reservation holds nothing.
    pub async fn reservations_count_against_the_limit(s: &dyn BudgetStore, key: &str) {
        let ReserveOutcome::Reserved(a) = reserve(s, key, 600, 1000).await else {
            panic!("a should fit")
        };
        match reserve(s, key, 500, 1000).await {
            ReserveOutcome::Exceeded { spent, reserved } => {
                assert_eq!((spent, reserved), (Money::ZERO, Money::from_nanos(600)));
            }
            o => panic!("b should not fit: {o:?}"),
        }
        settle(s, key, &a, 100).await;
        assert!(matches!(
            reserve(s, key, 900, 1000).await,
            ReserveOutcome::Reserved(_)
        ));
        assert!(matches!(
            reserve(s, key, 1, 1000).await,
            ReserveOutcome::Exceeded { .. }
        ));
    }

    /// 500 concurrent reservations of 7 against 1000: exactly 142 fit.
    pub async fn concurrent_reservations_never_exceed(s: Arc<dyn BudgetStore>, key: &str) {
        let futs = (0..500).map(|_| {
            let s = s.clone();
            let key = key.to_owned();
            async move { reserve(&*s, &key, 7, 1000).await }
        });
        let out = futures_util::future::join_all(futs).await;
        let ok = out
            .iter()
            .filter(|o| matches!(o, ReserveOutcome::Reserved(_)))
            .count();
        assert_eq!(ok, 142);
    }

    #[cfg(test)]
    mod tests {
        #[tokio::test]
        async fn memory_budget_store_passes_conformance() {
            super::run(std::sync::Arc::new(super::MemoryBudgetStore::new()), "t").await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_spent_only_raises_and_keeps_holds() {
        let s = MemoryBudgetStore::new();
        let limit = Money::from_nanos(1_000);
        let ReserveOutcome::Reserved(id) = s.reserve_now("k", Money::from_nanos(100), limit) else {
            panic!("fits")
        };
        s.raise_spent("k", Money::from_nanos(600));
        s.raise_spent("k", Money::from_nanos(400));
        let u = s.usage_now("k");
        assert_eq!(
            (u.spent, u.reserved),
            (Money::from_nanos(600), Money::from_nanos(100))
        );
        assert!(matches!(
            s.reserve_now("k", Money::from_nanos(301), limit),
            ReserveOutcome::Exceeded { .. }
        ));
        let st = s.settle_now("k", &id, Money::from_nanos(50));
        assert_eq!(st.after, Money::from_nanos(650));
        s.raise_spent("new", Money::from_nanos(7));
        assert_eq!(s.usage_now("new").spent, Money::from_nanos(7));
    }
}
