//! The whole stack's overhead against the bare mock provider.
//!
//! Run: `cargo bench -p llm-tower --bench stack`
//!
//! A chat request with a ~100-token prompt through trace -> count_tokens -> track_cost
//! (with a budget) -> rate_limit (per caller) -> retry -> rate_limit (provider, tokens,
//! Wait) -> timeout -> mock (zero latency), against the same request to the bare mock.
//! The difference is the stack's overhead; the tokenization share is measured by the
//! `tokens` bench of llm-tower-layers (`count_prompt`).
//!
//! `cache_miss` and `cache_hit` add the response cache (memory store) after count_tokens,
//! as the config builds it: a miss hashes the request, looks it up, calls the whole stack
//! and stores the answer (each iteration asks with another `seed`); a hit hashes, looks
//! up, decodes and answers without the layers below.
//! `whole_stack_adaptive` is the same stack with the adaptive provider limits between
//! retry and the provider rate limit, the mock's answers carrying the provider's
//! `x-ratelimit-*` state (plenty left): its difference to `whole_stack` is the layer's
//! overhead on the hot path (a state look-up before, a window update after each call).
//! Both stacks have the same shape otherwise (the layer is an `option_layer` in both).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use llm_tower::{LimitState, ProviderLimits};

use criterion::{Criterion, criterion_group, criterion_main};
use llm_tower::layers::cache::{MemoryCacheStore, ResponseCacheLayer};
use llm_tower::layers::rate_limit::Mode;
use llm_tower::layers::route::{Balance, BalanceTarget, Strategy};
use llm_tower::prelude::*;
use llm_tower_core::{CacheStatus, RequestBody};
use tower::{ServiceBuilder, ServiceExt};

const PROMPT: &str = "You are reviewing a pull request for a Rust service that calls language models. \
The change adds a rate limiter keyed by caller, a retry policy with jittered backoff, and a cost tracker \
with monthly budgets. Summarise the risks in three bullet points and suggest one test for each risk. \
Keep every bullet under twenty words and name the layer it concerns.";

fn request() -> LlmRequest {
    LlmRequest::chat(
        ChatRequest::new(
            "gpt-4o-mini",
            vec![Message::system("Be concise."), Message::user(PROMPT)],
        )
        .max_tokens(64),
    )
    .with_caller("bench")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mock = MockProvider::builder()
        .reply(llm_tower::providers::mock::Reply::Fixed("Fine.".into()))
        .build();
    let tracker = CostTracker::builder()
        .prices(PriceTable::new().with("gpt-4o-mini", ModelPrice::usd("0.15", "0.60").unwrap()))
        .budget(
            Budget::new(
                "bench",
                BudgetScope::Global,
                Period::Total,
                Money::from_usd(1_000_000_000),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    // What a provider with plenty left reports on every answer.
    let limits = ProviderLimits {
        requests: Some(LimitState {
            limit: Some(1_000_000_000),
            remaining: Some(999_999_999),
            reset: Some(Duration::from_millis(6)),
        }),
        tokens: Some(LimitState {
            limit: Some(1_000_000_000_000),
            remaining: Some(999_999_999_999),
            reset: Some(Duration::from_millis(6)),
        }),
        ..Default::default()
    };
    let build = |adaptive: Option<AdaptiveLimitLayer>| {
        ServiceBuilder::new()
            .llm_trace()
            .count_tokens()
            .track_cost(tracker.clone())
            .llm_rate_limit(
                RateLimitLayer::new(
                    Algorithm::sliding_window(1_000_000_000, Duration::from_secs(60)).unwrap(),
                )
                .name("caller")
                .key(KeyBy::Caller),
            )
            .llm_retry(RetryLayer::new())
            .option_layer(adaptive)
            .llm_rate_limit(
                RateLimitLayer::new(
                    Algorithm::leaky_bucket(
                        u64::MAX / 1_000_000_000_000,
                        Duration::from_secs(1),
                        1_000_000_000_000,
                    )
                    .unwrap(),
                )
                .name("provider")
                .by_tokens()
                .mode(Mode::Wait {
                    max_wait: Duration::from_secs(1),
                }),
            )
            .llm_timeout(Duration::from_secs(30))
            .map_response(move |mut r: LlmResponse| {
                r.meta.provider_limits = Some(limits);
                r
            })
            .boxed_llm()
            .service(mock.clone())
    };
    let stack = build(None);
    let adaptive = build(Some(AdaptiveLimitLayer::new().key("mock/gpt-4o-mini")));

    let cached = ServiceBuilder::new()
        .llm_trace()
        .count_tokens()
        .llm_cache(ResponseCacheLayer::new(MemoryCacheStore::default()))
        .service(stack.clone());

    let mut req = request();
    if let RequestBody::Chat(c) = &mut req.body {
        c.temperature = Some(0.0);
    }
    let tokens = rt.block_on(async {
        stack
            .clone()
            .oneshot(req.clone())
            .await
            .unwrap()
            .usage
            .unwrap()
            .prompt_tokens
    });
    println!("prompt tokens: {tokens}");

    let mut g = c.benchmark_group("stack");
    g.bench_function("bare_mock", |b| {
        b.iter(|| rt.block_on(mock.clone().oneshot(req.clone())).unwrap());
    });
    g.bench_function("whole_stack", |b| {
        b.iter(|| rt.block_on(stack.clone().oneshot(req.clone())).unwrap());
    });
    // A balanced group (p2c over two targets) in front of the same mock: the difference
    // to `bare_mock` is what the balance adds per request.
    let balance = Balance::new(
        "bench",
        Strategy::P2c,
        vec![
            BalanceTarget::new("a", mock.clone()),
            BalanceTarget::new("b", mock.clone()),
        ],
    );
    g.bench_function("balance_p2c_two_mocks", |b| {
        b.iter(|| rt.block_on(balance.clone().oneshot(req.clone())).unwrap());
    });
    let hit = rt.block_on(async {
        cached.clone().oneshot(req.clone()).await.unwrap();
        cached.clone().oneshot(req.clone()).await.unwrap()
    });
    assert_eq!(hit.meta.cache, Some(CacheStatus::Hit));
    g.bench_function("cache_hit", |b| {
        b.iter(|| rt.block_on(cached.clone().oneshot(req.clone())).unwrap());
    });
    let mut seed = 0;
    g.bench_function("cache_miss", |b| {
        b.iter(|| {
            seed += 1;
            let mut r = req.clone();
            if let RequestBody::Chat(c) = &mut r.body {
                c.seed = Some(seed);
            }
            rt.block_on(cached.clone().oneshot(r)).unwrap()
        });
    });
    g.bench_function("whole_stack_adaptive", |b| {
        b.iter(|| rt.block_on(adaptive.clone().oneshot(req.clone())).unwrap());
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
