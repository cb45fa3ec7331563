//! [`MemoryCacheStore`]: entries in this process, bounded by count and by bytes (moka).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use llm_tower_core::{Error, SharedClock, TokioClock};
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use super::key::CacheKey;
use super::store::CacheStore;
use crate::rate_limit::StoreFuture;

/// The default bound on entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;
/// The default bound on bytes (all entries together).
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Clone)]
struct Slot {
    bytes: Bytes,
    ttl: Duration,
    /// By the store's clock: an entry read at or after this instant is gone.
    expires_at: Instant,
}

struct SlotExpiry;

impl Expiry<CacheKey, Slot> for SlotExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Slot,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Slot,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A [`CacheStore`] in this process's memory: a `moka` cache (concurrent, TinyLFU
/// admission, LRU eviction) bounded by a number of entries and by bytes.
///
/// Both bounds hold at once through one weigher: an entry weighs its size, but at least
/// `max_bytes / max_entries`, against a capacity of `max_bytes`; so no more than
/// `max_entries` entries and no more than `max_bytes` bytes are kept (moka applies its
/// evictions shortly after the insert that exceeds them). An entry larger than
/// [`max_entry_bytes`](Self::max_entry_bytes) is refused.
///
/// Expiry is by the TTL of each entry, read through the store's [`Clock`](llm_tower_core::Clock)
/// (so a `ManualClock` moves it in tests); moka also drops expired entries by its own
/// timer, to give their memory back.
///
/// # Metrics
/// `llm_tower_cache_entries` and `llm_tower_cache_bytes` (gauges: what the store holds,
/// in entry bytes), `llm_tower_cache_evictions_total{cause = size|expired}`.
///
/// # Clone
/// Clones share the entries.
#[derive(Clone)]
pub struct MemoryCacheStore {
    cache: Cache<CacheKey, Slot>,
    bytes: Arc<AtomicU64>,
    max_entry_bytes: u64,
    clock: SharedClock,
}

impl fmt::Debug for MemoryCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCacheStore")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for MemoryCacheStore {
    fn default() -> Self {
        MemoryCacheStore::builder().build()
    }
}

/// Builds a [`MemoryCacheStore`].
#[derive(Debug, Clone)]
pub struct MemoryCacheStoreBuilder {
    max_entries: u64,
    max_bytes: u64,
    max_entry_bytes: Option<u64>,
    clock: SharedClock,
}

impl MemoryCacheStoreBuilder {
    /// At most `n` entries (default 10,000; at least 1).
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// At most `n` bytes of entries in all (default 256 MiB; at least 1).
    #[must_use]
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// Refuses entries above `n` bytes (default: a tenth of `max_bytes`, at most 4 GiB).
    #[must_use]
    pub fn max_entry_bytes(mut self, n: u64) -> Self {
        self.max_entry_bytes = Some(n);
        self
    }

    /// Reads expiry through `clock` (default: tokio's).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The store.
    pub fn build(self) -> MemoryCacheStore {
        let floor = self.max_bytes.div_ceil(self.max_entries).max(1);
        let floor32 = u32::try_from(floor).unwrap_or(u32::MAX);
        let max_entry_bytes = self
            .max_entry_bytes
            .unwrap_or(self.max_bytes / 10)
            .clamp(1, u64::from(u32::MAX))
            .min(self.max_bytes);
        let bytes = Arc::new(AtomicU64::new(0));
        let held = bytes.clone();
        let cache = Cache::builder()
            .max_capacity(self.max_bytes)
            .weigher(move |_k: &CacheKey, v: &Slot| {
                u32::try_from(v.bytes.len())
                    .unwrap_or(u32::MAX)
                    .max(floor32)
            })
            .expire_after(SlotExpiry)
            .eviction_listener(move |_k, v: Slot, cause| {
                let n = v.bytes.len() as u64;
                let _ = held.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(n))
                });
                let cause = match cause {
                    RemovalCause::Size => "size",
                    RemovalCause::Expired => "expired",
                    RemovalCause::Explicit | RemovalCause::Replaced => return,
                };
                metrics::counter!("llm_tower_cache_evictions_total", "cause" => cause).increment(1);
            })
            .build();
        MemoryCacheStore {
            cache,
            bytes,
            max_entry_bytes,
            clock: self.clock,
        }
    }
}

