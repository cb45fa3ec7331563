//! [`RedisBudgetStore`]: budget counters shared by every instance on one Redis.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use llm_tower_core::{Error, ManualClock, Money};
use llm_tower_layers::cost::{
    BudgetStore, BudgetUsage, MemoryBudgetStore, ReservationId, ReserveOutcome, Settled,
};
use llm_tower_layers::rate_limit::StoreFuture;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::{FailurePolicy, RedisConfig};
use crate::connection::{Failure, RedisConnection};
use crate::keys;
use crate::scripts::{
    self, BUDGET_RESERVE, BUDGET_SETTLE, BUDGET_USAGE, BUDGET_VERSION, ScriptCall,
};
use crate::time::TimeSource;

/// Reservations made by the local fallback carry this prefix, so they are never confused
/// with Redis reservations (whose ids are hexadecimal).
const LOCAL_ID_PREFIX: &str = "local:";
/// Longest reservation TTL handed to a script (µs).
const MAX_TTL_MICROS: u64 = 1 << 51;
/// Most budget counters remembered at once: for the last spend seen in Redis, and for
/// spend waiting to be written to Redis.
pub const MAX_REMEMBERED_COUNTERS: usize = 65_536;
/// Most reservation ids kept per counter in the queue, to release their Redis holds
/// when the spend is replayed (holds beyond that expire by their TTL).
const MAX_RELEASE_IDS: usize = 64;
/// Most counters replayed by one call (concurrently, on the multiplexed connection).
const REPLAY_BATCH: usize = 32;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// How long a settled-spend counter is kept after its last settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retention {
    /// By the period in the tracker's key: hour, day and month counters for their period
    /// plus a day; `total` counters and keys of another shape forever.
    ByPeriod,
    /// This long for every counter but `total` ones (kept forever).
    Fixed(Duration),
}

/// The retention of `key`'s spend, for [`Retention`].
fn retention_of(retention: Retention, key: &str) -> Option<Duration> {
    let period = period_of(key);
    match retention {
        Retention::Fixed(d) => (period != Some("total")).then_some(d),
        Retention::ByPeriod => match period? {
            "hour" => Some(Duration::from_secs(HOUR + DAY)),
            "day" => Some(Duration::from_secs(2 * DAY)),
            // The longest month, plus a day.
            "month" => Some(Duration::from_secs(32 * DAY)),
            _ => None,
        },
    }
}

/// The period of a tracker key, `"{budget}:{scope}:{period}:{period id}"`, possibly with a
/// suffix (such as the tracker's one-time markers, `"{counter key}:alert:{n}"`): the
/// rightmost `{hour|day|month|total}:{digits}` pair after at least two other parts. The
/// budget and scope may contain `:`; the period and its id do not.
fn period_of(key: &str) -> Option<&'static str> {
    const PERIODS: [&str; 4] = ["hour", "day", "month", "total"];
    let parts: Vec<&str> = key.split(':').collect();
    (3..parts.len()).rev().find_map(|i| {
        let id = parts[i];
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        PERIODS.into_iter().find(|p| *p == parts[i - 1])
    })
}

/// Spend settled while Redis was unreachable, merged per counter.
#[derive(Debug, Default)]
struct Queued {
    amount: i64,
    /// Redis reservations it replaces, released when it is replayed.
    release: Vec<String>,
}

#[derive(Default)]
struct Queue {
    entries: HashMap<String, Queued>,
    /// Replayed since the queue was last empty (for the one log line when it empties).
    replayed_counters: u64,
    replayed_amount: i64,
    /// Whether the "too many counters" error was logged since the queue was last empty.
    overflow_logged: bool,
}

#[derive(Default)]
struct Seen {
    /// Budget key -> (the largest spend Redis reported, when it was last reported).
    spent: HashMap<String, (i64, u64)>,
    stamp: u64,
}

