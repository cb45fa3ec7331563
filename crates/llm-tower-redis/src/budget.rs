//! [`RedisBudgetStore`]: budget counters shared by every instance on one Redis.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
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
/// # Failure policy
/// Under [`FailurePolicy::FailOpenLocal`], while Redis is unreachable reservations are
/// made in an in-memory store (ids `local:N`) and settled there; a local reservation settled
/// after Redis is back adds its actual spend to Redis. A Redis reservation settled during
/// an outage adds its spend locally, and its Redis hold expires by its TTL.
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

    pub(crate) fn usage_call(&self, key: &str) -> ScriptCall {
        ScriptCall {
            script: &BUDGET_USAGE,
            keys: keys::budget(self.conn.prefix(), BUDGET_VERSION, key).into(),
            args: vec![self.time.arg()],
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
        let id = self.new_id();
        let call = self.reserve_call(key, &id, amount, limit, ttl);
        match self.conn.run(&call).await {
            Ok(reply) => {
                let label = call.label();
                let items = scripts::array(&label, reply)?;
                match scripts::int(&label, &items, 0)? {
                    1 => Ok(ReserveOutcome::Reserved(ReservationId(id))),
                    0 => Ok(ReserveOutcome::Exceeded {
                        spent: Money::from_nanos(scripts::int(&label, &items, 1)?),
                        reserved: Money::from_nanos(scripts::int(&label, &items, 2)?),
                    }),
                    other => Err(Error::store(format!(
                        "unexpected reply from the redis {label} script: unknown code {other}"
                    ))),
                }
            }
            Err(Failure::Reply(e)) => Err(e),
            Err(Failure::Unavailable(e)) => {
                self.fallback(e)?;
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
        if let Some(local) = id.0.strip_prefix(LOCAL_ID_PREFIX) {
            // Held locally during an outage: release it here, and count the spend in Redis
            // if Redis is back (else here).
            let local = ReservationId(local.to_owned());
            return match self.settle_redis(key, &id.0, actual).await {
                Ok(settled) => {
                    self.local.settle_now(key, &local, Money::ZERO);
                    Ok(settled)
                }
                Err(Failure::Unavailable(_)) => Ok(self.local.settle_now(key, &local, actual)),
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
                self.fallback(e)?;
                // The Redis hold expires by its TTL; the spend is counted here meanwhile.
                Ok(self
                    .local
                    .settle_now(key, &ReservationId("-".to_owned()), actual))
            }
        }
    }

    async fn usage_inner(&self, key: &str) -> Result<BudgetUsage, Error> {
        let call = self.usage_call(key);
        match self.conn.run(&call).await {
            Ok(reply) => {
                let label = call.label();
                let items = scripts::array(&label, reply)?;
                Ok(BudgetUsage {
                    spent: Money::from_nanos(scripts::int(&label, &items, 0)?),
                    reserved: Money::from_nanos(scripts::int(&label, &items, 1)?),
                })
            }
            Err(Failure::Reply(e)) => Err(e),
            Err(Failure::Unavailable(e)) => {
                self.fallback(e)?;
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