impl MemoryCacheStore {
    /// A builder with the defaults: 10,000 entries, 256 MiB, tokio's clock.
    pub fn builder() -> MemoryCacheStoreBuilder {
        MemoryCacheStoreBuilder {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entry_bytes: None,
            clock: TokioClock::shared(),
        }
    }

    /// Entries held (moka's count: approximate until its pending work has run, see
    /// [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Bytes of the entries held.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The largest entry accepted.
    pub fn max_entry_bytes(&self) -> u64 {
        self.max_entry_bytes
    }

    /// Runs moka's pending maintenance now (evictions past the bounds, expiry); it also
    /// runs by itself as the cache is used.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
        self.gauges();
    }

    fn gauges(&self) {
        metrics::gauge!("llm_tower_cache_entries").set(self.cache.entry_count() as f64);
        metrics::gauge!("llm_tower_cache_bytes").set(self.bytes() as f64);
    }
}

impl CacheStore for MemoryCacheStore {
    fn get<'a>(&'a self, key: &'a CacheKey) -> StoreFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            let Some(slot) = self.cache.get(key).await else {
                return Ok(None);
            };
            if self.clock.now() >= slot.expires_at {
                self.cache.invalidate(key).await;
                return Ok(None);
            }
            Ok(Some(slot.bytes))
        })
    }

    fn put<'a>(&'a self, key: &'a CacheKey, entry: Bytes, ttl: Duration) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let n = entry.len() as u64;
            if n > self.max_entry_bytes {
                return Ok(false);
            }
            let Some(expires_at) = self.clock.now().checked_add(ttl) else {
                return Err(Error::config("cache TTL too long"));
            };
            self.bytes.fetch_add(n, Ordering::Relaxed);
            self.cache
                .insert(
                    *key,
                    Slot {
                        bytes: entry,
                        ttl,
                        expires_at,
                    },
                )
                .await;
            self.gauges();
            Ok(true)
        })
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use llm_tower_core::ManualClock;

    fn key(n: u8) -> CacheKey {
        CacheKey::from_bytes([n; 32])
    }

    #[tokio::test]
    async fn entries_expire_by_the_stores_clock() {
        let clock = ManualClock::new();
        let store = MemoryCacheStore::builder()
            .clock(Arc::new(clock.clone()))
            .build();
        assert!(
            store
                .put(&key(1), Bytes::from_static(b"a"), Duration::from_secs(60))
                .await
                .unwrap()
        );
        clock.advance(Duration::from_secs(59));
        assert_eq!(
            store.get(&key(1)).await.unwrap().as_deref(),
            Some(&b"a"[..])
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.get(&key(1)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_entry_bound_holds() {
        let store = MemoryCacheStore::builder()
            .max_entries(10)
            .max_bytes(1_000_000)
            .build();
        for n in 0..50 {
            store
                .put(&key(n), Bytes::from_static(b"x"), Duration::from_secs(60))
                .await
                .unwrap();
            store.run_pending_tasks().await;
        }
        assert!(store.entry_count() <= 10, "{} entries", store.entry_count());
    }

    #[tokio::test]
    async fn the_byte_bound_holds_and_large_entries_are_refused() {
        let store = MemoryCacheStore::builder()
            .max_entries(1_000)
            .max_bytes(10_000)
            .max_entry_bytes(2_000)
            .build();
        let big = Bytes::from(vec![0u8; 2_001]);
        assert!(
            !store
                .put(&key(0), big, Duration::from_secs(60))
                .await
                .unwrap()
        );
        for n in 1..=40 {
            let e = Bytes::from(vec![n; 1_000]);
            assert!(
                store
                    .put(&key(n), e, Duration::from_secs(60))
                    .await
                    .unwrap()
            );
            store.run_pending_tasks().await;
        }
        assert!(store.bytes() <= 10_000, "{} bytes", store.bytes());
        assert!(store.entry_count() <= 10, "{} entries", store.entry_count());
        assert!(store.entry_count() > 0);
    }
}