/// Budget counters on Redis, shared by every instance that uses the same server and prefix.
///
/// Amounts are integer nano-USD ([`Money`]), added with `INCRBY`/`HINCRBY`. Each operation
/// is one `EVALSHA` of a versioned Lua script:
///
/// - `reserve` holds an amount if `spent + held + amount <= limit`, under a random id,
///   with an expiry (the tracker's reservation TTL) in a sorted set: a reservation whose
///   instance died before settling is released once it expires;
/// - `settle` releases the hold and adds the actual amount, returning the spend before
///   and after from the same atomic step, so an alert threshold is crossed by exactly
///   one settlement across all instances;
/// - `usage` reads spent and held.
///
/// Every script first releases expired reservations, using the server's clock (`TIME`)
/// unless a test clock is set.
///
/// # Retention
/// The tracker puts the period in the key (`"{budget}:{scope}:{period}:{id}"`), and old
/// periods are never read again: by default a counter of an `hour`, `day` or `month`
/// budget expires its period plus one day after its last settlement (the longest month,
/// 31 days, for `month`); `total` counters, and keys of another shape, are kept forever.
/// [`counter_retention`](Self::counter_retention) sets one retention for every counter
/// but `total` ones.
///
/// Exactness: limits are compared in Lua numbers, exact up to 2^53 nano-USD (about
/// 9 million USD) per counter; past that a limited reservation fails with a `Store` error
/// rather than compare inexactly. Unlimited (warn-only) budgets have no such bound.
///
/// # When Redis is unreachable
/// Spend is never dropped: a settlement that cannot be written to Redis (under either
/// policy, or outside a tokio runtime) is queued in memory, merged per counter, and added
/// to Redis (releasing the Redis holds it replaces) by the next call of this store that
/// reaches Redis, before that call's own work. One warning is logged when spend starts
/// being queued and one info line when it has been replayed. Queued spend is lost only if
/// the process exits first ([`queued_counters`](Self::queued_counters) and
/// [`replay_queued`](Self::replay_queued) help at shutdown). At most
/// [`MAX_REMEMBERED_COUNTERS`] counters are queued; spend for more is logged as an error
/// and not recorded in Redis. A settlement that timed out but did run on the server is
/// counted twice (stricter, never looser).
///
/// Under [`FailurePolicy::FailClosed`] the settlement still returns a `Store` error (the
/// spend is queued). Under [`FailurePolicy::FailOpenLocal`], while Redis is unreachable
/// reservations are made in an in-memory store (ids `local:N`) and settled there. Each
/// counter of that store starts from the last spend this instance saw in Redis for it, so
/// an instance can spend at most what was left of a budget when it last reached Redis (a
/// counter it never used since it started begins at zero). A local reservation settled
/// after Redis is back adds its spend to Redis directly.
///
/// # Clone
/// Wrap it in an `Arc` (the tracker's `.store(Arc::new(store))`).
pub struct RedisBudgetStore {
    conn: RedisConnection,
    time: TimeSource,
    local: MemoryBudgetStore,
    retention: Retention,
    id_base: u64,
    id_next: AtomicU64,
    queue: Mutex<Queue>,
    queued: AtomicBool,
    seen: Mutex<Seen>,
}

