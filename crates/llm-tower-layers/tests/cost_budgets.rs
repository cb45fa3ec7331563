//! Cost tracker: worst cases, budget scopes and alerts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use llm_tower_core::{
    ChatRequest, CompletionRequest, Error, ErrorKind, LlmRequest, LlmResponse, Message, Money,
    Prompt, ResponseBody, Usage, UsageSource,
};
use llm_tower_layers::builder::ServiceBuilderExt;
use llm_tower_layers::cost::{Budget, BudgetScope, CostTracker, ModelPrice, Period, PriceTable};
use llm_tower_layers::rate_limit::{Algorithm, RateLimitLayer};
use tower::{ServiceBuilder, ServiceExt};

fn prices() -> PriceTable {
    PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap())
}

fn tracker() -> CostTracker {
    CostTracker::builder().prices(prices()).build().unwrap()
}

fn chat(n: Option<u32>) -> LlmRequest {
    let mut c = ChatRequest::new("gpt-4o", vec![Message::user("hello")]).max_tokens(100);
    c.n = n;
    LlmRequest::chat(c)
}

fn answer() -> LlmResponse {
    let chat = llm_tower_core::ChatResponse {
        extra: Default::default(),
        service_tier: None,
        id: "x".into(),
        model: "gpt-4o".into(),
        created: 0,
        choices: vec![llm_tower_core::ChatChoice {
            extra: Default::default(),
            logprobs: None,
            index: 0,
            message: Message::assistant("hi there"),
            finish_reason: Some("stop".into()),
        }],
        system_fingerprint: None,
        native: None,
    };
    let mut r = LlmResponse::new(ResponseBody::Chat(chat));
    r.usage = Some(Usage::new(8, 2, UsageSource::Provider));
    r
}

/// $10 per million output tokens is exactly 10,000 nano-USD a token.
const OUT_NANOS_PER_TOKEN: i64 = 10_000;

#[tokio::test]
async fn the_worst_case_bounds_every_choice_of_n() {
    let t = tracker();
    let one = t.reserve(&chat(None)).await.unwrap();
    let three = t.reserve(&chat(Some(3))).await.unwrap();
    assert_eq!(
        three.worst_case() - one.worst_case(),
        Money::from_nanos(200 * OUT_NANOS_PER_TOKEN),
        "n = 3 may produce 3 x max_tokens"
    );
    one.settle(None, false).await;
    three.settle(None, false).await;
}

#[tokio::test]
async fn the_worst_case_of_a_completion_bounds_every_prompt_and_choice() {
    let t = tracker();
    let completion = |prompt: Prompt, n: Option<u64>| {
        let mut extra = serde_json::Map::new();
        if let Some(n) = n {
            extra.insert("n".into(), n.into());
        }
        LlmRequest::completion(CompletionRequest {
            model: "gpt-4o".into(),
            prompt,
            max_tokens: Some(100),
            temperature: None,
            top_p: None,
            stop: None,
            stream: false,
            user: None,
            extra,
        })
    };
    let one = t
        .reserve(&completion(Prompt::One("a b".into()), None))
        .await
        .unwrap();
    let many = t
        .reserve(&completion(
            Prompt::Many(vec!["a".into(), "b".into()]),
            Some(2),
        ))
        .await
        .unwrap();
    // 2 prompts x n = 2: four outputs of up to 100 tokens (prompt costs are tiny and
    // differ by at most a rounding step).
    let extra = many.worst_case() - one.worst_case();
    let expected = Money::from_nanos(300 * OUT_NANOS_PER_TOKEN);
    assert!(
        extra >= expected && extra <= expected + Money::from_nanos(10_000),
        "{extra} vs {expected}"
    );
}

