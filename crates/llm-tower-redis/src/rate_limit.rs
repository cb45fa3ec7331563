//! [`RedisRateLimitStore`]: rate-limit decisions shared by every instance on one Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::{Error, ManualClock, TokioClock};
use llm_tower_layers::rate_limit::{
    Acquire, Algorithm, Decision, MemoryStore, RateLimitStore, StoreFuture,
};

use crate::config::{FailurePolicy, RedisConfig};
use crate::connection::{Failure, RedisConnection};
use crate::keys;
use crate::scripts::{
    self, LEAKY_BUCKET, LEAKY_BUCKET_VERSION, SLIDING_WINDOW, SLIDING_WINDOW_VERSION, ScriptCall,
};
use crate::time::TimeSource;

/// Largest time span (µs) handed to a script: Lua numbers are exact to 2^53, and times
/// (about 2^51 µs since 1970) plus spans must stay below that.
const MAX_SPAN_MICROS: u64 = 1 << 51;
/// Largest limit, weight or burst handed to a script: a count plus a weight (each at most
/// the limit) then stays <= 2^53, where Lua numbers are still exact.
const MAX_UNITS: u64 = 1 << 52;
/// Lua numbers (doubles) hold every integer up to this exactly.
const EXACT_LIMIT: u64 = 1 << 53;

/// Rate-limit state on Redis, shared by every instance that uses the same server and
/// prefix.
///
/// Each decision is one `EVALSHA` of a versioned Lua script that reads the server's clock
/// (`TIME`, microseconds), so instances with skewed clocks agree, and that checks and
/// records atomically, so concurrent instances never admit more than the limit together.
/// The semantics are those of the in-memory store (`llm_tower_layers::rate_limit::
/// MemoryStore`), at microsecond resolution:
///
/// - sliding window: an exact log in a Redis list of `time:weight` entries plus a running
///   total; closed window; denied requests are not recorded; waiting callers get FIFO
///   slots; entries at the same microsecond are merged. Memory: one entry per admitted
///   request (or microsecond) inside the window.
/// - leaky bucket: GCRA on one integer (the theoretical arrival time).
///
/// A request heavier than the limit is answered `TooHeavy` without a round trip. Keys
/// expire by themselves once idle (window or drain time, plus a second).
///
/// # Errors
/// `Store` when Redis fails and the policy is [`FailurePolicy::FailClosed`] (or Redis
/// answers with an error about the call itself); `Config` when a limit does not fit the
/// script's exact integer range (windows and periods up to about 71 years, limits up to 2^52).
///
/// # Clone
/// Wrap it in an `Arc` (the layer's `.store(Arc::new(store))`); clones of the
/// [`RedisConnection`] share one connection and one health state.
pub struct RedisRateLimitStore {
    conn: RedisConnection,
    time: TimeSource,
    local: MemoryStore,
}

