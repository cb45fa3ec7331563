//! The in-memory store: per-limiter sharded maps, bounded by dropping idle keys.

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use compact_str::CompactString;
use hashbrown::HashMap;
use llm_tower_core::{SharedClock, TokioClock};

use super::algorithm::{Algorithm, Decision, Gcra, SlidingLog, nanos};
use super::store::{Acquire, RateLimitStore, StoreFuture};

const SHARDS: usize = 64;
const SWEEP_EVERY: u64 = 256;
/// At most one shard sweep per interval: a full round of 64 shards takes at least one
/// second, which bounds the sweep's cost however fast decisions come.
const SWEEP_INTERVAL_NS: u64 = 1_000_000_000 / SHARDS as u64;

#[derive(Debug)]
enum KeyState {
    Sliding { log: SlidingLog, window: u64 },
    Bucket(Gcra),
}

impl KeyState {
    fn fresh(algorithm: &Algorithm) -> KeyState {
        match *algorithm {
            Algorithm::SlidingWindow { window, .. } => KeyState::Sliding {
                log: SlidingLog::default(),
                window: nanos(window),
            },
            Algorithm::LeakyBucket { .. } => KeyState::Bucket(Gcra::default()),
        }
    }

    fn is_idle(&self, now: u64) -> bool {
        match self {
            KeyState::Sliding { log, window } => log.is_idle(now, *window),
            KeyState::Bucket(g) => g.is_idle(now),
        }
    }

    fn decide(&mut self, algorithm: &Algorithm, now: u64, weight: u64, max_wait: u64) -> Decision {
        match (*algorithm, &mut *self) {
            (Algorithm::SlidingWindow { limit, window }, KeyState::Sliding { log, window: w }) => {
                *w = nanos(window);
                log.acquire(limit, *w, now, weight, max_wait)
            }
            (Algorithm::LeakyBucket { rate, per, burst }, KeyState::Bucket(g)) => {
                g.acquire(rate, nanos(per), burst, now, weight, max_wait)
            }
            (algorithm, state) => {
                // The limiter's algorithm changed for this key: start over.
                *state = KeyState::fresh(&algorithm);
                match (algorithm, state) {
                    (Algorithm::SlidingWindow { limit, window }, KeyState::Sliding { log, .. }) => {
                        log.acquire(limit, nanos(window), now, weight, max_wait)
                    }
                    (Algorithm::LeakyBucket { rate, per, burst }, KeyState::Bucket(g)) => {
                        g.acquire(rate, nanos(per), burst, now, weight, max_wait)
                    }
                    _ => Decision::TooHeavy { capacity: 0 },
                }
            }
        }
    }
}

/// One limiter's keys, spread over mutex-guarded shards.
struct Scope {
    shards: Box<[Mutex<HashMap<CompactString, KeyState>>]>,
}

