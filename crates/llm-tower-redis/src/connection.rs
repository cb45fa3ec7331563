//! [`RedisConnection`]: a reconnecting connection, time limits, and the health state the
//! failure policy acts on.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use llm_tower_core::Error;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Value};
use tokio::time::Instant;

use crate::config::{FailurePolicy, RedisConfig};
use crate::scripts::ScriptCall;

/// A handle on one Redis server: a `ConnectionManager` (one multiplexed connection that
/// reconnects by itself), the time limit of each call, and whether Redis is currently
/// reachable. Cheap to clone; clones share everything.
///
/// Every store made with [`RedisRateLimitStore::new`](crate::RedisRateLimitStore::new) or
/// [`RedisBudgetStore::new`](crate::RedisBudgetStore::new) opens its own; make one
/// `RedisConnection` and pass it to `with_connection` to share it.
///
/// The connection is opened lazily, on the first call (which must run inside a tokio
/// runtime), so building a store never blocks and never fails because Redis is down.
///
/// # Health
/// A call that fails because Redis is unreachable (I/O error, refused or lost
/// connection, time limit, `LOADING`, `READONLY`, `MASTERDOWN`, ...) marks the connection
/// *down* and logs one warning. While down, one call per
/// [`reconnect_interval`](RedisConfig::reconnect_interval) probes Redis (a `PING`, then its
/// own script); every other call is handled by the [`FailurePolicy`] at once. The first
/// successful call marks it *up* again and logs that once.
#[derive(Clone)]
pub struct RedisConnection {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    manager: OnceLock<ConnectionManager>,
    config: RedisConfig,
    redacted_url: String,
    up: AtomicBool,
    next_check: Mutex<Instant>,
}

/// Why a call did not produce a reply to decode.
pub(crate) enum Failure {
    /// Redis is unreachable or unusable: the failure policy applies.
    Unavailable(Error),
    /// Redis answered with an error about the call itself (a script error, a key of the
    /// wrong type): returned as it is, whatever the policy.
    Reply(Error),
}

enum Route {
    Redis,
    Probe,
    Skip,
}

