//! [`RedisAdaptiveStore`]: the blocks of the adaptive provider limits, shared by every
//! instance on one Redis.

use std::fmt;
use std::time::Duration;

use llm_tower_core::{Error, TokioClock};
use llm_tower_layers::provider_limits::{AdaptiveLimitStore, MemoryAdaptiveStore};
use llm_tower_layers::rate_limit::StoreFuture;
use redis::Value;

use crate::config::{FailurePolicy, RedisConfig};
use crate::connection::{Failure, RedisConnection};
use crate::keys;
use crate::scripts::{ADAPTIVE_BLOCK, ADAPTIVE_BLOCKED, ADAPTIVE_VERSION, ScriptCall};

/// The longest block written (one day, the providers' header cap), in milliseconds.
const MAX_BLOCK_MS: u128 = 86_400_000;

/// "Blocked until" per target on Redis: when one instance learns that a provider's limit
/// is exhausted (`remaining: 0` with a reset, or a 429 with a retry-after), every
/// instance holds its requests to that target back until the reset.
///
/// A block is one key per target, `{prefix}:v1:{al:{target}}:blocked`, whose expiry (`PX`)
/// is the block: it ends on Redis's clock, so instances need no synchronised clocks and
/// nothing is left behind. Writing is one small script that never shortens a longer
/// block; reading is one that returns the milliseconds left (`PTTL`). Resolution: 1 ms,
/// rounded up when writing.
///
/// Cost: the layer reads the block once per request to a target (one round trip, like a
/// Redis rate-limit decision) and writes only when a provider reports a block.
///
/// # Errors
/// `Store` when Redis fails and the policy is [`FailurePolicy::FailClosed`];
/// under [`FailurePolicy::FailOpenLocal`] blocks live in this instance's memory until
/// Redis is back.
///
/// # Clone
/// Wrap it in an `Arc`; clones of the [`RedisConnection`] share one connection.
pub struct RedisAdaptiveStore {
    conn: RedisConnection,
    local: MemoryAdaptiveStore,
}

impl RedisAdaptiveStore {
    /// A store with its own connection. Does not connect yet (see [`RedisConnection`]).
    ///
    /// # Errors
    /// `Config` when the configuration is invalid.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        Ok(RedisAdaptiveStore::with_connection(RedisConnection::new(
            config,
        )?))
    }

    /// A store on a shared connection.
    pub fn with_connection(conn: RedisConnection) -> Self {
        RedisAdaptiveStore {
            conn,
            local: MemoryAdaptiveStore::with_clock(TokioClock::shared()),
        }
    }

    /// The connection.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    fn key(&self, target: &str) -> String {
        let [k] = keys::adaptive(self.conn.prefix(), ADAPTIVE_VERSION, target);
        k
    }

    /// Runs `call`; `Ok(None)` when Redis is unreachable and the policy falls back locally.
    async fn run(&self, call: &ScriptCall) -> Result<Option<u64>, Error> {
        match self.conn.run(call).await {
            Ok(Value::Int(n)) => Ok(Some(u64::try_from(n).unwrap_or(0))),
            Ok(other) => Err(Error::store(format!(
                "unexpected reply from the redis {} script: {other:?}",
                call.label()
            ))),
            Err(Failure::Reply(e)) => Err(e),
            Err(Failure::Unavailable(e)) => match self.conn.failure_policy() {
                FailurePolicy::FailClosed => Err(e),
                FailurePolicy::FailOpenLocal => {
                    metrics::counter!("llm_tower_redis_local_decisions_total", "store" => "adaptive_limits")
                        .increment(1);
                    Ok(None)
                }
            },
        }
    }

    async fn blocked(&self, target: &str) -> Result<Option<Duration>, Error> {
        let call = ScriptCall {
            script: &ADAPTIVE_BLOCKED,
            keys: vec![self.key(target)],
            args: Vec::new(),
        };
        Ok(match self.run(&call).await? {
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
            None => self.local.blocked_for_now(target),
        })
    }

    async fn write(&self, target: &str, duration: Duration) -> Result<(), Error> {
        // Rounded up: a block never ends before the provider's reset.
        let ms = duration.as_nanos().div_ceil(1_000_000).min(MAX_BLOCK_MS);
        if ms == 0 {
            return Ok(());
        }
        let call = ScriptCall {
            script: &ADAPTIVE_BLOCK,
            keys: vec![self.key(target)],
            args: vec![ms.to_string()],
        };
        if self.run(&call).await?.is_none() {
            self.local.block_now(target, duration);
        }
        Ok(())
    }
}

impl fmt::Debug for RedisAdaptiveStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdaptiveStore")
            .field("conn", &self.conn)
            .finish()
    }
}

impl AdaptiveLimitStore for RedisAdaptiveStore {
    fn blocked_for<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(self.blocked(key))
    }

    fn block<'a>(&'a self, key: &'a str, duration: Duration) -> StoreFuture<'a, ()> {
        Box::pin(self.write(key, duration))
    }
}
