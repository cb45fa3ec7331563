//! The conformance suite every [`RateLimitStore`] must pass.
//!
//! Call [`run`] from a test with a factory that builds a fresh store on the given
//! [`ManualClock`] (the Redis store passes the manual time to its scripts in test mode).
//! `resolution` is the store's time granularity (1 ns in memory, 1 µs on Redis): exact
//! durations are compared within it. Each case panics with a clear message on failure.

use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::ManualClock;

use super::algorithm::{Algorithm, Decision};
use super::store::{Acquire, RateLimitStore};

/// Builds a fresh store on a manual clock, with a fresh namespace.
pub trait StoreFactory {
    /// A new store whose time is `clock`.
    fn make(&self, clock: ManualClock) -> Arc<dyn RateLimitStore>;
}

impl<F: Fn(ManualClock) -> Arc<dyn RateLimitStore>> StoreFactory for F {
    fn make(&self, clock: ManualClock) -> Arc<dyn RateLimitStore> {
        self(clock)
    }
}

const S: Duration = Duration::from_secs(1);

async fn ask(
    store: &dyn RateLimitStore,
    scope: &str,
    key: &str,
    alg: &Algorithm,
    weight: u64,
    max_wait: Duration,
) -> Decision {
    match store
        .acquire(Acquire {
            scope,
            key,
            algorithm: alg,
            weight,
            max_wait,
        })
        .await
    {
        Ok(d) => d,
        Err(e) => panic!("store failed: {e}"),
    }
}

fn near(a: Duration, b: Duration, res: Duration) -> bool {
    let d = a.abs_diff(b);
    d <= res * 4
}

/// Runs every case.
pub async fn run(factory: &dyn StoreFactory, resolution: Duration) {
    sliding_window_admits_exactly_the_limit(factory, resolution).await;
    sliding_window_is_closed_and_denials_are_not_recorded(factory, resolution).await;
    sliding_window_boundary_is_exact(factory, resolution).await;
    sliding_window_weights(factory, resolution).await;
    too_heavy_is_rejected_at_once(factory).await;
    wait_mode_hands_out_fifo_slots(factory, resolution).await;
    leaky_bucket_bursts_then_paces(factory, resolution).await;
    keys_and_scopes_are_independent(factory).await;
    concurrent_decisions_never_exceed_the_limit(factory).await;
}

/// Limit 3 per 10 s: three pass, the fourth is told exactly when it would pass.
pub async fn sliding_window_admits_exactly_the_limit(f: &dyn StoreFactory, res: Duration) {
    let clock = ManualClock::new();
    let store = f.make(clock.clone());
    let alg = Algorithm::SlidingWindow {
        limit: 3,
        window: 10 * S,
    };
    for i in 0..3 {
        let d = ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await;
        assert!(
            matches!(d, Decision::Admitted { .. }),
            "request {i} should pass: {d:?}"
        );
        clock.advance(S);
    }
    // t = 3 s; the first entry (t = 0) leaves the closed window after t = 10 s.
    match ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await {
        Decision::Denied { retry_after } => assert!(
            near(retry_after, 7 * S, res),
            "retry_after {retry_after:?}, expected ~7s"
        ),
        d => panic!("4th request should be denied: {d:?}"),
    }
}

/// Entries at exactly `now - window` still count; a denied request leaves no trace.
pub async fn sliding_window_is_closed_and_denials_are_not_recorded(
    f: &dyn StoreFactory,
    res: Duration,
) {
    let clock = ManualClock::new();
    let store = f.make(clock.clone());
    let alg = Algorithm::SlidingWindow {
        limit: 1,
        window: 10 * S,
    };
    assert!(matches!(
        ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await,
        Decision::Admitted { .. }
    ));
    clock.advance(10 * S - res);
    for _ in 0..5 {
        assert!(
            matches!(
                ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await,
                Decision::Denied { .. }
            ),
            "inside the closed window"
        );
    }
    clock.advance(res * 3);
    let d = ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await;
    assert!(
        matches!(d, Decision::Admitted { .. }),
        "denials must not be recorded: {d:?}"
    );
}

