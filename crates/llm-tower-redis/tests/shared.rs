//! Four instances (four stores, four connections) sharing one Redis and one key never
//! jointly exceed a limit or a budget, and lose nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::{ManualClock, Money};
use llm_tower_layers::cost::{BudgetStore, ReserveOutcome};
use llm_tower_layers::rate_limit::{Acquire, Algorithm, Decision, RateLimitStore};
use llm_tower_redis::{RedisBudgetStore, RedisRateLimitStore};

const INSTANCES: usize = 4;
const PER_INSTANCE: usize = 200;

/// Four stores on one prefix, each with its own connection, all on `clock`.
fn rate_stores(url: &str, tag: &str, clock: &ManualClock) -> Vec<Arc<dyn RateLimitStore>> {
    let config = common::config(url, tag);
    (0..INSTANCES)
        .map(|_| {
            Arc::new(
                RedisRateLimitStore::new(&config)
                    .unwrap()
                    .with_test_clock(clock.clone()),
            ) as _
        })
        .collect()
}

/// 4 x 200 concurrent decisions now; returns (slot time in µs since the clock's start, weight)
/// of every admission.
async fn burst(
    stores: &[Arc<dyn RateLimitStore>],
    clock: &ManualClock,
    alg: Algorithm,
    max_wait: Duration,
) -> Vec<(u64, u64)> {
    let now = u64::try_from(clock.elapsed().as_micros()).unwrap();
    let tasks = (0..INSTANCES * PER_INSTANCE).map(|i| {
        let store = stores[i % INSTANCES].clone();
        let weight = 1 + (i as u64 * 7) % 3;
        tokio::spawn(async move {
            let d = store
                .acquire(Acquire {
                    scope: "shared",
                    key: "k",
                    algorithm: &alg,
                    weight,
                    max_wait,
                })
                .await
                .unwrap();
            match d {
                Decision::Admitted { wait, .. } => {
                    Some((now + u64::try_from(wait.as_micros()).unwrap(), weight))
                }
                Decision::Denied { .. } => None,
                Decision::TooHeavy { .. } => panic!("weight {weight} is within the limit"),
            }
        })
    });
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter_map(Result::unwrap)
        .collect()
}

