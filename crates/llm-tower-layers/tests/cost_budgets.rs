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
        id: "x".into(),
        model: "gpt-4o".into(),
        created: 0,
        choices: vec![llm_tower_core::ChatChoice {
            index: 0,
            message: Message::assistant("hi there"),
            finish_reason: Some("stop".into()),
        }],
        system_fingerprint: None,
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
    let e = t.reserve(&req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BudgetExceeded, "{e}");
}
