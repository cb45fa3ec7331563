//! Several instances sharing one limit and one budget through Redis (needs `REDIS_URL`;
//! skipped with a note when it is unset, unless `LLM_TOWER_REQUIRE_REDIS=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llm_tower::config::{Config, build};
use llm_tower::layers::cost::BudgetStore;
use llm_tower::layers::rate_limit::RateLimitStore;
use llm_tower::prelude::*;
use llm_tower::redis::{RedisBudgetStore, RedisConfig, RedisRateLimitStore};
use tower::{ServiceBuilder, ServiceExt};

fn redis_url(test: &str) -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("LLM_TOWER_REQUIRE_REDIS").map_or(true, |v| v != "1"),
                "{test}: REDIS_URL is required"
            );
            eprintln!("{test}: REDIS_URL is not set; skipping");
            None
        }
    }
}

fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("llm-tower-test:{test}:{}:{nanos}", std::process::id())
}

type Stack = tower::util::BoxCloneSyncService<LlmRequest, LlmResponse, Error>;

async fn run_four(stacks: &[Stack]) -> (u64, u64, u64, Money) {
    let mut tasks = Vec::new();
    for (i, stack) in stacks.iter().enumerate() {
        for j in 0..100 {
            let s = stack.clone();
            tasks.push(tokio::spawn(async move {
                let req = LlmRequest::chat(
                    ChatRequest::new("gpt-4o", vec![Message::user(format!("q {i} {j}"))])
                        .max_tokens(16),
                );
                s.oneshot(req).await
            }));
        }
    }
    let (mut ok, mut limited, mut over_budget) = (0u64, 0u64, 0u64);
    let mut spent = Money::ZERO;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                ok += 1;
                spent += r.cost.unwrap();
            }
            Err(e) if e.kind() == ErrorKind::RateLimited => limited += 1,
            Err(e) if e.kind() == ErrorKind::BudgetExceeded => over_budget += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    (ok, limited, over_budget, spent)
}

/// Four instances, each with its own connection, stores, tracker and layers.
fn four_instances(url: &str, prefix: &str, budget: Money, limit: u64) -> (Vec<Stack>, CostTracker) {
    let mut stacks = Vec::new();
    let mut first = None;
    for _ in 0..4 {
        let cfg = RedisConfig::new(url.to_owned()).prefix(prefix.to_owned());
        let limits: Arc<dyn RateLimitStore> = Arc::new(RedisRateLimitStore::new(&cfg).unwrap());
        let budgets: Arc<dyn BudgetStore> = Arc::new(RedisBudgetStore::new(&cfg).unwrap());
        let tracker = CostTracker::builder()
            .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
            .budget(Budget::new("shared", BudgetScope::Global, Period::Total, budget).unwrap())
            .store(budgets)
            .build()
            .unwrap();
        let stack = ServiceBuilder::new()
            .count_tokens()
            .track_cost(tracker.clone())
            .llm_rate_limit(
                RateLimitLayer::new(
                    Algorithm::sliding_window(limit, Duration::from_secs(3600)).unwrap(),
                )
                .name("shared_rph")
                .store(limits),
            )
            .service(MockProvider::new());
        stacks.push(Stack::new(stack));
        first.get_or_insert(tracker);
    }
    (stacks, first.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_stacks_share_one_limit() {
    let Some(url) = redis_url("four_stacks_share_one_limit") else {
        return;
    };
    let (stacks, _) = four_instances(&url, &unique_prefix("limit"), Money::from_usd(1000), 150);
    let (ok, limited, over_budget, _) = run_four(&stacks).await;
    assert_eq!(
        (ok, limited, over_budget),
        (150, 250, 0),
        "exactly the shared limit passes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_stacks_share_one_budget() {
    let Some(url) = redis_url("four_stacks_share_one_budget") else {
        return;
    };
    let limit = Money::parse_usd("0.005").unwrap();
    let (stacks, tracker) = four_instances(&url, &unique_prefix("budget"), limit, 1_000_000);
    let (ok, limited, over_budget, spent) = run_four(&stacks).await;
    assert_eq!(ok + over_budget, 400);
    assert_eq!(limited, 0);
    assert!(
        ok > 5 && over_budget > 0,
        "ok {ok}, over budget {over_budget}"
    );
    let status = tracker.budget_status(None).await.unwrap();
    assert!(
        status[0].spent <= limit,
        "spent {} > budget {}",
        status[0].spent,
        limit
    );
    assert_eq!(
        status[0].spent, spent,
        "every settled cost is in the shared counter"
    );
    assert_eq!(status[0].reserved, Money::ZERO, "nothing stays held");
}

#[tokio::test]
async fn the_config_selects_the_redis_store_and_two_gateways_share_it() {
    let Some(url) = redis_url("the_config_selects_the_redis_store_and_two_gateways_share_it")
    else {
        return;
    };
    let prefix = unique_prefix("config");
    let json = serde_json::json!({
        "providers": { "mock": { "type": "mock", "models": {
            "m": { "price": { "input": "1.00", "output": "2.00" }, "tokenizer": "o200k_base" } } } },
        "rate_limits": [{ "name": "per_caller", "algorithm": "sliding_window", "limit": 5, "window": "1h",
                          "key": "caller", "mode": "reject", "scope": "caller" }],
        "store": { "type": "redis", "url": "${TEST_REDIS_URL}", "prefix": prefix, "on_error": "fail_closed" }
    });
    let config = Config::from_str_with_env(&json.to_string(), &|name| {
        (name == "TEST_REDIS_URL").then(|| url.clone())
    })
    .unwrap();
    let a = build(&config).await.unwrap();
    let b = build(&config).await.unwrap();
    let mut ok = 0;
    for i in 0..10 {
        let svc = if i % 2 == 0 { a.service() } else { b.service() };
        let req =
            LlmRequest::chat(ChatRequest::new("mock/m", vec![Message::user("hi")]).max_tokens(8))
                .with_caller("carol");
        match svc.oneshot(req).await {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}"),
        }
    }
    assert_eq!(
        ok, 5,
        "two instances built from one config share the caller's limit in Redis"
    );
}
