//! [`AdaptiveLimitStore`]: where "blocked until" lives, so several instances share it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use llm_tower_core::{SharedClock, TokioClock};

use crate::rate_limit::StoreFuture;

/// Keeps, per target key, until when the provider refuses requests (it reported
/// `remaining: 0` with a reset, or answered 429 with a retry-after).
///
/// Only the block is shared: the count-down between two reports stays in each instance.
/// Durations, not instants, cross the boundary, so a store shared between machines (Redis
/// with `PX` expiry) needs no synchronised clocks.
///
/// Implementations: [`MemoryAdaptiveStore`] here, `RedisAdaptiveStore` in
/// `llm-tower-redis`.
pub trait AdaptiveLimitStore: Send + Sync + fmt::Debug + 'static {
    /// How much longer `key` is blocked; `None` when it is not.
    ///
    /// # Errors
    /// `Store` when the state cannot be read.
    fn blocked_for<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>>;

    /// Blocks `key` for `duration` from now. A block that already lasts longer stays.
    ///
    /// # Errors
    /// `Store` when the state cannot be written.
    fn block<'a>(&'a self, key: &'a str, duration: Duration) -> StoreFuture<'a, ()>;

    /// [`blocked_for`](Self::blocked_for) without a future, for stores that answer
    /// without I/O (memory): `Some(answer)`, or `None` to call `blocked_for`. The default
    /// is `None`.
    fn blocked_for_sync(&self, key: &str) -> Option<Option<Duration>> {
        let _ = key;
        None
    }
}

impl<T: AdaptiveLimitStore + ?Sized> AdaptiveLimitStore for Arc<T> {
    fn blocked_for<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        (**self).blocked_for(key)
    }

    fn block<'a>(&'a self, key: &'a str, duration: Duration) -> StoreFuture<'a, ()> {
        (**self).block(key, duration)
    }

    fn blocked_for_sync(&self, key: &str) -> Option<Option<Duration>> {
        (**self).blocked_for_sync(key)
    }
}

/// Blocks kept in this process, timed by a [`Clock`](llm_tower_core::Clock).
///
/// Expired blocks are dropped when the next block is written, so memory follows the
/// number of targets blocked recently.
pub struct MemoryAdaptiveStore {
    clock: SharedClock,
    blocks: DashMap<Box<str>, Instant>,
    /// When the clock started, for `horizon`.
    base: Instant,
    /// Nanoseconds after `base` at which the latest block ends: before it no map look-up
    /// is needed (the common case, no target blocked).
    horizon: AtomicU64,
}

impl MemoryAdaptiveStore {
    /// A store on tokio's clock.
    pub fn new() -> Self {
        MemoryAdaptiveStore::with_clock(TokioClock::shared())
    }

    /// A store on `clock`.
    pub fn with_clock(clock: SharedClock) -> Self {
        MemoryAdaptiveStore {
            base: clock.now(),
            clock,
            blocks: DashMap::new(),
            horizon: AtomicU64::new(0),
        }
    }

    /// [`AdaptiveLimitStore::blocked_for`] without the future.
    pub fn blocked_for_now(&self, key: &str) -> Option<Duration> {
        let horizon = self.horizon.load(Ordering::Acquire);
        if horizon == 0 {
            // No block ever: not even the clock is read.
            return None;
        }
        let now = self.clock.now();
        if self.nanos(now) >= horizon {
            return None;
        }
        let until = *self.blocks.get(key)?;
        let left = until.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    /// [`AdaptiveLimitStore::block`] without the future.
    pub fn block_now(&self, key: &str, duration: Duration) {
        let now = self.clock.now();
        let Some(until) = now.checked_add(duration) else {
            return;
        };
        if duration.is_zero() {
            return;
        }
        self.blocks.retain(|_, t| *t > now);
        self.blocks
            .entry(key.into())
            .and_modify(|t| *t = (*t).max(until))
            .or_insert(until);
        self.horizon
            .fetch_max(self.nanos(until).saturating_add(1), Ordering::AcqRel);
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for MemoryAdaptiveStore {
    fn default() -> Self {
        MemoryAdaptiveStore::new()
    }
}

impl fmt::Debug for MemoryAdaptiveStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryAdaptiveStore")
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl AdaptiveLimitStore for MemoryAdaptiveStore {
    fn blocked_for<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        Box::pin(std::future::ready(Ok(self.blocked_for_now(key))))
    }

    fn block<'a>(&'a self, key: &'a str, duration: Duration) -> StoreFuture<'a, ()> {
        self.block_now(key, duration);
        Box::pin(std::future::ready(Ok(())))
    }

    fn blocked_for_sync(&self, key: &str) -> Option<Option<Duration>> {
        Some(self.blocked_for_now(key))
    }
}

/// Checks the contract of an [`AdaptiveLimitStore`] at durations long enough for a real
/// server (minutes), so it runs against Redis without sleeping: a block is seen, a shorter
/// block does not shorten a longer one, keys are independent, and zero blocks nothing.
///
/// # Panics
/// When the store breaks the contract (it is meant for tests).
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub async fn conformance(store: &dyn AdaptiveLimitStore, key_prefix: &str) {
    let a = format!("{key_prefix}/a");
    let b = format!("{key_prefix}/b");
    assert_eq!(store.blocked_for(&a).await.unwrap(), None, "fresh key");
    store.block(&a, Duration::from_secs(120)).await.unwrap();
    let left = store.blocked_for(&a).await.unwrap().expect("blocked");
    assert!(
        left > Duration::from_secs(110) && left <= Duration::from_secs(120),
        "{left:?}"
    );
    store.block(&a, Duration::from_secs(10)).await.unwrap();
    let left = store.blocked_for(&a).await.unwrap().expect("still blocked");
    assert!(
        left > Duration::from_secs(110),
        "a shorter block shortened it: {left:?}"
    );
    store.block(&a, Duration::from_secs(300)).await.unwrap();
    let left = store.blocked_for(&a).await.unwrap().expect("still blocked");
    assert!(
        left > Duration::from_secs(290),
        "a longer block did not extend it: {left:?}"
    );
    assert_eq!(
        store.blocked_for(&b).await.unwrap(),
        None,
        "keys are independent"
    );
    store.block(&b, Duration::ZERO).await.unwrap();
    assert_eq!(
        store.blocked_for(&b).await.unwrap(),
        None,
        "zero blocks nothing"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use llm_tower_core::ManualClock;

    #[tokio::test]
    async fn memory_store_passes_the_conformance_checks() {
        conformance(&MemoryAdaptiveStore::new(), "t").await;
    }

    #[test]
    fn memory_blocks_end_with_the_clock_and_are_swept() {
        let clock = ManualClock::new();
        let store = MemoryAdaptiveStore::with_clock(Arc::new(clock.clone()));
        store.block_now("a", Duration::from_secs(2));
        assert_eq!(store.blocked_for_now("a"), Some(Duration::from_secs(2)));
        clock.advance(Duration::from_millis(1500));
        assert_eq!(store.blocked_for_now("a"), Some(Duration::from_millis(500)));
        clock.advance(Duration::from_millis(500));
        assert_eq!(store.blocked_for_now("a"), None);
        store.block_now("b", Duration::from_secs(1));
        assert_eq!(store.blocks.len(), 1, "the expired block was swept");
    }
}