/// The exact edge of the closed window: an entry at `t` still counts for a request at
/// exactly `t + window`, and no longer one resolution unit later.
pub async fn sliding_window_boundary_is_exact(f: &dyn StoreFactory, res: Duration) {
    let clock = ManualClock::new();
    let store = f.make(clock.clone());
    let alg = Algorithm::SlidingWindow {
        limit: 1,
        window: 10 * S,
    };
    assert!(matches!(
        ask(&*store, "t", "edge", &alg, 1, Duration::ZERO).await,
        Decision::Admitted { .. }
    ));
    clock.advance(10 * S);
    match ask(&*store, "t", "edge", &alg, 1, Duration::ZERO).await {
        Decision::Denied { retry_after } => assert!(
            !retry_after.is_zero() && retry_after <= res,
            "at exactly t + window the entry leaves one resolution unit ({res:?}) later, \
             got retry_after {retry_after:?}"
        ),
        d => panic!("at exactly t + window the entry at t is still inside the window: {d:?}"),
    }
    clock.advance(res);
    let d = ask(&*store, "t", "edge", &alg, 1, Duration::ZERO).await;
    assert!(
        matches!(d, Decision::Admitted { .. }),
        "at t + window + {res:?} the entry at t has left the window: {d:?}"
    );
}

/// Weights add up; the retry-after accounts for how much must leave the window.
pub async fn sliding_window_weights(f: &dyn StoreFactory, res: Duration) {
    let clock = ManualClock::new();
    let store = f.make(clock.clone());
    let alg = Algorithm::SlidingWindow {
        limit: 100,
        window: 60 * S,
    };
    assert!(matches!(
        ask(&*store, "t", "k", &alg, 40, Duration::ZERO).await,
        Decision::Admitted { .. }
    ));
    clock.advance(10 * S);
    match ask(&*store, "t", "k", &alg, 50, Duration::ZERO).await {
        Decision::Admitted { remaining, .. } => assert_eq!(remaining, 10),
        d => panic!("{d:?}"),
    }
    clock.advance(10 * S);
    // 90 used; 30 needs the first 40 gone: at 60 s, 40 s from now.
    match ask(&*store, "t", "k", &alg, 30, Duration::ZERO).await {
        Decision::Denied { retry_after } => {
            assert!(near(retry_after, 40 * S, res), "{retry_after:?}")
        }
        d => panic!("{d:?}"),
    }
    assert!(matches!(
        ask(&*store, "t", "k", &alg, 10, Duration::ZERO).await,
        Decision::Admitted { .. }
    ));
}

/// A request heavier than the whole limit is refused as impossible, in both algorithms.
pub async fn too_heavy_is_rejected_at_once(f: &dyn StoreFactory) {
    let store = f.make(ManualClock::new());
    let sw = Algorithm::SlidingWindow {
        limit: 10,
        window: S,
    };
    let lb = Algorithm::LeakyBucket {
        rate: 10,
        per: S,
        burst: 5,
    };
    assert_eq!(
        ask(&*store, "t", "a", &sw, 11, Duration::from_secs(3600)).await,
        Decision::TooHeavy { capacity: 10 }
    );
    assert_eq!(
        ask(&*store, "t", "b", &lb, 6, Duration::from_secs(3600)).await,
        Decision::TooHeavy { capacity: 5 }
    );
}

