//! Shared state for several llm-tower instances: rate-limit, budget and response-cache
//! stores on Redis.
//!
//! [`RedisRateLimitStore`] implements `llm_tower_layers::rate_limit::RateLimitStore`,
//! [`RedisBudgetStore`] implements `llm_tower_layers::cost::BudgetStore`,
//! [`RedisCacheStore`] implements `llm_tower_layers::cache::CacheStore`, and
//! [`RedisAdaptiveStore`] implements `llm_tower_layers::provider_limits::AdaptiveLimitStore`
//! (targets blocked until their provider's reset). Put the same
//! store configuration (URL and prefix) in every instance and they share one set of
//! limits and budgets: together they never admit more than a limit, nor spend more than
//! a budget.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use llm_tower_layers::rate_limit::{Algorithm, KeyBy, RateLimitLayer};
//! use llm_tower_redis::{FailurePolicy, RedisConfig, RedisRateLimitStore};
//!
//! # fn main() -> Result<(), llm_tower_core::Error> {
//! let config = RedisConfig::new("redis://127.0.0.1:6379/")
//!     .prefix("my-gateway")
//!     .failure_policy(FailurePolicy::FailOpenLocal);
//! let store = RedisRateLimitStore::new(&config)?;
//! let per_caller = RateLimitLayer::new(Algorithm::sliding_window(60, Duration::from_secs(60))?)
//!     .name("per_caller")
//!     .key(KeyBy::Caller)
//!     .store(Arc::new(store));
//! # let _ = per_caller;
//! # Ok(()) }
//! ```
//!
//! # How decisions are made
//! Each decision is one round trip: `EVALSHA` of a Lua script that reads the server's
//! clock (`TIME`, microseconds), checks and records atomically, and sets a TTL so idle
//! keys vanish. When the server does not know the script (`NOSCRIPT`, after a restart or
//! `SCRIPT FLUSH`) it is loaded and the call retried. The scripts are the in-memory
//! algorithms of `llm-tower-layers` rewritten in Lua, and the same conformance suites pass
//! against them (at 1 µs resolution).
//!
//! # Versions and keys
//! Every script starts with `-- llm-tower {name} v{N}` (so its SHA1 changes with its
//! version) and its keys carry the same version: `{prefix}:v{N}:{sw:{scope}:{key}}:log`.
//! During a rolling upgrade to a script with another layout, old and new instances use
//! different keys instead of misreading each other's. All keys of one decision share one
//! hash tag, so the scripts run on Redis Cluster too. See the README for the full layout.
//!
//! # Failure policy
//! [`FailurePolicy::FailClosed`] (the default) refuses with `ErrorKind::Store` while
//! Redis is unreachable; [`FailurePolicy::FailOpenLocal`] decides with an in-memory store
//! of this instance and goes back to Redis once a reconnect check succeeds. Both log one
//! warning when Redis goes away and one message when it is back. Neither ever lets
//! requests through unlimited. Every call has a time limit ([`RedisConfig::timeout`],
//! 1 s by default), so a hung Redis cannot hang requests. Budget spend that cannot be
//! written to Redis is queued in memory and added to Redis by the next call that reaches
//! it (see [`RedisBudgetStore`]); the local budget fallback starts from the last spend seen
//! in Redis.
//!
//! # Errors
//! `Store` when Redis fails under `FailClosed`, or answers with an error about the call
//! itself (a script error, a key of the wrong type); `Config` for an invalid
//! configuration or a limit outside the scripts' exact integer range.
//!
//! # Clone
//! A store is shared through an `Arc`. Stores built from one [`RedisConnection`] share its
//! connection and its health state.
//!
//! # Testing
//! `with_test_clock(ManualClock)` makes the scripts decide at a manual clock's time
//! instead of `TIME`, which is how the conformance suites run against Redis.
//!
//! # Cargo features
//! None: the crate always uses tokio (`redis` with `tokio-comp`, `connection-manager` and
//! `script`). TLS (`rediss://`) and Redis Cluster connections are not built in yet; the
//! key layout is already cluster-safe.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod adaptive;
mod budget;
mod cache;
mod config;
mod connection;
mod keys;
mod rate_limit;
mod scripts;
#[cfg(test)]
mod testing;
mod time;

pub use adaptive::RedisAdaptiveStore;
pub use budget::{MAX_REMEMBERED_COUNTERS, RedisBudgetStore};
pub use cache::{DEFAULT_MAX_CACHE_ENTRY_BYTES, RedisCacheStore};
pub use config::{
    DEFAULT_PREFIX, DEFAULT_RECONNECT_INTERVAL, DEFAULT_TIMEOUT, FailurePolicy, RedisConfig,
    redact_url,
};
pub use connection::RedisConnection;
pub use rate_limit::RedisRateLimitStore;
pub use time::TEST_CLOCK_OFFSET_MICROS;
