//! The whole in-process stack around the mock provider.
//!
//! Run: `cargo run -p llm-tower --example basic_stack`
//!
//! Prints each answer with its usage and cost, a request hidden by a retry, the budget
//! alerts as they fire, a rate-limited request, a request refused by the budget, and the
//! analytics snapshot.

use std::time::Duration;

use llm_tower::layers::cost::BudgetAlert;
use llm_tower::prelude::*;
use llm_tower::providers::mock::{Failure, FailurePlan};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // gpt-4o-mini at $0.15 / $0.60 per million tokens; a tiny budget so alerts fire.
    let prices = PriceTable::new().with(
        "gpt-4o-mini",
        ModelPrice::usd("0.15", "0.60")?.max_output_tokens(16_384),
    );
    let tracker = CostTracker::builder()
        .prices(prices)
        .budget(
            Budget::new(
                "demo-daily",
                BudgetScope::Global,
                Period::Day,
                Money::parse_usd("0.0001").map_err(|e| Error::config(e.to_string()))?,
            )?
            .thresholds(vec![
                Threshold::percent(50)?,
                Threshold::percent(80)?,
                Threshold::percent(100)?,
            ]),
        )
        .alerts(|a: &BudgetAlert| {
            println!(
                "  ALERT budget {:?} crossed {}%: spent ${} of ${}",
                a.budget,
                a.threshold_per_mille / 10,
                a.spent,
                a.limit
            );
        })
        .build()?;

    // The first attempt of request #2 fails with a 503: the retry layer hides it.
    let provider = MockProvider::builder()
        .failures(FailurePlan::Once(vec![
            None,
            Some(Failure::ServerError { status: 503 }),
        ]))
        .build();

    let stack = ServiceBuilder::new()
        .llm_trace()
        .count_tokens()
        .track_cost(tracker.clone())
        .llm_rate_limit(
            RateLimitLayer::new(Algorithm::sliding_window(4, Duration::from_secs(60))?)
                .name("per_caller")
                .key(KeyBy::Caller),
        )
        .llm_retry(RetryLayer::new().backoff(Duration::from_millis(10), Duration::from_millis(100)))
        .llm_timeout(Duration::from_secs(30))
        .service(provider);

    // alice may send 4 requests a minute; her 5th is rate limited. bob then pushes the
    // budget past 80 %, and his second request no longer fits in the budget.
    let requests = [
        ("alice", "What is tower?"),
        ("alice", "Why rate limit?"),
        ("alice", "How are costs settled?"),
        ("alice", "What is GCRA?"),
        ("alice", "One more?"),
        ("bob", "Hello from bob"),
        ("bob", "And again"),
    ];
    for (i, (caller, q)) in requests.iter().enumerate() {
        let req = LlmRequest::chat(
            ChatRequest::new("gpt-4o-mini", vec![Message::user(*q)]).max_tokens(32),
        )
        .with_caller(*caller);
        println!("request {} from {caller} ({q})", i + 1);
        match stack.clone().oneshot(req).await {
            Ok(resp) => {
                let usage = resp.usage.unwrap_or_default();
                println!(
                    "  answer: {}\n  usage: {} prompt + {} completion tokens ({:?}); cost ${}; attempts {}",
                    resp.as_chat()
                        .map(|c| c.text().into_owned())
                        .unwrap_or_default(),
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    usage.source,
                    resp.cost.unwrap_or_default(),
                    resp.meta.attempts
                );
            }
            Err(e) => println!("  refused: {e} (HTTP {})", e.http_status()),
        }
    }

    let snap = tracker.snapshot();
    println!(
        "analytics: {} requests, {} errors, {} tokens, ${} spent",
        snap.total.requests,
        snap.total.errors,
        snap.total.prompt_tokens + snap.total.completion_tokens,
        snap.total.cost
    );
    for status in tracker.budget_status(None).await? {
        println!(
            "budget {:?}: ${} spent of ${}",
            status.budget, status.spent, status.limit
        );
    }
    Ok(())
}
