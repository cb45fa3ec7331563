//! [`CacheStore`]: where encoded entries live.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use super::key::CacheKey;
use crate::rate_limit::StoreFuture;

/// Where cache entries live: an async map from [`CacheKey`] to encoded bytes, each entry
/// with a time to live.
///
/// Implementations: [`MemoryCacheStore`](super::MemoryCacheStore) here (this process),
/// `RedisCacheStore` in `llm-tower-redis` (shared by several instances).
///
/// A store may forget an entry at any time (eviction); it must never answer one key with
/// another key's bytes, nor with an entry past its TTL.
pub trait CacheStore: Send + Sync + fmt::Debug + 'static {
    /// The entry stored under `key`, if any and not expired.
    ///
    /// # Errors
    /// `Store` when the store cannot be read (the cache layer then treats the request as
    /// a miss).
    fn get<'a>(&'a self, key: &'a CacheKey) -> StoreFuture<'a, Option<Bytes>>;

    /// Stores `entry` under `key` for `ttl`, replacing what was there. A store may refuse
    /// an entry that is too large for it (and returns `Ok(false)` then).
    ///
    /// # Errors
    /// `Store` when the store cannot be written (the cache layer logs it; the response is
    /// served anyway).
    fn put<'a>(&'a self, key: &'a CacheKey, entry: Bytes, ttl: Duration) -> StoreFuture<'a, bool>;

    /// A short name for metrics and logs (`memory`, `redis`).
    fn kind(&self) -> &'static str;
}

impl<T: CacheStore + ?Sized> CacheStore for std::sync::Arc<T> {
    fn get<'a>(&'a self, key: &'a CacheKey) -> StoreFuture<'a, Option<Bytes>> {
        (**self).get(key)
    }

    fn put<'a>(&'a self, key: &'a CacheKey, entry: Bytes, ttl: Duration) -> StoreFuture<'a, bool> {
        (**self).put(key, entry, ttl)
    }

    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}