impl RedisBudgetStore {
    /// A store with its own connection. Does not connect yet (see [`RedisConnection`]).
    ///
    /// # Errors
    /// `Config` when the configuration is invalid.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        Ok(RedisBudgetStore::with_connection(RedisConnection::new(
            config,
        )?))
    }

    /// A store on a shared connection.
    pub fn with_connection(conn: RedisConnection) -> Self {
        RedisBudgetStore {
            conn,
            time: TimeSource::Server,
            local: MemoryBudgetStore::new(),
            retention: Retention::ByPeriod,
            id_base: SmallRng::from_os_rng().random(),
            id_next: AtomicU64::new(1),
            queue: Mutex::new(Queue::default()),
            queued: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Test mode: reservations expire by `clock` (microseconds since it started, plus
    /// [`TEST_CLOCK_OFFSET_MICROS`](crate::TEST_CLOCK_OFFSET_MICROS)) instead of the
    /// server's `TIME`. Never use it in production.
    #[must_use]
    pub fn with_test_clock(mut self, clock: ManualClock) -> Self {
        self.time = TimeSource::Manual(clock);
        self
    }

    /// Lets every settled-spend counter except `total` ones expire once nobody has settled
    /// into it for `retention`, instead of by its period (see the type's docs). Keep it at
    /// least as long as the longest budget period (31 days for `month`), or a counter may
    /// expire before its period ends and its budget start over.
    #[must_use]
    pub fn counter_retention(mut self, retention: Duration) -> Self {
        self.retention = Retention::Fixed(retention.max(Duration::from_millis(1)));
        self
    }

    /// The connection.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    /// The in-memory store used while Redis is unreachable under
    /// [`FailurePolicy::FailOpenLocal`].
    pub fn local(&self) -> &MemoryBudgetStore {
        &self.local
    }

    /// How many counters have spend waiting to be written to Redis.
    pub fn queued_counters(&self) -> usize {
        self.lock_queue().entries.len()
    }

    /// Writes the queued spend to Redis now, as far as Redis answers; returns how many
    /// counters are still queued (0 when everything was written).
    pub async fn replay_queued(&self) -> usize {
        loop {
            let before = self.queued_counters();
            if before == 0 {
                return 0;
            }
            self.replay(None).await;
            let after = self.queued_counters();
            if after >= before {
                return after;
            }
        }
    }

    fn new_id(&self) -> String {
        let n = self.id_next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:x}", self.id_base)
    }

    fn retention_arg(&self, key: &str) -> String {
        retention_of(self.retention, key)
            .map(|r| u64::try_from(r.as_millis()).unwrap_or(u64::MAX).to_string())
            .unwrap_or_default()
    }

    pub(crate) fn reserve_call(
        &self,
        key: &str,
        id: &str,
        amount: Money,
        limit: Money,
        ttl: Duration,
    ) -> ScriptCall {
        let ttl_us = u64::try_from(ttl.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TTL_MICROS);
        let limit = if limit == Money::MAX {
            String::new()
        } else {
            limit.as_nanos().to_string()
        };
        ScriptCall {
            script: &BUDGET_RESERVE,
            keys: keys::budget(self.conn.prefix(), BUDGET_VERSION, key).into(),
            args: vec![
                self.time.arg(),
                id.to_owned(),
                amount.as_nanos().to_string(),
                limit,
                ttl_us.to_string(),
            ],
        }
    }

    pub(crate) fn settle_call(&self, key: &str, id: &str, actual: Money) -> ScriptCall {
        ScriptCall {
            script: &BUDGET_SETTLE,
            keys: keys::budget(self.conn.prefix(), BUDGET_VERSION, key).into(),
            args: vec![
                self.time.arg(),
                id.to_owned(),
                actual.as_nanos().to_string(),
                self.retention_arg(key),
            ],
        }
    }

    /// The settle script with the queued spend of one counter, releasing the holds it
    /// replaces.
    fn replay_call(&self, key: &str, queued: &Queued) -> ScriptCall {
        let mut ids = queued.release.iter();
        let first = ids.next().map_or("-", String::as_str);
        let mut call = self.settle_call(key, first, Money::from_nanos(queued.amount));
        call.args.extend(ids.cloned());
        call
    }

    pub(crate) fn usage_call(&self, key: &str) -> ScriptCall {
        ScriptCall {
            script: &BUDGET_USAGE,
            keys: keys::budget(self.conn.prefix(), BUDGET_VERSION, key).into(),
            args: vec![self.time.arg()],
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers the spend Redis reported for `key` (the largest one: replies may arrive
    /// out of order).
    fn note_spent(&self, key: &str, spent: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.stamp += 1;
        let stamp = seen.stamp;
        if let Some(entry) = seen.spent.get_mut(key) {
            *entry = (entry.0.max(spent), stamp);
            return;
        }
        if seen.spent.len() >= MAX_REMEMBERED_COUNTERS {
            // Forget the counters not reported in the last half of the capacity's updates.
            let keep_from = stamp.saturating_sub(MAX_REMEMBERED_COUNTERS as u64 / 2);
            seen.spent.retain(|_, (_, s)| *s >= keep_from);
        }
        seen.spent.insert(key.to_owned(), (spent, stamp));
    }

    /// Starts the local counter of `key` from the last spend seen in Redis.
    fn seed_local(&self, key: &str) {
        let spent = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spent
            .get(key)
            .map(|(s, _)| *s);
        if let Some(spent) = spent {
            self.local.raise_spent(key, Money::from_nanos(spent));
        }
    }

    /// Keeps `amount` (and the Redis hold `release` it replaces) for `key` until Redis
    /// answers again.
    fn enqueue(&self, key: &str, amount: Money, release: Option<&str>, why: &Error) {
        if amount == Money::ZERO && release.is_none() {
            return;
        }
        let mut q = self.lock_queue();
        let was_empty = q.entries.is_empty();
        if let Some(e) = q.entries.get_mut(key) {
            e.amount = e.amount.saturating_add(amount.as_nanos());
            if let Some(id) = release
                && e.release.len() < MAX_RELEASE_IDS
            {
                e.release.push(id.to_owned());
            }
        } else if q.entries.len() >= MAX_REMEMBERED_COUNTERS {
            metrics::counter!("llm_tower_redis_budget_spend_dropped_total").increment(1);
            if !std::mem::replace(&mut q.overflow_logged, true) {
                drop(q);
                tracing::error!(
                    budget_key = key,
                    amount = %amount,
                    max_counters = MAX_REMEMBERED_COUNTERS,
                    "redis budget store: too many budget counters are waiting for Redis; \
                     spend of further counters is not recorded in Redis"
                );
            }
            return;
        } else {
            q.entries.insert(
                key.to_owned(),
                Queued {
                    amount: amount.as_nanos(),
                    release: release.map(str::to_owned).into_iter().collect(),
                },
            );
        }
        let n = q.entries.len();
        self.queued.store(true, Ordering::Release);
        drop(q);
        metrics::gauge!("llm_tower_redis_budget_queued_counters").set(n as f64);
        if was_empty {
            tracing::warn!(
                prefix = %self.conn.prefix(),
                error = %why,
                "redis budget store: spend could not be written to Redis; it is kept in memory \
                 and added to Redis as soon as Redis answers again (lost if this process exits first)"
            );
        }
    }

    /// Writes queued spend to Redis: `key`'s first (the caller is about to use it), then
    /// up to a batch of others, concurrently. What Redis does not take stays queued.
    async fn replay(&self, key: Option<&str>) {
        if !self.queued.load(Ordering::Acquire) {
            return;
        }
        let batch: Vec<(String, Queued)> = {
            let mut q = self.lock_queue();
            let mut batch = Vec::with_capacity(REPLAY_BATCH);
            if let Some(own) = key.and_then(|k| q.entries.remove_entry(k)) {
                batch.push(own);
            }
            let room = REPLAY_BATCH - batch.len();
            batch.extend(q.entries.extract_if(|_, _| true).take(room));
            batch
        };
        if batch.is_empty() {
            return;
        }
        let calls: Vec<ScriptCall> = batch.iter().map(|(k, q)| self.replay_call(k, q)).collect();
        let results = futures_util::future::join_all(calls.iter().map(|c| self.conn.run(c))).await;
        let mut replayed = (0u64, 0i64);
        let mut retry = Vec::new();
        for ((key, queued), (call, result)) in batch.into_iter().zip(calls.iter().zip(results)) {
            match result.and_then(|reply| {
                let label = call.label();
                let items = scripts::array(&label, reply).map_err(Failure::Reply)?;
                scripts::int(&label, &items, 0).map_err(Failure::Reply)
            }) {
                Ok(before) => {
                    self.note_spent(&key, before.saturating_add(queued.amount));
                    replayed.0 += 1;
                    replayed.1 = replayed.1.saturating_add(queued.amount);
                }
                Err(Failure::Unavailable(_)) => retry.push((key, queued)),
                Err(Failure::Reply(e)) => {
                    metrics::counter!("llm_tower_redis_budget_spend_dropped_total").increment(1);
                    tracing::error!(
                        budget_key = %key,
                        amount = %Money::from_nanos(queued.amount),
                        error = %e,
                        "redis budget store: Redis refused queued spend; it is not recorded in Redis"
                    );
                }
            }
        }
        let mut q = self.lock_queue();
        for (key, queued) in retry {
            let e = q.entries.entry(key).or_default();
            e.amount = e.amount.saturating_add(queued.amount);
            let room = MAX_RELEASE_IDS.saturating_sub(e.release.len());
            e.release.extend(queued.release.into_iter().take(room));
        }
        q.replayed_counters += replayed.0;
        q.replayed_amount = q.replayed_amount.saturating_add(replayed.1);
        let n = q.entries.len();
        if n > 0 {
            return;
        }
        self.queued.store(false, Ordering::Release);
        let (counters, amount) = (q.replayed_counters, q.replayed_amount);
        q.replayed_counters = 0;
        q.replayed_amount = 0;
        q.overflow_logged = false;
        drop(q);
        metrics::gauge!("llm_tower_redis_budget_queued_counters").set(0.0);
        if counters > 0 {
            tracing::info!(
                prefix = %self.conn.prefix(),
                counters,
                amount = %Money::from_nanos(amount),
                "redis budget store: spend queued while Redis was unreachable has been added to Redis"
            );
        }
    }

    fn fallback(&self, e: Error) -> Result<(), Error> {
        match self.conn.failure_policy() {
            FailurePolicy::FailClosed => Err(e),
            FailurePolicy::FailOpenLocal => {
                metrics::counter!("llm_tower_redis_local_decisions_total", "store" => "budget")
                    .increment(1);
                Ok(())
            }
        }
    }

    async fn reserve_inner(
        &self,
        key: &str,
        amount: Money,
        limit: Money,
        ttl: Duration,
    ) -> Result<ReserveOutcome, Error> {
        self.replay(Some(key)).await;
        let id = self.new_id();
        let call = self.reserve_call(key, &id, amount, limit, ttl);
        match self.conn.run(&call).await {
            Ok(reply) => {
                let label = call.label();
                let items = scripts::array(&label, reply)?;
                match scripts::int(&label, &items, 0)? {
                    1 => {
                        if let Ok(spent) = scripts::int(&label, &items, 1) {
                            self.note_spent(key, spent);
                        }
                        Ok(ReserveOutcome::Reserved(ReservationId(id)))
                    }
                    0 => {
                        let spent = scripts::int(&label, &items, 1)?;
                        self.note_spent(key, spent);
                        Ok(ReserveOutcome::Exceeded {
                            spent: Money::from_nanos(spent),
                            reserved: Money::from_nanos(scripts::int(&label, &items, 2)?),
                        })
                    }
                    other => Err(Error::store(format!(
                        "unexpected reply from the redis {label} script: unknown code {other}"
                    ))),
                }
            }
            Err(Failure::Reply(e)) => Err(e),
            Err(Failure::Unavailable(e)) => {
                self.fallback(e)?;
                self.seed_local(key);
                Ok(match self.local.reserve_now(key, amount, limit) {
                    ReserveOutcome::Reserved(ReservationId(n)) => {
                        ReserveOutcome::Reserved(ReservationId(format!("{LOCAL_ID_PREFIX}{n}")))
                    }
                    exceeded => exceeded,
                })
            }
        }
    }

    async fn settle_redis(&self, key: &str, id: &str, actual: Money) -> Result<Settled, Failure> {
        let call = self.settle_call(key, id, actual);
        let reply = self.conn.run(&call).await?;
        let label = call.label();
        let items = scripts::array(&label, reply).map_err(Failure::Reply)?;
        let before = scripts::int(&label, &items, 0).map_err(Failure::Reply)?;
        let after = before.checked_add(actual.as_nanos()).ok_or_else(|| {
            Failure::Reply(Error::store(format!(
                "redis {label}: spend overflows ({before} + {})",
                actual.as_nanos()
            )))
        })?;
        self.note_spent(key, after);
        Ok(Settled {
            before: Money::from_nanos(before),
            after: Money::from_nanos(after),
        })
    }

    async fn settle_inner(
        &self,
        key: &str,
        id: &ReservationId,
        actual: Money,
    ) -> Result<Settled, Error> {
        self.replay(Some(key)).await;
        if let Some(local) = id.0.strip_prefix(LOCAL_ID_PREFIX) {
            // Held locally during an outage: release it here, and count the spend in Redis
            // (queued if Redis is still away; counted here too meanwhile).
            let local = ReservationId(local.to_owned());
            return match self.settle_redis(key, &id.0, actual).await {
                Ok(settled) => {
                    self.local.settle_now(key, &local, Money::ZERO);
                    Ok(settled)
                }
                Err(Failure::Unavailable(e)) => {
                    self.enqueue(key, actual, None, &e);
                    self.seed_local(key);
                    Ok(self.local.settle_now(key, &local, actual))
                }
                Err(Failure::Reply(e)) => {
                    self.local.settle_now(key, &local, Money::ZERO);
                    Err(e)
                }
            };
        }
        match self.settle_redis(key, &id.0, actual).await {
            Ok(settled) => Ok(settled),
            Err(Failure::Reply(e)) => Err(e),
            Err(Failure::Unavailable(e)) => {
                self.enqueue(key, actual, Some(&id.0), &e);
                let e = Error::store(format!(
                    "{}; the spend ({actual}) is kept and added to Redis once it answers",
                    e.message()
                ));
                self.fallback(e)?;
                // Counted here too, so the local fallback sees it during the outage.
                self.seed_local(key);
                Ok(self
                    .local
                    .settle_now(key, &ReservationId("-".to_owned()), actual))
            }
        }
    }

    async fn usage_inner(&self, key: &str) -> Result<BudgetUsage, Error> {
        self.replay(Some(key)).await;
        let call = self.usage_call(key);
        match self.conn.run(&call).await {
            Ok(reply) => {
                let label = call.label();
                let items = scripts::array(&label, reply)?;
                let spent = scripts::int(&label, &items, 0)?;
                self.note_spent(key, spent);
                Ok(BudgetUsage {
                    spent: Money::from_nanos(spent),
                    reserved: Money::from_nanos(scripts::int(&label, &items, 1)?),
                })
            }
            Err(Failure::Reply(e)) => Err(e),
            Err(Failure::Unavailable(e)) => {
                self.fallback(e)?;
                self.seed_local(key);
                Ok(self.local.usage_now(key))
            }
        }
    }
}

impl fmt::Debug for RedisBudgetStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBudgetStore")
            .field("connection", &self.conn)
            .field("retention", &self.retention)
            .field("queued_counters", &self.queued_counters())
            .field("test_clock", &matches!(self.time, TimeSource::Manual(_)))
            .finish()
    }
}

impl BudgetStore for RedisBudgetStore {
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        amount: Money,
        limit: Money,
        ttl: Duration,
    ) -> StoreFuture<'a, ReserveOutcome> {
        Box::pin(self.reserve_inner(key, amount, limit, ttl))
    }

    fn settle<'a>(
        &'a self,
        key: &'a str,
        id: &'a ReservationId,
        actual: Money,
    ) -> StoreFuture<'a, Settled> {
        Box::pin(self.settle_inner(key, id, actual))
    }

    fn usage<'a>(&'a self, key: &'a str) -> StoreFuture<'a, BudgetUsage> {
        Box::pin(self.usage_inner(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockConnection;
    use redis::Value;

    fn store() -> RedisBudgetStore {
        RedisBudgetStore::new(&RedisConfig::new("redis://127.0.0.1:1/").prefix("pfx"))
            .unwrap()
            .with_test_clock(ManualClock::new())
    }

    #[test]
    fn reserve_call_carries_amount_limit_and_ttl() {
        let s = store();
        let call = s.reserve_call(
            "monthly::month:673",
            "abc1",
            Money::from_nanos(150),
            Money::from_usd(100),
            Duration::from_secs(600),
        );
        assert_eq!(call.label(), "budget_reserve v1");
        assert_eq!(
            call.keys,
            [
                "pfx:v1:{b:monthly::month:673}:spent",
                "pfx:v1:{b:monthly::month:673}:holds",
                "pfx:v1:{b:monthly::month:673}:exp"
            ]
        );
        assert_eq!(
            call.args,
            [
                "1000000000000000",
                "abc1",
                "150",
                "100000000000",
                "600000000"
            ]
        );
        let unlimited = s.reserve_call(
            "k",
            "abc2",
            Money::from_nanos(1),
            Money::MAX,
            Duration::from_secs(1),
        );
        assert_eq!(unlimited.args[3], "", "warn-only budgets pass no limit");
    }

    #[test]
    fn settle_and_usage_calls() {
        let s = store().counter_retention(Duration::from_secs(90 * 86_400));
        let call = s.settle_call("k", "abc1", Money::from_nanos(-3));
        assert_eq!(call.label(), "budget_settle v1");
        assert_eq!(call.args, ["1000000000000000", "abc1", "-3", "7776000000"]);
        assert_eq!(store().settle_call("k", "x", Money::ZERO).args[3], "");
        let call = s.usage_call("k");
        assert_eq!(call.label(), "budget_usage v1");
        assert_eq!(call.args, ["1000000000000000"]);
    }

    #[test]
    fn reservation_ids_are_unique_hex_and_never_look_local() {
        let s = store();
        let a = s.new_id();
        let b = s.new_id();
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert!(!a.starts_with(LOCAL_ID_PREFIX));
        assert_ne!(store().new_id(), a, "two stores draw different bases");
    }

    #[test]
    fn counters_are_kept_for_their_period_plus_a_day_by_default() {
        assert_eq!(period_of("daily::day:20000"), Some("day"));
        assert_eq!(period_of("b:a:b:c:month:673"), Some("month"));
        assert_eq!(
            period_of("b:x:month:7:day:5"),
            Some("day"),
            "the rightmost pair"
        );
        assert_eq!(period_of("daily::day:20000:alert:1000"), Some("day"));
        assert_eq!(period_of("k"), None);
        assert_eq!(period_of("a:day:"), None);
        assert_eq!(period_of("day:1"), None);
        let h = |s| Some(Duration::from_secs(s));
        let by = Retention::ByPeriod;
        assert_eq!(retention_of(by, "x:caller:hour:5"), h(25 * 3600));
        assert_eq!(retention_of(by, "x::day:5"), h(2 * 86_400));
        assert_eq!(retention_of(by, "x::month:5"), h(32 * 86_400));
        assert_eq!(retention_of(by, "x::total:0"), None);
        assert_eq!(retention_of(by, "custom"), None);
        let fixed = Retention::Fixed(Duration::from_secs(40 * 86_400));
        assert_eq!(retention_of(fixed, "x::hour:5"), h(40 * 86_400));
        assert_eq!(retention_of(fixed, "custom"), h(40 * 86_400));
        assert_eq!(
            retention_of(fixed, "x::total:0"),
            None,
            "total is never expired"
        );
        let s = store();
        assert_eq!(
            s.settle_call("b::day:1", "i", Money::ZERO).args[3],
            "172800000"
        );
        assert_eq!(s.settle_call("b::total:0", "i", Money::ZERO).args[3], "");
    }

    #[test]
    fn queued_spend_merges_per_counter_and_replays_in_one_call() {
        let s = store();
        let why = Error::store("down");
        s.enqueue("k", Money::from_nanos(5), Some("aa1"), &why);
        s.enqueue("k", Money::from_nanos(7), None, &why);
        s.enqueue("k", Money::ZERO, Some("aa2"), &why);
        s.enqueue("other", Money::ZERO, None, &why);
        assert_eq!(s.queued_counters(), 1, "nothing to record is not queued");
        for i in 0..2 * MAX_RELEASE_IDS {
            s.enqueue("k", Money::from_nanos(1), Some(&format!("r{i}")), &why);
        }
        let q = s.lock_queue();
        let k = &q.entries["k"];
        assert_eq!(k.amount, 12 + 2 * MAX_RELEASE_IDS as i64);
        assert_eq!(k.release.len(), MAX_RELEASE_IDS, "bounded");
        let call = s.replay_call("k", k);
        assert_eq!(call.label(), "budget_settle v1");
        assert_eq!(call.args[1], "aa1");
        assert_eq!(call.args[2], (12 + 2 * MAX_RELEASE_IDS).to_string());
        assert_eq!(call.args[4], "aa2");
        assert_eq!(call.args.len(), 3 + MAX_RELEASE_IDS);
        let none = s.replay_call("k", &Queued::default());
        assert_eq!(none.args[1], "-");
    }

    #[test]
    fn the_last_spend_seen_seeds_the_local_fallback() {
        let s = store();
        s.note_spent("k", 600);
        s.note_spent("k", 500);
        s.seed_local("k");
        s.seed_local("unknown");
        assert_eq!(s.local().usage_now("k").spent, Money::from_nanos(600));
        assert_eq!(s.local().usage_now("unknown").spent, Money::ZERO);
        for i in 0..MAX_REMEMBERED_COUNTERS + 10 {
            s.note_spent(&format!("c{i}"), 1);
        }
        let seen = s.seen.lock().unwrap();
        assert!(seen.spent.len() <= MAX_REMEMBERED_COUNTERS, "bounded");
        assert!(
            seen.spent
                .contains_key(&format!("c{}", MAX_REMEMBERED_COUNTERS + 9))
        );
    }

    #[test]
    fn calls_outside_a_runtime_fail_without_panicking_and_queue_the_spend() {
        use futures_util::FutureExt;
        let s = RedisBudgetStore::new(&RedisConfig::new("redis://127.0.0.1:1/")).unwrap();
        let id = ReservationId("abc1".to_owned());
        let e = s
            .settle("k", &id, Money::from_nanos(9))
            .now_or_never()
            .expect("completes at once")
            .unwrap_err();
        assert!(e.to_string().contains("outside a tokio runtime"), "{e}");
        assert!(s.connection().is_up(), "not an outage");
        assert_eq!(s.queued_counters(), 1);
        let open = RedisBudgetStore::new(
            &RedisConfig::new("redis://127.0.0.1:1/").failure_policy(FailurePolicy::FailOpenLocal),
        )
        .unwrap();
        let settled = open
            .settle("k", &id, Money::from_nanos(9))
            .now_or_never()
            .expect("completes at once")
            .unwrap();
        assert_eq!(settled.after, Money::from_nanos(9));
        assert_eq!(open.queued_counters(), 1);
    }

    #[tokio::test]
    async fn settle_reply_is_decoded_exactly() {
        let s = store();
        let call = s.settle_call("k", "id", Money::from_nanos(40));
        let mut conn = MockConnection::new(vec![Ok(Value::Array(vec![
            Value::BulkString(b"9007199254740993".to_vec()),
            Value::Int(1),
        ]))]);
        let reply = call.invoke(&mut conn).await.unwrap();
        let items = scripts::array("t", reply).unwrap();
        assert_eq!(
            scripts::int("t", &items, 0).unwrap(),
            9_007_199_254_740_993,
            "strings keep i64 exact"
        );
        let sent = conn.sent();
        assert_eq!(sent[0][0], "EVALSHA");
        assert_eq!(sent[0][1], BUDGET_SETTLE.script.get_hash());
        assert_eq!(sent[0][2], "3");
    }
}