impl Scope {
    fn new() -> Self {
        Scope {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

/// Rate-limit state in this process's memory.
///
/// Each limiter (scope) has its own map of keys, spread over 64 mutex-guarded shards;
/// keys up to 24 bytes are stored inline. A key whose state can no longer affect a
/// decision (all its log entries have left the window, or its bucket has drained) is
/// *idle*; shards are swept for idle keys round-robin as decisions come (at most one shard
/// per 1/64 s), so memory is bounded by the keys active within about one window plus one
/// second.
///
/// # Clone
/// Wrap it in an `Arc` to share; the layer does that for you.
pub struct MemoryStore {
    /// Scopes by limiter name (hashbrown's fast hasher: looked up on every decision).
    scopes: RwLock<HashMap<Box<str>, Arc<Scope>>>,
    hasher: hashbrown::DefaultHashBuilder,
    ops: AtomicU64,
    next_sweep: AtomicU64,
    sweeps: AtomicU64,
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
        MemoryStore {
            scopes: RwLock::new(HashMap::new()),
            hasher: Default::default(),
            ops: AtomicU64::new(1),
            next_sweep: AtomicU64::new(0),
            sweeps: AtomicU64::new(0),
            clock,
            epoch,
        }
    }

    fn now(&self) -> u64 {
        nanos(self.clock.now().saturating_duration_since(self.epoch))
    }

    /// Runs `f` on the scope `name` (created on first use) under the scopes' read lock,
    /// without cloning its `Arc` on the hot path.
    fn with_scope<R>(&self, name: &str, f: impl FnOnce(&Scope) -> R) -> R {
        {
            let scopes = self.scopes.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = scopes.get(name) {
                return f(s);
            }
        }
        let scope = {
            let mut w = self.scopes.write().unwrap_or_else(PoisonError::into_inner);
            w.entry(name.into())
                .or_insert_with(|| Arc::new(Scope::new()))
                .clone()
        };
        f(&scope)
    }

    /// Sweeps one shard (round-robin) if the sweep interval has passed, skipping a busy
    /// shard: memory stays bounded by the keys active within about one window plus a second.
    fn maybe_sweep(&self, scope: &Scope, now: u64) {
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due
            || self
                .next_sweep
                .compare_exchange(
                    due,
                    now + SWEEP_INTERVAL_NS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let victim = (self.sweeps.fetch_add(1, Ordering::Relaxed) as usize) % SHARDS;
        if let Some(Ok(mut m)) = scope.shards.get(victim).map(Mutex::try_lock) {
            m.retain(|_, s| !s.is_idle(now));
        }
    }

    /// Makes one decision synchronously (the trait method wraps this, after checking the
    /// algorithm with [`Algorithm::validate`]).
    ///
    /// The clock is read under the key's shard lock, so decisions on one key see
    /// non-decreasing times (the algorithms also clamp to the latest time they saw).
    pub fn decide(&self, req: Acquire<'_>) -> Decision {
        self.with_scope(req.scope, |scope| {
            let op = self.ops.fetch_add(1, Ordering::Relaxed);
            if op.is_multiple_of(SWEEP_EVERY) {
                self.maybe_sweep(scope, self.now());
            }
            let idx = (self.hasher.hash_one(req.key) as usize) % SHARDS;
            let Some(shard) = scope.shards.get(idx) else {
                return Decision::TooHeavy { capacity: 0 };
            };
            let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let now = self.now();
            let max_wait = nanos(req.max_wait);
            if let Some(state) = map.get_mut(req.key) {
                return state.decide(req.algorithm, now, req.weight, max_wait);
            }
            let mut state = KeyState::fresh(req.algorithm);
            let d = state.decide(req.algorithm, now, req.weight, max_wait);
            map.insert(CompactString::new(req.key), state);
            d
        })
    }

    /// Keys currently held (idle keys not yet swept included).
    pub fn len(&self) -> usize {
        let scopes = self.scopes.read().unwrap_or_else(PoisonError::into_inner);
        scopes
            .values()
            .flat_map(|s| s.shards.iter())
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// `true` when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every idle key now (normally done incrementally).
    pub fn sweep(&self) {
        let now = self.now();
        let scopes = self.scopes.read().unwrap_or_else(PoisonError::into_inner);
        for m in scopes.values().flat_map(|s| s.shards.iter()) {
            m.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, st| !st.is_idle(now));
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.len())
            .finish()
    }
}

impl RateLimitStore for MemoryStore {
    fn acquire<'a>(&'a self, req: Acquire<'a>) -> StoreFuture<'a, Decision> {
        let d = req.algorithm.validate().map(|()| self.decide(req));
        Box::pin(std::future::ready(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_tower_core::ManualClock;
    use std::time::Duration;

    #[test]
    fn idle_keys_are_dropped() {
        let clock = ManualClock::new();
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let alg = Algorithm::sliding_window(5, Duration::from_secs(1)).unwrap();
        for i in 0..10_000 {
            let key = format!("k{i}");
            let d = store.decide(Acquire {
                scope: "s",
                key: &key,
                algorithm: &alg,
                weight: 1,
                max_wait: Duration::ZERO,
            });
            assert!(matches!(d, Decision::Admitted { .. }));
        }
        assert_eq!(store.len(), 10_000);
        clock.advance(Duration::from_secs(2));
        // Incremental sweeps run as traffic continues on one key.
        for _ in 0..SHARDS {
            clock.advance(Duration::from_millis(20));
            for _ in 0..SWEEP_EVERY {
                store.decide(Acquire {
                    scope: "s",
                    key: "hot",
                    algorithm: &alg,
                    weight: 1,
                    max_wait: Duration::ZERO,
                });
            }
        }
        assert!(store.len() <= 1, "idle keys kept: {}", store.len());
    }
}