/// Waiting callers get successive slots in call order; a wait past `max_wait` is denied
/// and not recorded.
pub async fn wait_mode_hands_out_fifo_slots(f: &dyn StoreFactory, res: Duration) {
    let clock = ManualClock::new();
    let store = f.make(clock.clone());
    let alg = Algorithm::SlidingWindow {
        limit: 2,
        window: 10 * S,
    };
    let long = Duration::from_secs(3600);
    let mut waits = Vec::new();
    for _ in 0..6 {
        match ask(&*store, "t", "k", &alg, 1, long).await {
            Decision::Admitted { wait, .. } => waits.push(wait),
            d => panic!("{d:?}"),
        }
    }
    assert!(waits[0].is_zero() && waits[1].is_zero(), "{waits:?}");
    assert!(
        near(waits[2], 10 * S, res) && near(waits[3], 10 * S, res),
        "{waits:?}"
    );
    assert!(
        near(waits[4], 20 * S, res) && near(waits[5], 20 * S, res),
        "{waits:?}"
    );
    // The next slot is ~30 s away: with 5 s of patience it is denied, and not recorded.
    match ask(&*store, "t", "k", &alg, 1, 5 * S).await {
        Decision::Denied { retry_after } => {
            assert!(near(retry_after, 30 * S, res), "{retry_after:?}")
        }
        d => panic!("{d:?}"),
    }
    match ask(&*store, "t", "k", &alg, 1, long).await {
        Decision::Admitted { wait, .. } => assert!(near(wait, 30 * S, res), "{wait:?}"),
        d => panic!("{d:?}"),
    }

    let bucket = Algorithm::LeakyBucket {
        rate: 1,
        per: S,
        burst: 1,
    };
    let mut waits = Vec::new();
    for _ in 0..3 {
        match ask(&*store, "t", "gcra", &bucket, 1, long).await {
            Decision::Admitted { wait, .. } => waits.push(wait),
            d => panic!("{d:?}"),
        }
    }
    assert!(
        waits[0].is_zero() && near(waits[1], S, res) && near(waits[2], 2 * S, res),
        "{waits:?}"
    );
}

/// GCRA: `burst` at once, then one every `per / rate`.
pub async fn leaky_bucket_bursts_then_paces(f: &dyn StoreFactory, res: Duration) {
    let clock = ManualClock::new();
    let store = f.make(clock.clone());
    let alg = Algorithm::LeakyBucket {
        rate: 10,
        per: S,
        burst: 3,
    };
    for _ in 0..3 {
        assert!(matches!(
            ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await,
            Decision::Admitted { .. }
        ));
    }
    match ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await {
        Decision::Denied { retry_after } => assert!(
            near(retry_after, Duration::from_millis(100), res),
            "{retry_after:?}"
        ),
        d => panic!("{d:?}"),
    }
    clock.advance(Duration::from_millis(100));
    assert!(matches!(
        ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await,
        Decision::Admitted { .. }
    ));
    assert!(matches!(
        ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await,
        Decision::Denied { .. }
    ));
    // Weighted: after a full drain, 3 units pass at once, a 2-unit request waits 200 ms.
    clock.advance(S);
    assert!(matches!(
        ask(&*store, "t", "k", &alg, 3, Duration::ZERO).await,
        Decision::Admitted { .. }
    ));
    match ask(&*store, "t", "k", &alg, 2, Duration::ZERO).await {
        Decision::Denied { retry_after } => assert!(
            near(retry_after, Duration::from_millis(200), res),
            "{retry_after:?}"
        ),
        d => panic!("{d:?}"),
    }
}

/// Different keys and different scopes never share state.
pub async fn keys_and_scopes_are_independent(f: &dyn StoreFactory) {
    let store = f.make(ManualClock::new());
    let alg = Algorithm::SlidingWindow {
        limit: 1,
        window: S,
    };
    for (scope, key) in [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")] {
        let d = ask(&*store, scope, key, &alg, 1, Duration::ZERO).await;
        assert!(
            matches!(d, Decision::Admitted { .. }),
            "{scope}/{key}: {d:?}"
        );
    }
    assert!(matches!(
        ask(&*store, "a", "x", &alg, 1, Duration::ZERO).await,
        Decision::Denied { .. }
    ));
}

/// 200 decisions at one instant from concurrent tasks: exactly `limit` are admitted.
pub async fn concurrent_decisions_never_exceed_the_limit(f: &dyn StoreFactory) {
    let store = f.make(ManualClock::new());
    let alg = Algorithm::SlidingWindow {
        limit: 37,
        window: 60 * S,
    };
    let futs = (0..200).map(|_| {
        let store = store.clone();
        async move { ask(&*store, "t", "k", &alg, 1, Duration::ZERO).await }
    });
    let results = futures_util::future::join_all(futs).await;
    let admitted = results
        .iter()
        .filter(|d| matches!(d, Decision::Admitted { .. }))
        .count();
    assert_eq!(admitted, 37);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::MemoryStore;

    #[tokio::test]
    async fn memory_store_passes_conformance() {
        let factory = |clock: ManualClock| -> Arc<dyn RateLimitStore> {
            Arc::new(MemoryStore::with_clock(Arc::new(clock)))
        };
        run(&factory, Duration::from_nanos(1)).await;
    }
}