/// In every closed window [t - window, t] ending at an admission, the admitted weight is
/// at most `limit` (windows ending at admissions are the worst case).
fn assert_sliding_window_held(admitted: &[(u64, u64)], limit: u64, window_us: u64) {
    for &(t, _) in admitted {
        let sum: u64 = admitted
            .iter()
            .filter(|&&(s, _)| s <= t && s + window_us >= t)
            .map(|&(_, w)| w)
            .sum();
        assert!(
            sum <= limit,
            "{sum} units admitted in the window ending at {t} us (limit {limit})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_admit_exactly_the_limit_at_one_instant() {
    let Some(url) = common::redis_or_skip("shared sliding window").await else {
        return;
    };
    let clock = ManualClock::new();
    let stores = rate_stores(&url, "shared-sw", &clock);
    let window = Duration::from_secs(10);
    let alg = Algorithm::sliding_window(50, window).unwrap();
    let mut all = Vec::new();
    for (advance, expect_some) in [
        (Duration::ZERO, true),
        (window / 2, false),
        (window / 2 + Duration::from_micros(1), true),
    ] {
        clock.advance(advance);
        let admitted = burst(&stores, &clock, alg, Duration::ZERO).await;
        let weight: u64 = admitted.iter().map(|&(_, w)| w).sum();
        assert!(weight <= 50, "{weight} admitted at one instant");
        if expect_some {
            // 800 requests of weights 1..=3 at one instant fill the window to the brim.
            assert!(weight >= 48, "only {weight} admitted");
        } else {
            assert_eq!(weight, 0, "the window is still full");
        }
        all.extend(admitted);
    }
    assert_sliding_window_held(&all, 50, 10_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_waiting_instances_never_exceed_the_limit_in_any_window() {
    let Some(url) = common::redis_or_skip("shared sliding window, waiting").await else {
        return;
    };
    let clock = ManualClock::new();
    let stores = rate_stores(&url, "shared-sw-wait", &clock);
    let alg = Algorithm::sliding_window(20, Duration::from_secs(1)).unwrap();
    let mut all = Vec::new();
    for step in 0..4u64 {
        clock.advance(Duration::from_millis(137 * step));
        all.extend(burst(&stores, &clock, alg, Duration::from_secs(30)).await);
    }
    assert!(all.len() > 200, "{} admitted", all.len());
    assert_sliding_window_held(&all, 20, 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_share_one_leaky_bucket() {
    let Some(url) = common::redis_or_skip("shared leaky bucket").await else {
        return;
    };
    let clock = ManualClock::new();
    let stores = rate_stores(&url, "shared-lb", &clock);
    // 10 units per second, burst 20.
    let (rate, per_us, burst_units) = (10u64, 1_000_000u64, 20u64);
    let alg = Algorithm::leaky_bucket(rate, Duration::from_micros(per_us), burst_units).unwrap();
    let at_once: u64 = burst(&stores, &clock, alg, Duration::ZERO)
        .await
        .iter()
        .map(|&(_, w)| w)
        .sum();
    assert!(
        (18..=20).contains(&at_once),
        "{at_once} admitted from a full bucket of 20"
    );
    let mut all = Vec::new();
    for _ in 0..3 {
        clock.advance(Duration::from_millis(700));
        all.extend(burst(&stores, &clock, alg, Duration::from_secs(20)).await);
    }
    all.sort_unstable();
    // Over any span [t_i, t_j] of admissions: weight <= burst + rate * span / per.
    for i in 0..all.len() {
        let mut sum = 0u64;
        for j in i..all.len() {
            sum += all[j].1;
            let span = all[j].0 - all[i].0;
            assert!(
                u128::from(sum) * u128::from(per_us)
                    <= u128::from(burst_units) * u128::from(per_us)
                        + u128::from(span) * u128::from(rate),
                "{sum} units admitted within {span} us"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_never_overspend_a_budget_and_lose_nothing() {
    let Some(url) = common::redis_or_skip("shared budget").await else {
        return;
    };
    let config = common::config(&url, "shared-budget");
    let stores: Vec<Arc<dyn BudgetStore>> = (0..INSTANCES)
        .map(|_| {
            Arc::new(
                RedisBudgetStore::new(&config)
                    .unwrap()
                    .counter_retention(Duration::from_secs(600)),
            ) as _
        })
        .collect();
    let limit = Money::from_nanos(10_000);
    let tasks = (0..INSTANCES * PER_INSTANCE).map(|i| {
        let store = stores[i % INSTANCES].clone();
        tokio::spawn(async move {
            let worst = 20 + (i as i64 * 13) % 61;
            match store
                .reserve(
                    "k",
                    Money::from_nanos(worst),
                    limit,
                    Duration::from_secs(60),
                )
                .await
                .unwrap()
            {
                ReserveOutcome::Reserved(id) => {
                    tokio::task::yield_now().await;
                    let actual = Money::from_nanos(worst * (3 + (i as i64 % 8)) / 10);
                    let s = store.settle("k", &id, actual).await.unwrap();
                    assert_eq!(s.after, s.before + actual);
                    assert!(s.after <= limit, "spend {:?} passed the limit", s.after);
                    Some(actual)
                }
                ReserveOutcome::Exceeded { spent, reserved } => {
                    assert!(spent + reserved + Money::from_nanos(worst) > limit);
                    None
                }
            }
        })
    });
    let results: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let settled: i64 = results.iter().flatten().map(|m| m.as_nanos()).sum();
    let refused = results.iter().filter(|r| r.is_none()).count();
    assert!(
        refused > 0,
        "800 requests of ~50 against 10,000 must run out"
    );
    let usage = stores[3].usage("k").await.unwrap();
    assert_eq!(
        usage.spent,
        Money::from_nanos(settled),
        "every settled amount is counted once"
    );
    assert_eq!(usage.reserved, Money::ZERO, "every hold was released");
    assert!(usage.spent <= limit);
}
