//! The in-memory store: sharded, bounded by dropping idle keys.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use hashbrown::{Equivalent, HashMap};
use llm_tower_core::{SharedClock, TokioClock};

use super::algorithm::{Algorithm, Decision, Gcra, SlidingLog, nanos};
use super::store::{Acquire, RateLimitStore, StoreFuture};

const SHARDS: usize = 64;
const SWEEP_EVERY: u64 = 256;

#[derive(Debug, PartialEq, Eq, Hash)]
struct OwnedKey {
    scope: Box<str>,
    key: Box<str>,
}

#[derive(Hash)]
struct BorrowedKey<'a> {
    scope: &'a str,
    key: &'a str,
}

impl Equivalent<OwnedKey> for BorrowedKey<'_> {
    fn equivalent(&self, k: &OwnedKey) -> bool {
        *k.scope == *self.scope && *k.key == *self.key
    }
}

#[derive(Debug)]
enum KeyState {
    Sliding { log: SlidingLog, window: u64 },
    Bucket(Gcra),
}

impl KeyState {
    fn is_idle(&self, now: u64) -> bool {
        match self {
            KeyState::Sliding { log, window } => log.is_idle(now, *window),
            KeyState::Bucket(g) => g.is_idle(now),
        }
    }
}

struct Shard {
    map: HashMap<OwnedKey, KeyState>,
}

/// Rate-limit state in this process's memory.
///
/// Keys are spread over 64 mutex-guarded shards. A key whose state can no longer affect a
/// decision (all its log entries have left the window, or its bucket has drained) is
/// *idle*; one shard is swept for idle keys every 256 decisions (round-robin), so memory
/// is bounded by the keys active within about one window.
///
/// # Clone
/// Wrap it in an `Arc` to share; the layer does that for you.
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: hashbrown::DefaultHashBuilder,
    ops: AtomicU64,
    clock: SharedClock,
    epoch: Instant,
}


impl MemoryStore {
    /// A store on tokio's clock.
    pub fn new() -> Self {
        MemoryStore::with_clock(TokioClock::shared())
    }

    /// A store on the given clock.
    pub fn with_clock(clock: SharedClock) -> Self {
        let epoch = clock.now();
        let shards = (0..SHARDS)
            .map(|_| Mutex::new(Shard { map: HashMap::new() }))
            .collect();
        MemoryStore { shards, hasher: Default::default(), ops: AtomicU64::new(1), clock, epoch }
    }

    /// Makes one decision synchronously (the trait method wraps this).
    pub fn decide(&self, req: Acquire<'_>) -> Decision {
        let now = nanos(self.clock.now().saturating_duration_since(self.epoch));
        self.decide_at(req, now)
    }

    fn decide_at(&self, req: Acquire<'_>, now: u64) -> Decision {
        let borrowed = BorrowedKey { scope: req.scope, key: req.key };
        let mut h = self.hasher.build_hasher();
        borrowed.hash(&mut h);
        let idx = (h.finish() as usize) % SHARDS;
        let Some(shard) = self.shards.get(idx) else {
            return Decision::TooHeavy { capacity: 0 };
        };
        let op = self.ops.fetch_add(1, Ordering::Relaxed);
        if op % SWEEP_EVERY == 0 {
            // Sweep the shards round-robin, one every SWEEP_EVERY decisions, skipping a
            // shard that is busy: memory stays bounded by the keys active in one window.
            let victim = ((op / SWEEP_EVERY) as usize) % SHARDS;
            if let Some(Ok(mut v)) = self.shards.get(victim).map(Mutex::try_lock) {
                v.map.retain(|_, s| !s.is_idle(now));
            }
        }
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let max_wait = nanos(req.max_wait);
        let state = match shard.map.get_mut(&borrowed) {
            Some(s) => s,
            None => shard
                .map
                .entry(OwnedKey { scope: req.scope.into(), key: req.key.into() })
                .or_insert_with(|| fresh(req.algorithm)),
        };
        match (*req.algorithm, &mut *state) {
            (Algorithm::SlidingWindow { limit, window }, KeyState::Sliding { log, window: w }) => {
                *w = nanos(window);
                log.acquire(limit, *w, now, req.weight, max_wait)
            }
            (Algorithm::LeakyBucket { rate, per, burst }, KeyState::Bucket(g)) => {
                g.acquire(rate, nanos(per), burst, now, req.weight, max_wait)
            }
            (algorithm, state) => {
                // The limiter's algorithm changed for this key: start over.
                *state = fresh(&algorithm);
                match (algorithm, state) {
                    (Algorithm::SlidingWindow { limit, window }, KeyState::Sliding { log, .. }) => {
                        log.acquire(limit, nanos(window), now, req.weight, max_wait)
                    }
                    (Algorithm::LeakyBucket { rate, per, burst }, KeyState::Bucket(g)) => {
                        g.acquire(rate, nanos(per), burst, now, req.weight, max_wait)
                    }
                    _ => Decision::TooHeavy { capacity: 0 },
                }
            }
        }
    }

    /// Keys currently held (idle keys not yet swept included).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len())
            .sum()
    }

    /// `true` when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every idle key now (normally done incrementally).
    pub fn sweep(&self) {
        let now = nanos(self.clock.now().saturating_duration_since(self.epoch));
        for s in self.shards.iter() {
            let mut s = s.lock().unwrap_or_else(PoisonError::into_inner);
            s.map.retain(|_, st| !st.is_idle(now));
        }
    }
}

fn fresh(algorithm: &Algorithm) -> KeyState {
    match *algorithm {
        Algorithm::SlidingWindow { window, .. } => {
            KeyState::Sliding { log: SlidingLog::default(), window: nanos(window) }
        }
        Algorithm::LeakyBucket { .. } => KeyState::Bucket(Gcra::default()),
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("keys", &self.len()).finish()
    }
}

impl RateLimitStore for MemoryStore {
    fn acquire<'a>(&'a self, req: Acquire<'a>) -> StoreFuture<'a, Decision> {
        let d = self.decide(req);
        Box::pin(std::future::ready(Ok(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_tower_core::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn idle_keys_are_dropped() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let alg = Algorithm::sliding_window(5, Duration::from_secs(1)).unwrap();
        for i in 0..10_000 {
            let key = format!("k{i}");
            let d = store.decide(Acquire { scope: "s", key: &key, algorithm: &alg, weight: 1, max_wait: Duration::ZERO });
            assert!(matches!(d, Decision::Admitted { .. }));
        }
        assert_eq!(store.len(), 10_000);
        clock.advance(Duration::from_secs(2));
        // Incremental sweeps run as traffic continues on one key.
        for _ in 0..(SWEEP_EVERY as usize * SHARDS) {
            store.decide(Acquire { scope: "s", key: "hot", algorithm: &alg, weight: 1, max_wait: Duration::ZERO });
        }
        assert!(store.len() <= 1, "idle keys kept: {}", store.len());
    }
}