impl RedisConnection {
    /// A connection for `config`. Does not connect (see the type's docs).
    ///
    /// # Errors
    /// `Config` when the configuration is invalid ([`RedisConfig::validate`]).
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        config.validate()?;
        let redacted_url = config.redacted_url();
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            Error::config(format!(
                "redis store: invalid url {redacted_url}: {}",
                e.category()
            ))
        })?;
        Ok(RedisConnection {
            inner: Arc::new(Inner {
                client,
                manager: OnceLock::new(),
                config: config.clone(),
                redacted_url,
                up: AtomicBool::new(true),
                next_check: Mutex::new(Instant::now()),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.config.prefix
    }

    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.inner.config.failure_policy
    }

    /// `true` unless the last call found Redis unreachable (optimistic before the first).
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Acquire)
    }

    /// Sends `PING` now, whatever the health state, and records the outcome.
    ///
    /// # Errors
    /// `Store` when Redis does not answer within the time limit.
    pub async fn ping(&self) -> Result<(), Error> {
        self.runtime()?;
        let mut conn = self.manager()?;
        match self.ping_on(&mut conn).await {
            Ok(()) => {
                self.mark_up();
                Ok(())
            }
            Err(e) => {
                self.mark_down(&e);
                Err(e)
            }
        }
    }

    fn manager(&self) -> Result<ConnectionManager, Error> {
        if let Some(m) = self.inner.manager.get() {
            return Ok(m.clone());
        }
        let timeout = self.inner.config.timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(timeout);
        let m = ConnectionManager::new_lazy_with_config(self.inner.client.clone(), config)
            .map_err(|e| self.error("could not set up the connection", &e))?;
        Ok(self.inner.manager.get_or_init(|| m).clone())
    }

    /// `PING`, within the time limit. A connection that failed earlier reports its old
    /// failure once and reconnects, so a fast first failure is tried once more.
    async fn ping_on(&self, conn: &mut ConnectionManager) -> Result<(), Error> {
        let timeout = self.inner.config.timeout;
        let attempt = async {
            let first: Result<String, RedisError> = redis::cmd("PING").query_async(conn).await;
            match first {
                Ok(_) => Ok(()),
                Err(e) if e.is_io_error() || e.is_unrecoverable_error() => {
                    let second: Result<String, RedisError> =
                        redis::cmd("PING").query_async(conn).await;
                    second.map(|_| ())
                }
                Err(e) => Err(e),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error("PING failed", &e)),
            Err(_) => Err(self.timed_out("PING")),
        }
    }

    /// Runs one script call if Redis is usable, with the time limit.
    ///
    /// Outside a tokio runtime (a future polled once by hand, as when an unsettled
    /// reservation is dropped in a plain thread) Redis cannot be reached: the call fails
    /// as `Unavailable` at once, without a panic and without marking the connection down.
    pub(crate) async fn run(&self, call: &ScriptCall) -> Result<Value, Failure> {
        self.runtime().map_err(Failure::Unavailable)?;
        let probe = match self.route() {
            Route::Redis => false,
            Route::Probe => true,
            Route::Skip => return Err(Failure::Unavailable(self.down_error())),
        };
        let mut conn = self.manager().map_err(Failure::Unavailable)?;
        if probe && let Err(e) = self.ping_on(&mut conn).await {
            self.mark_down(&e);
            return Err(Failure::Unavailable(e));
        }
        match tokio::time::timeout(self.inner.config.timeout, call.invoke(&mut conn)).await {
            Ok(Ok(v)) => {
                self.mark_up();
                Ok(v)
            }
            Ok(Err(e)) if is_reply_error(&e) => {
                self.mark_up();
                Err(Failure::Reply(
                    self.error(&format!("the {} script failed", call.label()), &e),
                ))
            }
            Ok(Err(e)) => {
                let err = self.error(&format!("the {} script failed", call.label()), &e);
                self.mark_down(&err);
                Err(Failure::Unavailable(err))
            }
            Err(_) => {
                let err = self.timed_out(&call.label());
                self.mark_down(&err);
                Err(Failure::Unavailable(err))
            }
        }
    }

    /// Runs one plain command (not a script) if Redis is usable, with the time limit and
    /// the same health tracking as the scripts. Whatever the failure policy, a failure is
    /// returned as a `Store` error: callers of plain commands (the response store) have no
    /// local fallback.
    ///
    /// # Errors
    /// `Store` when Redis is unreachable, times out or refuses the command.
    pub async fn command<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        label: &str,
    ) -> Result<T, Error> {
        self.runtime()?;
        let probe = match self.route() {
            Route::Redis => false,
            Route::Probe => true,
            Route::Skip => return Err(self.down_error()),
        };
        let mut conn = self.manager()?;
        if probe && let Err(e) = self.ping_on(&mut conn).await {
            self.mark_down(&e);
            return Err(e);
        }
        match tokio::time::timeout(self.inner.config.timeout, cmd.query_async(&mut conn)).await {
            Ok(Ok(v)) => {
                self.mark_up();
                Ok(v)
            }
            Ok(Err(e))
                if is_reply_error(&e) || e.kind() == redis::ErrorKind::UnexpectedReturnType =>
            {
                self.mark_up();
                Err(self.error(&format!("{label} failed"), &e))
            }
            Ok(Err(e)) => {
                let err = self.error(&format!("{label} failed"), &e);
                self.mark_down(&err);
                Err(err)
            }
            Err(_) => {
                let err = self.timed_out(label);
                self.mark_down(&err);
                Err(err)
            }
        }
    }

    /// `Ok` inside a tokio runtime. Timers and the connection's tasks need one; without
    /// it they would panic.
    fn runtime(&self) -> Result<(), Error> {
        match tokio::runtime::Handle::try_current() {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::store(format!(
                "redis store at {}: called outside a tokio runtime, so Redis cannot be reached",
                self.inner.redacted_url
            ))),
        }
    }

    fn route(&self) -> Route {
        if self.is_up() {
            return Route::Redis;
        }
        let now = Instant::now();
        let mut next = self
            .inner
            .next_check
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if now >= *next {
            *next = now + self.inner.config.reconnect_interval;
            Route::Probe
        } else {
            Route::Skip
        }
    }

    fn mark_up(&self) {
        if !self.inner.up.swap(true, Ordering::AcqRel) {
            metrics::gauge!("llm_tower_redis_up").set(1.0);
            tracing::info!(
                url = %self.inner.redacted_url,
                prefix = %self.inner.config.prefix,
                "redis store: Redis is reachable again; limits and budgets are shared again"
            );
        }
    }

    fn mark_down(&self, err: &Error) {
        if self.inner.up.swap(false, Ordering::AcqRel) {
            {
                let mut next = self
                    .inner
                    .next_check
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                *next = Instant::now() + self.inner.config.reconnect_interval;
            }
            metrics::gauge!("llm_tower_redis_up").set(0.0);
            let consequence = match self.inner.config.failure_policy {
                FailurePolicy::FailClosed => "refusing requests (fail_closed) until it is back",
                FailurePolicy::FailOpenLocal => {
                    "deciding with this instance's local limits (fail_open_local) until it is back"
                }
            };
            tracing::warn!(
                url = %self.inner.redacted_url,
                prefix = %self.inner.config.prefix,
                error = %err,
                reconnect_interval_ms = self.inner.config.reconnect_interval.as_millis() as u64,
                "redis store: Redis is unreachable; {consequence}"
            );
        } else {
            tracing::debug!(url = %self.inner.redacted_url, error = %err, "redis store: still unreachable");
        }
    }

    fn error(&self, what: &str, e: &RedisError) -> Error {
        Error::store(format!(
            "redis store at {}: {what}: {e}",
            self.inner.redacted_url
        ))
        .with_source(e.clone())
    }

    fn timed_out(&self, what: &str) -> Error {
        Error::store(format!(
            "redis store at {}: {what} timed out after {:?}",
            self.inner.redacted_url, self.inner.config.timeout
        ))
    }

    fn down_error(&self) -> Error {
        Error::store(format!(
            "redis store at {} is unreachable (next reconnect check within {:?})",
            self.inner.redacted_url, self.inner.config.reconnect_interval
        ))
    }
}

/// Errors about the call itself rather than the server's availability: our scripts' own
/// error replies, Lua errors, and keys of the wrong type.
fn is_reply_error(e: &RedisError) -> bool {
    match e.code() {
        Some(code) if code.starts_with("llm-tower") => true,
        Some("WRONGTYPE") => true,
        Some("ERR") => e.detail().is_some_and(|d| d.contains("script")),
        _ => false,
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("url", &self.inner.redacted_url)
            .field("prefix", &self.inner.config.prefix)
            .field("failure_policy", &self.inner.config.failure_policy)
            .field("up", &self.is_up())
            .finish()
    }
}