impl RedisRateLimitStore {
    /// A store with its own connection. Does not connect yet (see [`RedisConnection`]).
    ///
    /// # Errors
    /// `Config` when the configuration is invalid.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        Ok(RedisRateLimitStore::with_connection(RedisConnection::new(
            config,
        )?))
    }

    /// A store on a shared connection.
    pub fn with_connection(conn: RedisConnection) -> Self {
        RedisRateLimitStore {
            conn,
            time: TimeSource::Server,
            local: MemoryStore::with_clock(TokioClock::shared()),
        }
    }

    /// Test mode: decide at `clock`'s time (microseconds since the clock started, plus
    /// [`TEST_CLOCK_OFFSET_MICROS`](crate::TEST_CLOCK_OFFSET_MICROS)) instead of the server's
    /// `TIME`; the local fallback runs on the same clock. This is how the conformance suite,
    /// which moves a `ManualClock`, runs against Redis. Never use it in production: instances
    /// would decide at different times.
    #[must_use]
    pub fn with_test_clock(mut self, clock: ManualClock) -> Self {
        self.local = MemoryStore::with_clock(Arc::new(clock.clone()));
        self.time = TimeSource::Manual(clock);
        self
    }

    /// The connection.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    /// The in-memory store used while Redis is unreachable under
    /// [`FailurePolicy::FailOpenLocal`].
    pub fn local(&self) -> &MemoryStore {
        &self.local
    }

    async fn decide(&self, req: Acquire<'_>) -> Result<Decision, Error> {
        let capacity = req.algorithm.capacity();
        if req.weight > capacity {
            return Ok(Decision::TooHeavy { capacity });
        }
        let call = self.call_for(&req)?;
        match self.conn.run(&call).await {
            Ok(reply) => parse_decision(&call, reply, req.algorithm),
            Err(Failure::Reply(e)) => Err(e),
            Err(Failure::Unavailable(e)) => match self.conn.failure_policy() {
                FailurePolicy::FailClosed => Err(e),
                FailurePolicy::FailOpenLocal => {
                    metrics::counter!("llm_tower_redis_local_decisions_total", "store" => "rate_limit").increment(1);
                    Ok(self.local.decide(req))
                }
            },
        }
    }

    /// The script, keys and arguments of one decision.
    pub(crate) fn call_for(&self, req: &Acquire<'_>) -> Result<ScriptCall, Error> {
        let prefix = self.conn.prefix();
        let max_wait = micros_floor(req.max_wait).min(MAX_SPAN_MICROS);
        let now = self.time.arg();
        match *req.algorithm {
            Algorithm::SlidingWindow { limit, window } => {
                let window_us = micros_ceil(window);
                if window_us > MAX_SPAN_MICROS || limit > MAX_UNITS {
                    return Err(out_of_range(req.algorithm));
                }
                let max_wait = max_wait.min(sliding_max_wait(limit, window_us));
                let [log, sum] =
                    keys::sliding_window(prefix, SLIDING_WINDOW_VERSION, req.scope, req.key);
                Ok(ScriptCall {
                    script: &SLIDING_WINDOW,
                    keys: vec![log, sum],
                    args: vec![
                        limit.to_string(),
                        window_us.to_string(),
                        req.weight.to_string(),
                        max_wait.to_string(),
                        now,
                    ],
                })
            }
            Algorithm::LeakyBucket { rate, per, burst } => {
                let per_us = micros_ceil(per).max(1);
                // Fractions are below `rate` and sums of two stay exact in Lua.
                if rate == 0 || rate > MAX_UNITS || burst > MAX_UNITS {
                    return Err(out_of_range(req.algorithm));
                }
                // w * per / rate as (whole us, fraction in 1/rate us).
                let split = |w: u64| -> (u64, u64) {
                    let v = u128::from(w) * u128::from(per_us);
                    let r = u128::from(rate);
                    (
                        u64::try_from(v / r).unwrap_or(u64::MAX),
                        u64::try_from(v % r).unwrap_or(0),
                    )
                };
                let (tau_w, tau_f) = split(burst);
                if tau_w > MAX_SPAN_MICROS {
                    return Err(out_of_range(req.algorithm));
                }
                let (inc_w, inc_f) = split(req.weight);
                let [tat] = keys::leaky_bucket(prefix, LEAKY_BUCKET_VERSION, req.scope, req.key);
                Ok(ScriptCall {
                    script: &LEAKY_BUCKET,
                    keys: vec![tat],
                    args: vec![
                        inc_w.to_string(),
                        inc_f.to_string(),
                        tau_w.to_string(),
                        tau_f.to_string(),
                        rate.to_string(),
                        per_us.to_string(),
                        burst.to_string(),
                        max_wait.to_string(),
                        now,
                    ],
                })
            }
        }
    }
}

/// The longest wait handed to the sliding-window script, so that the log's running total
/// stays <= 2^53. No closed window holds more than `limit`, and the log spans from
/// `now - window` to the latest slot (at most `now + max_wait`): with
/// `max_wait <= (window + 1) * (k - 1)`, `k = floor(2^53 / limit)`, it is covered by
/// `k` closed windows of `window + 1` microseconds each.
/// Ordinary limits are not affected (a limit of 10^9 still allows waits of 9 million
/// windows); a shorter wait is stricter, never looser.
fn sliding_max_wait(limit: u64, window_us: u64) -> u64 {
    let k = EXACT_LIMIT / limit.max(1);
    window_us
        .saturating_add(1)
        .saturating_mul(k.saturating_sub(1))
        .min(MAX_SPAN_MICROS)
}

