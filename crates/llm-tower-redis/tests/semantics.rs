//! The Lua scripts against the in-memory algorithms, and Redis-specific behaviour
//! (server clock, TTLs, NOSCRIPT, reservation expiry, reply errors).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::{ErrorKind, ManualClock, Money};
use llm_tower_layers::cost::{BudgetStore, ReserveOutcome};
use llm_tower_layers::rate_limit::{
    Acquire, Algorithm, Decision, Gcra, RateLimitStore, SlidingLog,
};
use llm_tower_redis::{
    FailurePolicy, RedisBudgetStore, RedisRateLimitStore, TEST_CLOCK_OFFSET_MICROS,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A decision in integer units: memory decisions are read as nanoseconds, Redis ones as
/// microseconds, so feeding the memory algorithm microseconds gives the same numbers.
fn units(d: Decision, micros: bool) -> (u8, u128, u64, u128) {
    let t = |d: Duration| if micros { d.as_micros() } else { d.as_nanos() };
    match d {
        Decision::Admitted {
            wait,
            remaining,
            reset,
        } => (1, t(wait), remaining, t(reset)),
        Decision::Denied { retry_after } => (0, t(retry_after), 0, 0),
        Decision::TooHeavy { capacity } => (2, 0, capacity, 0),
    }
}

/// Denied, admitted at once, admitted after a wait, too heavy.
fn kind(d: Decision) -> usize {
    match d {
        Decision::Denied { .. } => 0,
        Decision::Admitted { wait, .. } if wait.is_zero() => 1,
        Decision::Admitted { .. } => 2,
        Decision::TooHeavy { .. } => 3,
    }
}

async fn ask(
    store: &dyn RateLimitStore,
    alg: &Algorithm,
    key: &str,
    weight: u64,
    max_wait_us: u64,
) -> Decision {
    store
        .acquire(Acquire {
            scope: "diff",
            key,
            algorithm: alg,
            weight,
            max_wait: Duration::from_micros(max_wait_us),
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_script_matches_the_in_memory_log_step_by_step() {
    let Some(url) = common::redis_or_skip("sliding window differential").await else {
        return;
    };
    let mut seen = [0usize; 4];
    for seed in 0..6u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let clock = ManualClock::new();
        let store = RedisRateLimitStore::new(&common::config(&url, "diff-sw"))
            .unwrap()
            .with_test_clock(clock.clone());
        let limit = rng.random_range(1..=12u64);
        let window_us = rng.random_range(1..=2_000u64);
        let alg = Algorithm::SlidingWindow {
            limit,
            window: Duration::from_micros(window_us),
        };
        let mut log = SlidingLog::default();
        for step in 0..250 {
            // Often the same instant (coalesced entries), sometimes across the window edge.
            let dt = match rng.random_range(0..4) {
                0 => 0,
                1 => 1,
                2 => window_us,
                _ => rng.random_range(0..=window_us / 2 + 1),
            };
            clock.advance(Duration::from_micros(dt));
            let now =
                TEST_CLOCK_OFFSET_MICROS + u64::try_from(clock.elapsed().as_micros()).unwrap();
            let weight = rng.random_range(1..=limit + 1);
            let max_wait = if rng.random_bool(0.4) {
                rng.random_range(0..=3 * window_us)
            } else {
                0
            };
            let expected = if weight > limit {
                Decision::TooHeavy { capacity: limit }
            } else {
                log.acquire(limit, window_us, now, weight, max_wait)
            };
            let got = ask(&store, &alg, "k", weight, max_wait).await;
            assert_eq!(
                units(got, true),
                units(expected, false),
                "seed {seed} step {step}: limit {limit}, window {window_us} us, weight {weight}, max_wait {max_wait}"
            );
            seen[kind(got)] += 1;
        }
    }
    // Every kind of answer was compared: denied, admitted at once, admitted after a wait, too heavy.
    assert!(seen.iter().all(|&n| n > 10), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaky_bucket_script_matches_the_in_memory_gcra_step_by_step() {
    let Some(url) = common::redis_or_skip("leaky bucket differential").await else {
        return;
    };
    let mut seen = [0usize; 4];
    for seed in 0..6u64 {
        let mut rng = SmallRng::seed_from_u64(100 + seed);
        let clock = ManualClock::new();
        let store = RedisRateLimitStore::new(&common::config(&url, "diff-lb"))
            .unwrap()
            .with_test_clock(clock.clone());
        let rate = rng.random_range(1..=50u64);
        let per_us = rng.random_range(1..=5_000u64);
        let burst = rng.random_range(1..=10u64);
        let alg = Algorithm::LeakyBucket {
            rate,
            per: Duration::from_micros(per_us),
            burst,
        };
        let mut gcra = Gcra::default();
        for step in 0..250 {
            clock.advance(Duration::from_micros(rng.random_range(0..=per_us / 4 + 1)));
            let now =
                TEST_CLOCK_OFFSET_MICROS + u64::try_from(clock.elapsed().as_micros()).unwrap();
            let weight = rng.random_range(1..=burst + 1);
            let max_wait = if rng.random_bool(0.4) {
                rng.random_range(0..=2 * per_us)
            } else {
                0
            };
            let expected = if weight > burst {
                Decision::TooHeavy { capacity: burst }
            } else {
                gcra.acquire(rate, per_us, burst, now, weight, max_wait)
            };
            let got = ask(&store, &alg, "k", weight, max_wait).await;
            assert_eq!(
                units(got, true),
                units(expected, false),
                "seed {seed} step {step}: {rate} per {per_us} us, burst {burst}, weight {weight}, max_wait {max_wait}"
            );
            seen[kind(got)] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n > 10), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_uses_the_server_clock() {
    let Some(url) = common::redis_or_skip("server clock").await else {
        return;
    };
    let store = RedisRateLimitStore::new(&common::config(&url, "time")).unwrap();
    let alg = Algorithm::sliding_window(2, Duration::from_secs(3600)).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            ask(&store, &alg, "k", 1, 0).await,
            Decision::Admitted { .. }
        ));
    }
    match ask(&store, &alg, "k", 1, 0).await {
        // The first entry leaves the window an hour after it was made, by Redis's clock.
        Decision::Denied { retry_after } => {
            assert!(
                retry_after <= Duration::from_secs(3600) + Duration::from_micros(1),
                "{retry_after:?}"
            );
            assert!(retry_after > Duration::from_secs(3000), "{retry_after:?}");
        }
        d => panic!("{d:?}"),
    }
    let bucket = Algorithm::leaky_bucket(1, Duration::from_secs(3600), 1).unwrap();
    assert!(matches!(
        ask(&store, &bucket, "b", 1, 0).await,
        Decision::Admitted { .. }
    ));
    assert!(matches!(
        ask(&store, &bucket, "b", 1, 0).await,
        Decision::Denied { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keys_carry_a_ttl_of_about_the_window() {
    let Some(url) = common::redis_or_skip("key ttl").await else {
        return;
    };
    let config = common::config(&url, "ttl");
    let prefix = config.prefix.clone();
    let store = RedisRateLimitStore::new(&config).unwrap();
    let alg = Algorithm::sliding_window(5, Duration::from_secs(30)).unwrap();
    ask(&store, &alg, "k", 1, 0).await;
    let bucket = Algorithm::leaky_bucket(1, Duration::from_secs(10), 3).unwrap();
    ask(&store, &bucket, "k", 2, 0).await;
    let mut raw = common::raw(&url).await;
    for (key, max_ms) in [
        (format!("{prefix}:v1:{{sw:diff:k}}:log"), 31_000),
        (format!("{prefix}:v1:{{sw:diff:k}}:sum"), 31_000),
        (format!("{prefix}:v2:{{lb:diff:k}}:tat"), 21_000),
    ] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= max_ms, "{key}: pttl {ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_is_reloaded_transparently() {
    let Some(url) = common::redis_or_skip("noscript").await else {
        return;
    };
    let store = RedisRateLimitStore::new(&common::config(&url, "noscript")).unwrap();
    let alg = Algorithm::sliding_window(10, Duration::from_secs(60)).unwrap();
    assert!(matches!(
        ask(&store, &alg, "k", 1, 0).await,
        Decision::Admitted { remaining: 9, .. }
    ));
    let mut raw = common::raw(&url).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(matches!(
        ask(&store, &alg, "k", 1, 0).await,
        Decision::Admitted { remaining: 8, .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_the_wrong_type_is_a_store_error_even_when_failing_open() {
    let Some(url) = common::redis_or_skip("wrong type").await else {
        return;
    };
    let config = common::config(&url, "wrongtype").failure_policy(FailurePolicy::FailOpenLocal);
    let prefix = config.prefix.clone();
    let store = RedisRateLimitStore::new(&config).unwrap();
    let mut raw = common::raw(&url).await;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:v1:{{sw:diff:k}}:log"))
        .arg("not a list")
        .arg("EX")
        .arg(60)
        .query_async(&mut raw)
        .await
        .unwrap();
    let alg = Algorithm::sliding_window(10, Duration::from_secs(60)).unwrap();
    let err = store
        .acquire(Acquire {
            scope: "diff",
            key: "k",
            algorithm: &alg,
            weight: 1,
            max_wait: Duration::ZERO,
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Store, "{err}");
    assert!(
        store.connection().is_up(),
        "a bad key does not take Redis down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsettled_reservations_expire_and_release_their_hold() {
    let Some(url) = common::redis_or_skip("reservation expiry").await else {
        return;
    };
    let clock = ManualClock::new();
    let store = RedisBudgetStore::new(&common::config(&url, "expiry"))
        .unwrap()
        .counter_retention(Duration::from_secs(600))
        .with_test_clock(clock.clone());
    let limit = Money::from_nanos(1_000);
    let short = store
        .reserve("k", Money::from_nanos(600), limit, Duration::from_secs(10))
        .await
        .unwrap();
    let ReserveOutcome::Reserved(short_id) = short else {
        panic!("{short:?}")
    };
    let long = store
        .reserve("k", Money::from_nanos(300), limit, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(long, ReserveOutcome::Reserved(_)));
    assert!(matches!(
        store.reserve("k", Money::from_nanos(200), limit, Duration::from_secs(60)).await.unwrap(),
        ReserveOutcome::Exceeded { reserved, .. } if reserved == Money::from_nanos(900)
    ));
    // The instance holding the 600 "dies": 10 s later its hold is gone.
    clock.advance(Duration::from_secs(10));
    let u = store.usage("k").await.unwrap();
    assert_eq!((u.spent, u.reserved), (Money::ZERO, Money::from_nanos(300)));
    assert!(matches!(
        store
            .reserve("k", Money::from_nanos(700), limit, Duration::from_secs(60))
            .await
            .unwrap(),
        ReserveOutcome::Reserved(_)
    ));
    // A late settlement of the expired hold still counts its spend, and releases nothing else.
    let s = store
        .settle("k", &short_id, Money::from_nanos(50))
        .await
        .unwrap();
    assert_eq!((s.before, s.after), (Money::ZERO, Money::from_nanos(50)));
    let u = store.usage("k").await.unwrap();
    assert_eq!(
        (u.spent, u.reserved),
        (Money::from_nanos(50), Money::from_nanos(1_000))
    );
    // Everything expires: nothing held, the spend stays.
    clock.advance(Duration::from_secs(61));
    let u = store.usage("k").await.unwrap();
    assert_eq!((u.spent, u.reserved), (Money::from_nanos(50), Money::ZERO));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_are_exact_in_nano_usd_and_warn_only_budgets_have_no_limit() {
    let Some(url) = common::redis_or_skip("budget exactness").await else {
        return;
    };
    let store = RedisBudgetStore::new(&common::config(&url, "exact"))
        .unwrap()
        .counter_retention(Duration::from_secs(600));
    let big = Money::from_nanos(4_000_000_000_000_001); // ~4 million USD and one nano
    let ReserveOutcome::Reserved(id) = store
        .reserve("k", big, Money::MAX, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!()
    };
    let s = store.settle("k", &id, big).await.unwrap();
    assert_eq!((s.before, s.after), (Money::ZERO, big));
    let ReserveOutcome::Reserved(id) = store
        .reserve("k", big, Money::MAX, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!()
    };
    let s = store.settle("k", &id, big).await.unwrap();
    assert_eq!(s.after, Money::from_nanos(8_000_000_000_000_002));
    // Past 2^53 a limited reservation refuses to compare inexactly.
    let ReserveOutcome::Reserved(id) = store
        .reserve("k", big, Money::MAX, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!()
    };
    store.settle("k", &id, big).await.unwrap();
    let e = store
        .reserve(
            "k",
            Money::from_nanos(1),
            Money::from_usd(20_000_000),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store);
    let u = store.usage("k").await.unwrap();
    assert_eq!(
        u.spent,
        Money::from_nanos(12_000_000_000_000_003),
        "INCRBY keeps every nano"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_thresholds_are_crossed_by_exactly_one_settlement_across_instances() {
    let Some(url) = common::redis_or_skip("threshold crossing").await else {
        return;
    };
    let config = common::config(&url, "threshold");
    let stores: Vec<Arc<dyn BudgetStore>> = (0..4)
        .map(|_| {
            Arc::new(
                RedisBudgetStore::new(&config)
                    .unwrap()
                    .counter_retention(Duration::from_secs(600)),
            ) as _
        })
        .collect();
    let tasks = (0..400).map(|i| {
        let store = stores[i % 4].clone();
        tokio::spawn(async move {
            let amount = Money::from_nanos(7 + (i as i64 % 5));
            match store
                .reserve("k", amount, Money::MAX, Duration::from_secs(60))
                .await
                .unwrap()
            {
                ReserveOutcome::Reserved(id) => store.settle("k", &id, amount).await.unwrap(),
                o => panic!("{o:?}"),
            }
        })
    });
    let settled: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let total: i64 = (0..400).map(|i| 7 + (i % 5)).sum();
    for threshold in [1, total / 2, total * 8 / 10, total] {
        let t = Money::from_nanos(threshold);
        let crossings = settled
            .iter()
            .filter(|s| s.before < t && s.after >= t)
            .count();
        assert_eq!(crossings, 1, "threshold {threshold}");
    }
    assert_eq!(
        stores[0].usage("k").await.unwrap().spent,
        Money::from_nanos(total)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_counts_exactly_at_the_largest_limit() {
    let Some(url) = common::redis_or_skip("largest limit").await else {
        return;
    };
    let store = RedisRateLimitStore::new(&common::config(&url, "max-units"))
        .unwrap()
        .with_test_clock(ManualClock::new());
    let limit = 1u64 << 52;
    let alg = Algorithm::SlidingWindow {
        limit,
        window: Duration::from_secs(60),
    };
    // Same microsecond: the weights merge into one entry of exactly 2^52.
    assert!(matches!(
        ask(&store, &alg, "k", limit - 1, 0).await,
        Decision::Admitted { remaining: 1, .. }
    ));
    assert!(matches!(
        ask(&store, &alg, "k", 1, 0).await,
        Decision::Admitted { remaining: 0, .. }
    ));
    // 2^52 + 1 is still exact, so one more unit is refused (at 2^53 it would round away).
    assert!(matches!(
        ask(&store, &alg, "k", 1, 0).await,
        Decision::Denied { .. }
    ));
    // Waiting past a full window would let the log hold more than 2^53: the wait is capped
    // at one window, so a second full window is refused rather than counted inexactly.
    let wait_us = 120_000_000;
    assert!(matches!(
        ask(&store, &alg, "w", limit, wait_us).await,
        Decision::Admitted { .. }
    ));
    assert!(matches!(
        ask(&store, &alg, "w", limit, wait_us).await,
        Decision::Admitted { wait, .. } if wait == Duration::from_micros(60_000_001)
    ));
    assert!(matches!(
        ask(&store, &alg, "w", 1, wait_us).await,
        Decision::Denied { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_window_total_is_rebuilt_with_a_ttl() {
    let Some(url) = common::redis_or_skip("evicted sum").await else {
        return;
    };
    let config = common::config(&url, "evicted");
    let prefix = config.prefix.clone();
    let clock = ManualClock::new();
    let store = RedisRateLimitStore::new(&config)
        .unwrap()
        .with_test_clock(clock.clone());
    let alg = Algorithm::sliding_window(3, Duration::from_secs(60)).unwrap();
    let sum = format!("{prefix}:v1:{{sw:diff:k}}:sum");
    let log = format!("{prefix}:v1:{{sw:diff:k}}:log");
    let mut raw = common::raw(&url).await;
    let probe = raw.clone();
    let pttl = |key: String| {
        let mut raw = probe.clone();
        async move {
            redis::cmd("PTTL")
                .arg(&key)
                .query_async::<i64>(&mut raw)
                .await
                .unwrap()
        }
    };

    assert!(matches!(
        ask(&store, &alg, "k", 1, 0).await,
        Decision::Admitted { .. }
    ));
    clock.advance(Duration::from_secs(30));
    assert!(matches!(
        ask(&store, &alg, "k", 2, 0).await,
        Decision::Admitted { remaining: 0, .. }
    ));
    // Full: the total is lost, the log is not. The answer is still "denied".
    let _: () = redis::cmd("DEL")
        .arg(&sum)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(matches!(
        ask(&store, &alg, "k", 1, 0).await,
        Decision::Denied { .. }
    ));
    let ttl = pttl(sum.clone()).await;
    assert!(ttl > 0 && ttl <= 61_000, "sum pttl {ttl}");

    // Lost again, and the oldest entry leaves the window: the denial trims the log and
    // writes the total back with a TTL (the newest entry's time + window - now + 1 s).
    let _: () = redis::cmd("DEL")
        .arg(&sum)
        .query_async(&mut raw)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(31));
    assert!(matches!(
        ask(&store, &alg, "k", 2, 0).await,
        Decision::Denied { .. }
    ));
    let total: String = redis::cmd("GET")
        .arg(&sum)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(total, "2");
    for key in [sum, log] {
        let ttl = pttl(key.clone()).await;
        assert!(ttl > 29_000 && ttl <= 30_000, "{key}: pttl {ttl}");
    }
    assert!(matches!(
        ask(&store, &alg, "k", 1, 0).await,
        Decision::Admitted { remaining: 0, .. }
    ));
}

#[test]
fn a_reservation_dropped_outside_a_runtime_neither_panics_nor_loses_its_spend() {
    use llm_tower_core::{ChatRequest, LlmRequest, Message};
    use llm_tower_layers::cost::{
        Budget, BudgetScope, CostTracker, ModelPrice, Period, PriceTable,
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Some(url) = rt.block_on(common::redis_or_skip("drop outside a runtime")) else {
        return;
    };
    let store = Arc::new(
        RedisBudgetStore::new(&common::config(&url, "drop"))
            .unwrap()
            .counter_retention(Duration::from_secs(600)),
    );
    let tracker = CostTracker::builder()
        .prices(PriceTable::new().with("m", ModelPrice::usd("1.00", "2.00").unwrap()))
        .budget(
            Budget::new(
                "daily",
                BudgetScope::Global,
                Period::Day,
                Money::from_usd(10),
            )
            .unwrap(),
        )
        .store(store.clone())
        .build()
        .unwrap();
    let req = LlmRequest::chat(
        ChatRequest::new("m", vec![Message::user("Tell me about towers.")]).max_tokens(20),
    );
    let reservation = rt.block_on(tracker.reserve(&req)).unwrap();
    let held = rt.block_on(tracker.budget_status(None)).unwrap()[0].reserved;
    assert!(held > Money::ZERO);

    // Dropped unsettled in a plain thread: no runtime, so Redis cannot be reached there.
    std::thread::spawn(move || drop(reservation))
        .join()
        .expect("dropping a reservation outside a runtime must not panic");
    assert_eq!(store.queued_counters(), 1, "its spend is kept");
    assert!(store.connection().is_up(), "no runtime is not an outage");

    // The next call on a runtime adds the spend to Redis and releases the hold.
    let status = rt.block_on(tracker.budget_status(None)).unwrap();
    assert!(status[0].spent > Money::ZERO, "{status:?}");
    assert_eq!(status[0].reserved, Money::ZERO, "{status:?}");
    assert_eq!(store.queued_counters(), 0);
}
