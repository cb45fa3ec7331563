//! The store conformance suites of llm-tower-layers, against a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::ManualClock;
use llm_tower_layers::cost::BudgetStore;
use llm_tower_layers::rate_limit::{RateLimitStore, conformance};
use llm_tower_redis::{RedisBudgetStore, RedisRateLimitStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rate_limit_store_passes_the_conformance_suite() {
    let Some(url) = common::redis_or_skip("rate-limit conformance").await else {
        return;
    };
    let factory = move |clock: ManualClock| -> Arc<dyn RateLimitStore> {
        Arc::new(
            RedisRateLimitStore::new(&common::config(&url, "rl-conf"))
                .unwrap()
                .with_test_clock(clock),
        )
    };
    conformance::run(&factory, Duration::from_micros(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_budget_store_passes_the_conformance_suite() {
    let Some(url) = common::redis_or_skip("budget conformance").await else {
        return;
    };
    let store = RedisBudgetStore::new(&common::config(&url, "budget-conf"))
        .unwrap()
        .counter_retention(Duration::from_secs(600));
    let store: Arc<dyn BudgetStore> = Arc::new(store);
    llm_tower_layers::cost::store::conformance::run(store, "conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_budget_store_passes_the_conformance_suite_on_a_test_clock() {
    let Some(url) = common::redis_or_skip("budget conformance (test clock)").await else {
        return;
    };
    let store = RedisBudgetStore::new(&common::config(&url, "budget-conf-clock"))
        .unwrap()
        .counter_retention(Duration::from_secs(600))
        .with_test_clock(ManualClock::new());
    let store: Arc<dyn BudgetStore> = Arc::new(store);
    llm_tower_layers::cost::store::conformance::run(store, "conf").await;
}
