//! [`RedisCacheStore`]: response-cache entries shared by every instance on one Redis.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use llm_tower_core::Error;
use llm_tower_layers::cache::{CacheKey, CacheStore};
use llm_tower_layers::rate_limit::StoreFuture;

use crate::config::RedisConfig;
use crate::connection::RedisConnection;

/// The version of the entry keys: `{prefix}:cache:v1:{sha-256 hex}`.
const CACHE_VERSION: u32 = 1;
/// The default largest entry stored: 1 MiB.
pub const DEFAULT_MAX_CACHE_ENTRY_BYTES: u64 = 1024 * 1024;

/// A `llm_tower_layers::cache::CacheStore` on Redis: one string key per entry,
/// `{prefix}:cache:v1:{key hex}`, written with `SET ... PX <ttl>` and read with `GET`, so
/// every instance on the same Redis and prefix shares the entries and Redis expires them.
///
/// Entries above [`max_entry_bytes`](Self::max_entry_bytes) (1 MiB by default) are
/// refused before they reach Redis. Eviction beyond the TTL is Redis's own
/// (`maxmemory-policy`): give the cache a Redis (or a database) whose policy may evict
/// (`allkeys-lru`) if it can fill memory, as limits and budgets must not be evicted.
///
/// # Errors
/// `Store` when Redis is unreachable or refuses a command, whatever the failure policy:
/// the cache layer then answers from the provider (a lookup that fails is a miss).
///
/// # Clone
/// Clones share the connection.
#[derive(Clone)]
pub struct RedisCacheStore {
    conn: RedisConnection,
    max_entry_bytes: u64,
}

impl fmt::Debug for RedisCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheStore")
            .field("url", &self.conn.config().redacted_url())
            .field("prefix", &self.conn.prefix())
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish()
    }
}

impl RedisCacheStore {
    /// A store on its own connection.
    ///
    /// # Errors
    /// `Config` when the configuration is invalid.
    pub fn new(config: &RedisConfig) -> Result<Self, Error> {
        Ok(Self::with_connection(RedisConnection::new(config)?))
    }

    /// A store on a shared connection (the one the limits and budgets use).
    pub fn with_connection(conn: RedisConnection) -> Self {
        RedisCacheStore {
            conn,
            max_entry_bytes: DEFAULT_MAX_CACHE_ENTRY_BYTES,
        }
    }

    /// Refuses entries above `n` bytes (default 1 MiB).
    #[must_use]
    pub fn max_entry_bytes(mut self, n: u64) -> Self {
        self.max_entry_bytes = n;
        self
    }

    /// The Redis key of `key`.
    pub fn redis_key(&self, key: &CacheKey) -> String {
        format!(
            "{}:cache:v{CACHE_VERSION}:{}",
            self.conn.prefix(),
            key.to_hex()
        )
    }
}

impl CacheStore for RedisCacheStore {
    fn get<'a>(&'a self, key: &'a CacheKey) -> StoreFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("GET");
            cmd.arg(self.redis_key(key));
            let bytes: Option<Vec<u8>> = self.conn.command(&cmd, "GET of a cache entry").await?;
            Ok(bytes.map(Bytes::from))
        })
    }

    fn put<'a>(&'a self, key: &'a CacheKey, entry: Bytes, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if entry.len() as u64 > self.max_entry_bytes {
                return Ok(false);
            }
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.redis_key(key))
                .arg(entry.as_ref())
                .arg("PX")
                .arg(ttl_ms);
            let _: () = self.conn.command(&cmd, "SET of a cache entry").await?;
            Ok(true)
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