fn out_of_range(algorithm: &Algorithm) -> Error {
    Error::config(format!(
        "rate limit {algorithm:?} is outside the Redis store's exact range \
         (windows and bucket drain times up to 2^51 us, limits and bursts up to 2^52)"
    ))
}

fn micros_floor(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn micros_ceil(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX)
}

fn parse_decision(
    call: &ScriptCall,
    reply: redis::Value,
    algorithm: &Algorithm,
) -> Result<Decision, Error> {
    let label = call.label();
    let items = scripts::array(&label, reply)?;
    match scripts::int(&label, &items, 0)? {
        1 => match *algorithm {
            Algorithm::SlidingWindow { .. } => Ok(Decision::Admitted {
                wait: Duration::from_micros(scripts::uint(&label, &items, 1)?),
                remaining: scripts::uint(&label, &items, 2)?,
                reset: Duration::from_micros(scripts::uint(&label, &items, 3)?),
            }),
            Algorithm::LeakyBucket { rate, per, burst } => {
                // free = whole + fraction / rate microseconds; one unit is per / rate.
                let free_w = scripts::uint(&label, &items, 2)?;
                let free_f = scripts::uint(&label, &items, 3)?;
                let scaled = u128::from(free_w) * u128::from(rate) + u128::from(free_f);
                let remaining = scaled
                    .checked_div(u128::from(micros_ceil(per).max(1)))
                    .map_or(burst, |n| u64::try_from(n).unwrap_or(u64::MAX))
                    .min(burst);
                Ok(Decision::Admitted {
                    wait: Duration::from_micros(scripts::uint(&label, &items, 1)?),
                    remaining,
                    reset: Duration::from_micros(scripts::uint(&label, &items, 4)?),
                })
            }
        },
        0 => Ok(Decision::Denied {
            retry_after: Duration::from_micros(scripts::uint(&label, &items, 1)?),
        }),
        2 => Ok(Decision::TooHeavy {
            capacity: scripts::uint(&label, &items, 1)?,
        }),
        other => Err(Error::store(format!(
            "unexpected reply from the redis {label} script: unknown decision code {other}"
        ))),
    }
}

impl fmt::Debug for RedisRateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimitStore")
            .field("connection", &self.conn)
            .field("test_clock", &matches!(self.time, TimeSource::Manual(_)))
            .finish()
    }
}