#[tokio::test]
async fn the_token_weight_counts_every_choice_of_n() {
    let ok = tower::service_fn(|_r: LlmRequest| async { Ok::<_, Error>(answer()) });
    // A bucket of 250 tokens: 8 prompt + 100 output passes, 8 + 3 x 100 cannot.
    let svc = ServiceBuilder::new()
        .count_tokens()
        .llm_rate_limit(
            RateLimitLayer::new(
                Algorithm::leaky_bucket(250, Duration::from_secs(60), 250).unwrap(),
            )
            .by_tokens(),
        )
        .service(ok);
    svc.clone().oneshot(chat(None)).await.unwrap();
    let e = svc.clone().oneshot(chat(Some(3))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
    assert!(e.message().contains("admits at most 250"), "{e}");
}

#[tokio::test]
async fn a_huge_estimate_margin_saturates_instead_of_overflowing() {
    let t = CostTracker::builder()
        .prices(PriceTable::new().with("local-model", ModelPrice::usd("1", "1").unwrap()))
        .budget(
            Budget::new(
                "b",
                BudgetScope::Global,
                Period::Total,
                Money::from_usd(1000),
            )
            .unwrap(),
        )
        .estimate_margin_percent(u64::MAX)
        .build()
        .unwrap();
    // No public tokenizer: the prompt is a heuristic estimate, so the margin applies.
    let req = LlmRequest::chat(
        ChatRequest::new("local-model", vec![Message::user("hello there")]).max_tokens(10),
    );
    // The saturated worst case can never fit the budget: a client error, no overflow.
    let e = t.reserve(&req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
    assert_eq!(e.code(), Some("budget_too_small"), "{e}");
}

type Alerts = std::sync::Arc<std::sync::Mutex<Vec<llm_tower_layers::cost::BudgetAlert>>>;

fn alerting_tracker(
    store: std::sync::Arc<dyn llm_tower_layers::cost::BudgetStore>,
    clock: llm_tower_core::ManualClock,
    alerts: &Alerts,
) -> CostTracker {
    let sink = alerts.clone();
    CostTracker::builder()
        .prices(prices())
        .budget(
            // Alerts at 50 %, 80 % and 100 %.
            Budget::new(
                "hourly",
                BudgetScope::Global,
                Period::Hour,
                Money::from_usd(1),
            )
            .unwrap()
            .thresholds(
                [500, 800, 1000]
                    .into_iter()
                    .map(|p| llm_tower_layers::cost::Threshold::per_mille(p).unwrap())
                    .collect(),
            ),
        )
        .store(store)
        .clock(std::sync::Arc::new(clock))
        .alerts(move |a: &llm_tower_layers::cost::BudgetAlert| sink.lock().unwrap().push(a.clone()))
        .build()
        .unwrap()
}

fn per_mille(alerts: &Alerts) -> Vec<u16> {
    alerts
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.threshold_per_mille)
        .collect()
}

/// Settles `output` completion tokens ($10 per million), in requests of at most 60,000
/// output tokens (each reserved for 100 and settled with more than that, as a provider
/// may report, but within what a reservation accepts as plausible).
async fn spend(t: &CostTracker, output: u64) {
    let mut left = output;
    while left > 0 {
        let n = left.min(60_000);
        left -= n;
        let r = t.reserve(&chat(None)).await.unwrap();
        r.settle(Some(Usage::new(0, n, UsageSource::Provider)), false)
            .await;
    }
}

fn big() -> LlmRequest {
    // Up to 10,000 output tokens: $0.10, more than is left.
    LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hello")]).max_tokens(10_000))
}

#[tokio::test]
async fn a_refusal_delivers_the_exhausted_alert_once_per_period() {
    let alerts = Alerts::default();
    let clock = llm_tower_core::ManualClock::new();
    let store = std::sync::Arc::new(llm_tower_layers::cost::MemoryBudgetStore::new());
    let t = alerting_tracker(store, clock.clone(), &alerts);
    spend(&t, 95_000).await; // $0.95 of $1
    assert_eq!(per_mille(&alerts), [500, 800]);
    for _ in 0..4 {
        let e = t.reserve(&big()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    }
    assert_eq!(
        per_mille(&alerts),
        [500, 800, 1000],
        "exhausted once, not per refusal"
    );
    let exhausted = alerts.lock().unwrap()[2].clone();
    assert_eq!(
        exhausted.kind,
        llm_tower_layers::cost::AlertKind::Refused,
        "a refusal at 95 % is not a crossing"
    );
    assert_eq!(
        alerts.lock().unwrap()[1].kind,
        llm_tower_layers::cost::AlertKind::Crossed
    );
    assert_eq!(exhausted.spent, Money::parse_usd("0.95").unwrap());
    assert_eq!(exhausted.limit, Money::from_usd(1));
    // A settlement that later crosses the limit does not deliver it a second time.
    spend(&t, 4_000).await;
    spend(&t, 2_000).await; // $1.01
    assert_eq!(per_mille(&alerts), [500, 800, 1000]);
    // The next hour is a new period.
    clock.advance(Duration::from_secs(3600));
    assert!(t.reserve(&chat(None)).await.is_ok());
    spend(&t, 99_000).await;
    let e = t.reserve(&big()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
    t.reserve(&big()).await.unwrap_err();
    assert_eq!(per_mille(&alerts), [500, 800, 1000, 500, 800, 1000]);
}

#[tokio::test]
async fn a_settlement_crossing_the_limit_delivers_it_once_and_a_refusal_adds_nothing() {
    let alerts = Alerts::default();
    let store = std::sync::Arc::new(llm_tower_layers::cost::MemoryBudgetStore::new());
    let t = alerting_tracker(store, llm_tower_core::ManualClock::new(), &alerts);
    spend(&t, 100_000).await; // exactly $1: crosses 50, 80 and 100 % at once
    assert_eq!(per_mille(&alerts), [500, 800, 1000]);
    t.reserve(&big()).await.unwrap_err();
    t.reserve(&big()).await.unwrap_err();
    assert_eq!(per_mille(&alerts), [500, 800, 1000]);
}

#[tokio::test]
async fn instances_sharing_a_store_deliver_the_exhausted_alert_once() {
    let alerts = Alerts::default();
    let clock = llm_tower_core::ManualClock::new();
    let store: std::sync::Arc<dyn llm_tower_layers::cost::BudgetStore> =
        std::sync::Arc::new(llm_tower_layers::cost::MemoryBudgetStore::new());
    let a = alerting_tracker(store.clone(), clock.clone(), &alerts);
    let b = alerting_tracker(store, clock, &alerts);
    spend(&a, 90_000).await;
    let refusals = (0..20).map(|i| {
        let t = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { t.reserve(&big()).await.unwrap_err() }
    });
    futures_util::future::join_all(refusals).await;
    assert_eq!(per_mille(&alerts), [500, 800, 1000]);
}

fn one_budget(scope: BudgetScope) -> CostTracker {
    CostTracker::builder()
        .prices(
            prices()
                .with("gpt-4o-mini", ModelPrice::usd("0.15", "0.60").unwrap())
                .with("claude-3-5-sonnet", ModelPrice::usd("3", "15").unwrap()),
        )
        .budget(Budget::new("b", scope, Period::Total, Money::from_nanos(1)).unwrap())
        .build()
        .unwrap()
}

fn model(name: &str) -> LlmRequest {
    LlmRequest::chat(ChatRequest::new(name, vec![Message::user("hello")]).max_tokens(10))
}

#[tokio::test]
async fn a_model_budget_matches_like_the_price_table() {
    let t = one_budget(BudgetScope::Model("gpt-4o".into()));
    for covered in [
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "openai/gpt-4o",
        "gpt-4o-mini",
    ] {
        // The budget ($0.000000001) applies, and can never hold the request.
        let e = t.reserve(&model(covered)).await.unwrap_err();
        assert_eq!(e.code(), Some("budget_too_small"), "{covered}: {e}");
    }
    for other in ["gpt-4", "claude-3-5-sonnet"] {
        assert!(t.reserve(&model(other)).await.is_ok(), "{other}");
    }
    // A budget on the more specific name takes its requests, as the price table does.
    let t = CostTracker::builder()
        .prices(prices().with("gpt-4o-mini", ModelPrice::usd("0.15", "0.60").unwrap()))
        .budget(
            Budget::new(
                "4o",
                BudgetScope::Model("gpt-4o".into()),
                Period::Total,
                Money::from_nanos(1),
            )
            .unwrap(),
        )
        .budget(
            Budget::new(
                "mini",
                BudgetScope::Model("gpt-4o-mini".into()),
                Period::Total,
                Money::from_usd(1),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    assert!(t.reserve(&model("gpt-4o-mini-2024-07-18")).await.is_ok());
    assert!(t.reserve(&model("gpt-4o-2024-08-06")).await.is_err());
}

#[tokio::test]
async fn a_provider_budget_applies_when_the_request_names_the_provider() {
    let t = one_budget(BudgetScope::Provider("openai".into()));
    // Nothing names a provider before the call: the budget does not apply.
    assert!(t.reserve(&model("gpt-4o")).await.is_ok());
    let e = t
        .reserve(&model("gpt-4o").with_provider("openai"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("budget_too_small"), "{e}");
    assert!(
        t.reserve(&model("gpt-4o").with_provider("azure"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn impossible_usage_settles_at_the_worst_case_and_never_wraps() {
    let t = CostTracker::builder()
        .prices(prices())
        .budget(
            Budget::new(
                "month",
                BudgetScope::Global,
                Period::Month,
                Money::from_usd(5),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let req = chat(None); // "hello", max_tokens 100
    let mut costs = Vec::new();
    for usage in [
        Usage::new(1 << 63, u64::MAX, UsageSource::Provider),
        Usage::new(u64::MAX, u64::MAX, UsageSource::Provider),
        Usage::new(5, u64::from(u32::MAX) + 1, UsageSource::Provider),
    ] {
        let r = t.reserve(&req).await.unwrap();
        let worst = r.worst_case();
        let cost = r.settle(Some(usage), false).await.unwrap();
        assert!(cost <= worst, "{cost} > {worst}");
        assert!(cost > Money::ZERO);
        costs.push(cost);
    }
    let snap = t.snapshot();
    assert_eq!(snap.total.requests, 3);
    assert_eq!(snap.total.completion_tokens, 300, "{snap:?}");
    assert!(snap.total.prompt_tokens < 100, "{snap:?}");
    let total: Money = costs.iter().fold(Money::ZERO, |a, c| a + *c);
    assert_eq!(snap.total.cost, total);
    let status = t.budget_status(None).await.unwrap();
    assert_eq!(
        status[0].spent, total,
        "one hostile answer cannot poison the budget"
    );
    // The budget still admits requests.
    assert!(t.reserve(&req).await.is_ok());
    // Plausible usage (within the worst case) is settled as reported.
    let r = t.reserve(&req).await.unwrap();
    let cost = r
        .settle(Some(Usage::new(3, 50, UsageSource::Provider)), false)
        .await
        .unwrap();
    assert_eq!(cost, Money::from_nanos(3 * 2_500 + 50 * 10_000));
}

#[test]
fn every_usage_tier_is_priced_exactly_at_published_prices() {
    // Claude Sonnet 4.5: $3 input, $15 output, cache writes 1.25x (5 m) and 2x (1 h) input,
    // cache reads 0.1x input.
    let sonnet = ModelPrice::usd("3", "15")
        .unwrap()
        .cached_input(llm_tower_core::Price::parse_per_million("0.30").unwrap())
        .cache_write_5m(llm_tower_core::Price::parse_per_million("3.75").unwrap())
        .cache_write_1h(llm_tower_core::Price::parse_per_million("6").unwrap());
    let usage = Usage::new(10_000, 500, UsageSource::Provider)
        .with_cached(2_000)
        .with_cache_writes(3_000, 4_000);
    assert_eq!(usage.uncached_prompt_tokens(), 1_000);
    // 1,000 x 3 + 2,000 x 0.30 + 3,000 x 3.75 + 4,000 x 6 + 500 x 15 = 46,350 USD-millionths.
    assert_eq!(sonnet.cost(&usage), Money::from_nanos(46_350_000));
    // Each tier alone, to the nano-USD.
    let one = |u: Usage| sonnet.cost(&u).as_nanos();
    assert_eq!(
        one(Usage::new(1, 0, UsageSource::Provider).with_cache_writes(1, 0)),
        3_750
    );
    assert_eq!(
        one(Usage::new(1, 0, UsageSource::Provider).with_cache_writes(0, 1)),
        6_000
    );
    assert_eq!(
        one(Usage::new(1, 0, UsageSource::Provider).with_cached(1)),
        300
    );
    // The worst case prices the prompt at the dearest tier it could be billed at.
    assert_eq!(sonnet.worst_case(1_000, 0), Money::from_nanos(6_000_000));

    // o4-mini: $1.10 input, $0.275 cached, $4.40 output; reasoning at the output price
    // unless priced apart.
    let o4 = ModelPrice::usd("1.10", "4.40")
        .unwrap()
        .cached_input(llm_tower_core::Price::parse_per_million("0.275").unwrap());
    let usage = Usage::new(1_000, 800, UsageSource::Provider)
        .with_cached(400)
        .with_reasoning(500);
    // 600 x 1.10 + 400 x 0.275 + 800 x 4.40 = 4,290 USD-millionths.
    assert_eq!(o4.cost(&usage), Money::from_nanos(4_290_000));
    let priced_apart = o4.reasoning(llm_tower_core::Price::parse_per_million("8.80").unwrap());
    // 600 x 1.10 + 400 x 0.275 + 300 x 4.40 + 500 x 8.80 = 6,490.
    assert_eq!(priced_apart.cost(&usage), Money::from_nanos(6_490_000));
    // Fractions of a nano-USD round up once, on the whole request.
    let cheap = ModelPrice::usd("0.075", "0.30").unwrap();
    assert_eq!(
        cheap.cost(&Usage::new(1, 1, UsageSource::Provider)),
        Money::from_nanos(375)
    );
}