impl RateLimitStore for RedisRateLimitStore {
    fn acquire<'a>(&'a self, req: Acquire<'a>) -> StoreFuture<'a, Decision> {
        Box::pin(self.decide(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockConnection;
    use redis::Value;

    fn store() -> RedisRateLimitStore {
        RedisRateLimitStore::new(&RedisConfig::new("redis://127.0.0.1:1/").prefix("pfx"))
            .unwrap()
            .with_test_clock(ManualClock::new())
    }

    fn acquire<'a>(alg: &'a Algorithm, weight: u64, max_wait: Duration) -> Acquire<'a> {
        Acquire {
            scope: "per_caller",
            key: "alice",
            algorithm: alg,
            weight,
            max_wait,
        }
    }

    #[test]
    fn sliding_window_call_has_hash_tagged_keys_and_microsecond_args() {
        let alg = Algorithm::sliding_window(60, Duration::from_secs(60)).unwrap();
        let call = store()
            .call_for(&acquire(&alg, 3, Duration::from_nanos(2_500_999)))
            .unwrap();
        assert_eq!(call.label(), "sliding_window v1");
        assert_eq!(
            call.keys,
            [
                "pfx:v1:{sw:per_caller:alice}:log",
                "pfx:v1:{sw:per_caller:alice}:sum"
            ]
        );
        assert_eq!(
            call.args,
            ["60", "60000000", "3", "2500", "1000000000000000"]
        );
    }

    #[test]
    fn production_mode_asks_the_server_for_the_time() {
        let s = RedisRateLimitStore::new(&RedisConfig::new("redis://127.0.0.1:1/")).unwrap();
        let alg = Algorithm::sliding_window(1, Duration::from_secs(1)).unwrap();
        let call = s.call_for(&acquire(&alg, 1, Duration::ZERO)).unwrap();
        assert_eq!(call.args.last().map(String::as_str), Some(""));
        assert!(call.keys[0].starts_with("llm-tower:v1:{sw:"));
    }

    #[test]
    fn leaky_bucket_increments_are_exact_fractions() {
        // 7 per second, burst 3, weight 2: 2e6 / 7 = 285714 + 2/7 us, tau 3e6 / 7 =
        // 428571 + 3/7 us, passed as whole microseconds and sevenths.
        let alg = Algorithm::leaky_bucket(7, Duration::from_secs(1), 3).unwrap();
        let call = store()
            .call_for(&acquire(&alg, 2, Duration::from_secs(5)))
            .unwrap();
        assert_eq!(call.label(), "leaky_bucket v2");
        assert_eq!(call.keys, ["pfx:v2:{lb:per_caller:alice}:tat"]);
        assert_eq!(
            call.args,
            [
                "285714",
                "2",
                "428571",
                "3",
                "7",
                "1000000",
                "3",
                "5000000",
                "1000000000000000"
            ]
        );
    }

    #[test]
    fn leaky_bucket_free_capacity_becomes_whole_units() {
        let alg = Algorithm::leaky_bucket(7, Duration::from_secs(1), 3).unwrap();
        let call = store().call_for(&acquire(&alg, 1, Duration::ZERO)).unwrap();
        // 285714 + 2/7 us free = exactly 2 units of 1e6/7 us.
        let reply = Value::Array(vec![
            Value::Int(1),
            Value::Int(0),
            Value::Int(285_714),
            Value::Int(2),
            Value::Int(142_858),
        ]);
        match parse_decision(&call, reply, &alg).unwrap() {
            Decision::Admitted {
                remaining, reset, ..
            } => {
                assert_eq!(remaining, 2);
                assert_eq!(reset, Duration::from_micros(142_858));
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn parameters_beyond_the_exact_range_are_config_errors() {
        let alg = Algorithm::SlidingWindow {
            limit: 1,
            window: Duration::from_secs(u64::MAX / 4_000_000_000),
        };
        let e = store()
            .call_for(&acquire(&alg, 1, Duration::ZERO))
            .err()
            .unwrap();
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::Config);
        let alg = Algorithm::LeakyBucket {
            rate: 1,
            per: Duration::from_secs(3600),
            burst: 1 << 40,
        };
        assert!(store().call_for(&acquire(&alg, 1, Duration::ZERO)).is_err());
    }

    #[test]
    fn limits_up_to_2_pow_52_are_accepted_and_larger_ones_refused() {
        let window = Duration::from_secs(1);
        let ok = Algorithm::SlidingWindow {
            limit: 1 << 52,
            window,
        };
        let call = store()
            .call_for(&acquire(&ok, 1 << 52, Duration::from_secs(100)))
            .unwrap();
        assert_eq!(call.args[0], "4503599627370496");
        assert_eq!(
            call.args[3], "1000001",
            "the wait is capped at one window, so the log's total stays <= 2^53"
        );
        let too_big = Algorithm::SlidingWindow {
            limit: (1 << 52) + 1,
            window,
        };
        let e = store()
            .call_for(&acquire(&too_big, 1, Duration::ZERO))
            .err()
            .unwrap();
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::Config);
        assert!(e.to_string().contains("2^52"), "{e}");
        let bucket = |burst| Algorithm::LeakyBucket {
            rate: 1 << 40,
            per: Duration::from_secs(1),
            burst,
        };
        assert!(
            store()
                .call_for(&acquire(&bucket(1 << 52), 1, Duration::ZERO))
                .is_ok()
        );
        // A realistic large token bucket (100M tokens an hour, burst 100M) is in range.
        let hourly =
            Algorithm::leaky_bucket(100_000_000, Duration::from_secs(3600), 100_000_000).unwrap();
        assert!(
            store()
                .call_for(&acquire(&hourly, 4_000, Duration::ZERO))
                .is_ok()
        );
        assert!(
            store()
                .call_for(&acquire(&bucket((1 << 52) + 1), 1, Duration::ZERO))
                .is_err()
        );
        // Ordinary limits keep their full wait.
        let small = Algorithm::sliding_window(1000, window).unwrap();
        let call = store()
            .call_for(&acquire(&small, 1, Duration::from_secs(100)))
            .unwrap();
        assert_eq!(call.args[3], "100000000");
    }

    #[test]
    fn replies_become_decisions() {
        let alg = Algorithm::sliding_window(1, Duration::from_secs(1)).unwrap();
        let call = store().call_for(&acquire(&alg, 1, Duration::ZERO)).unwrap();
        let arr = |v: Vec<i64>| Value::Array(v.into_iter().map(Value::Int).collect());
        assert_eq!(
            parse_decision(&call, arr(vec![1, 5, 2, 7]), &alg).unwrap(),
            Decision::Admitted {
                wait: Duration::from_micros(5),
                remaining: 2,
                reset: Duration::from_micros(7)
            }
        );
        assert_eq!(
            parse_decision(&call, arr(vec![0, 9]), &alg).unwrap(),
            Decision::Denied {
                retry_after: Duration::from_micros(9)
            }
        );
        assert_eq!(
            parse_decision(&call, arr(vec![2, 4]), &alg).unwrap(),
            Decision::TooHeavy { capacity: 4 }
        );
        for bad in [
            arr(vec![7, 1]),
            arr(vec![1, -5, 0, 0]),
            arr(vec![1]),
            Value::Nil,
            Value::Okay,
        ] {
            assert_eq!(
                parse_decision(&call, bad, &alg).unwrap_err().kind(),
                llm_tower_core::ErrorKind::Store
            );
        }
    }

    #[tokio::test]
    async fn evalsha_falls_back_to_script_load_on_noscript() {
        let alg = Algorithm::sliding_window(60, Duration::from_secs(60)).unwrap();
        let call = store().call_for(&acquire(&alg, 1, Duration::ZERO)).unwrap();
        let sha = SLIDING_WINDOW.script.get_hash().to_owned();
        let mut conn = MockConnection::new(vec![
            MockConnection::error("-NOSCRIPT No matching script. Please use EVAL.\r\n"),
            Ok(Value::BulkString(sha.clone().into_bytes())),
            Ok(Value::Array(vec![
                Value::Int(1),
                Value::Int(0),
                Value::Int(59),
                Value::Int(60_000_001),
            ])),
        ]);
        let reply = call.invoke(&mut conn).await.unwrap();
        assert_eq!(
            parse_decision(&call, reply, &alg).unwrap(),
            Decision::Admitted {
                wait: Duration::ZERO,
                remaining: 59,
                reset: Duration::from_micros(60_000_001)
            }
        );
        let sent = conn.sent();
        assert_eq!(sent.len(), 3);
        let evalsha = vec![
            "EVALSHA".to_owned(),
            sha,
            "2".to_owned(),
            "pfx:v1:{sw:per_caller:alice}:log".to_owned(),
            "pfx:v1:{sw:per_caller:alice}:sum".to_owned(),
            "60".to_owned(),
            "60000000".to_owned(),
            "1".to_owned(),
            "0".to_owned(),
            "1000000000000000".to_owned(),
        ];
        assert_eq!(sent[0], evalsha);
        assert_eq!(sent[1][..2], ["SCRIPT".to_owned(), "LOAD".to_owned()]);
        assert!(sent[1][2].starts_with("-- llm-tower sliding_window v1\n"));
        assert_eq!(sent[2], evalsha);
    }
}
