//! Whole-stack tests: the layers together around the mock provider.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use llm_tower::layers::cost::{BudgetAlert, BudgetStatus};
use llm_tower::layers::rate_limit::Mode;
use llm_tower::prelude::*;
use llm_tower::providers::mock::{Failure, FailurePlan, Reply};
use llm_tower::{ManualClock, UsageSource};
use tower::{ServiceBuilder, ServiceExt};

fn chat(model: &str, text: &str) -> LlmRequest {
    LlmRequest::chat(ChatRequest::new(model, vec![Message::user(text)]).max_tokens(32))
}

fn prices() -> PriceTable {
    PriceTable::new()
        .with(
            "gpt-4o-mini",
            ModelPrice::usd("0.15", "0.60")
                .unwrap()
                .max_output_tokens(16_384),
        )
        .with(
            "gpt-4o",
            ModelPrice::usd("2.50", "10.00")
                .unwrap()
                .max_output_tokens(16_384),
        )
}

#[tokio::test]
async fn limit_holds_across_eight_clones() {
    let svc = ServiceBuilder::new()
        .llm_rate_limit(RateLimitLayer::new(
            Algorithm::sliding_window(10, Duration::from_secs(60)).unwrap(),
        ))
        .service(MockProvider::new());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let clone = svc.clone();
        for _ in 0..5 {
            let c = clone.clone();
            tasks.push(tokio::spawn(async move {
                c.oneshot(chat("gpt-4o", "hi")).await
            }));
        }
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::RateLimited);
                assert!(e.retry_after().is_some());
                limited += 1;
            }
        }
    }
    assert_eq!((ok, limited), (10, 30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_never_overspend_the_budget() {
    let alerts = Arc::new(Mutex::new(Vec::<BudgetAlert>::new()));
    let sink = alerts.clone();
    let limit = Money::parse_usd("0.01").unwrap();
    let tracker = CostTracker::builder()
        .prices(prices())
        .budget(Budget::new("global", BudgetScope::Global, Period::Month, limit).unwrap())
        .alerts(move |a: &BudgetAlert| sink.lock().unwrap().push(a.clone()))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .count_tokens()
        .track_cost(tracker.clone())
        .service(
            MockProvider::builder()
                .latency(Duration::from_millis(1))
                .build(),
        );
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                svc.oneshot(chat("gpt-4o", &format!("question number {i}")))
                    .await
            })
        })
        .collect();
    let mut ok = 0u64;
    let mut refused = 0u64;
    let mut spent_by_responses = Money::ZERO;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                ok += 1;
                spent_by_responses += r.cost.unwrap();
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BudgetExceeded, "{e}");
                refused += 1;
            }
        }
    }
    let status: Vec<BudgetStatus> = tracker.budget_status(None).await.unwrap();
    assert_eq!(status[0].reserved, Money::ZERO, "nothing stays held");
    assert!(
        status[0].spent <= limit,
        "spent {} > limit {}",
        status[0].spent,
        limit
    );
    assert_eq!(status[0].spent, spent_by_responses, "nothing lost");
    assert!(ok > 10 && refused > 0, "ok {ok}, refused {refused}");
    let snap = tracker.snapshot();
    assert_eq!(
        (snap.total.requests, snap.total.errors),
        (ok + refused, refused),
        "refusals are counted as errors"
    );
    assert_eq!(snap.total.cost, spent_by_responses);
    assert_eq!(
        snap.by_provider["mock"].requests, ok,
        "the answering provider is recorded without a router"
    );
    // Each threshold delivered exactly once (alerts come from concurrent settlements in
    // any order, so count each threshold rather than look at neighbours).
    let alerts = alerts.lock().unwrap();
    let mut count = std::collections::BTreeMap::<u16, usize>::new();
    for a in alerts.iter() {
        *count.entry(a.threshold_per_mille).or_default() += 1;
    }
    assert!(
        count.values().all(|&n| n == 1),
        "an alert fired twice: {count:?} {alerts:?}"
    );
    // 50 % and 80 % are crossed by settlements; 100 % ("exhausted") by the refusals.
    assert_eq!(
        count.keys().copied().collect::<Vec<_>>(),
        [500, 800, 1000],
        "{alerts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_hides_a_429_and_a_503_and_honours_retry_after() {
    let provider = MockProvider::builder()
        .failures(FailurePlan::Once(vec![
            Some(Failure::RateLimited {
                retry_after: Duration::from_secs(3),
            }),
            Some(Failure::ServerError { status: 503 }),
        ]))
        .build();
    let svc = ServiceBuilder::new()
        .llm_retry(
            RetryLayer::new()
                .seed(1)
                .backoff(Duration::from_millis(100), Duration::from_secs(1)),
        )
        .service(provider.clone());
    let start = tokio::time::Instant::now();
    let resp = svc.oneshot(chat("gpt-4o", "hi")).await.unwrap();
    assert_eq!(resp.meta.attempts, 3);
    assert_eq!(provider.calls(), 3);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "retry-after not honoured: {waited:?}"
    );
    assert!(
        waited <= Duration::from_secs(3) + Duration::from_millis(300),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_gives_up_before_the_deadline_and_on_client_errors() {
    let provider = MockProvider::builder()
        .failures(FailurePlan::Schedule(vec![Some(Failure::RateLimited {
            retry_after: Duration::from_secs(10),
        })]))
        .build();
    let svc = ServiceBuilder::new()
        .llm_retry(RetryLayer::new().seed(2))
        .service(provider.clone());
    let deadline = tokio::time::Instant::now().into_std() + Duration::from_secs(5);
    let err = svc
        .oneshot(chat("gpt-4o", "hi").with_deadline(deadline))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(
        err.attempts(),
        1,
        "a retry-after past the deadline must not be slept"
    );
    assert_eq!(provider.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_budget_stops_a_storm() {
    let provider = MockProvider::builder()
        .failures(FailurePlan::Schedule(vec![Some(Failure::ServerError {
            status: 500,
        })]))
        .build();
    let svc = ServiceBuilder::new()
        .llm_retry(
            RetryLayer::new()
                .seed(3)
                .max_retries(3)
                .budget(Duration::from_secs(10), 1, 0.1),
        )
        .service(provider.clone());
    for _ in 0..50 {
        let _ = svc.clone().oneshot(chat("gpt-4o", "hi")).await;
    }
    // Without a budget this would be 200 calls; with it, retries are a small share.
    let calls = provider.calls();
    assert!(calls < 90, "retry storm: {calls} calls for 50 requests");
}

#[tokio::test]
async fn streamed_usage_is_counted_when_the_provider_sends_none_and_cost_settles_at_the_end() {
    let tracker = CostTracker::builder().prices(prices()).build().unwrap();
    let svc = ServiceBuilder::new()
        .count_tokens()
        .track_cost(tracker.clone())
        .service(
            MockProvider::builder()
                .report_usage(false)
                .reply(Reply::Fixed("alpha beta gamma delta".into()))
                .build(),
        );
    let req = LlmRequest::chat(
        ChatRequest::new("gpt-4o", vec![Message::user("go")])
            .max_tokens(50)
            .streaming(),
    );
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(
        tracker.snapshot().total.requests,
        0,
        "not settled before the stream ends"
    );
    let chunks: Vec<_> = resp.into_stream().unwrap().collect().await;
    let last = chunks.last().unwrap().as_ref().unwrap();
    let usage = last.usage.expect("a final usage chunk is appended");
    assert_eq!(usage.completion_tokens, 4);
    assert_eq!(usage.source, UsageSource::Counted);
    let snap = tracker.snapshot();
    assert_eq!(snap.total.requests, 1);
    assert_eq!(snap.total.completion_tokens, 4);
    assert_eq!(snap.total.cost, tracker.cost_of("gpt-4o", &usage).unwrap());
}

#[tokio::test]
async fn a_dropped_stream_settles_with_what_was_counted() {
    let tracker = CostTracker::builder()
        .prices(prices())
        .budget(Budget::new("b", BudgetScope::Global, Period::Total, Money::from_usd(1)).unwrap())
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .count_tokens()
        .track_cost(tracker.clone())
        .service(
            MockProvider::builder()
                .reply(Reply::Fixed("one two three four five six".into()))
                .build(),
        );
    let req = LlmRequest::chat(
        ChatRequest::new("gpt-4o", vec![Message::user("go")])
            .max_tokens(100)
            .streaming(),
    );
    let resp = svc.oneshot(req).await.unwrap();
    let mut stream = resp.into_stream().unwrap();
    let _role = stream.next().await.unwrap().unwrap();
    let _one = stream.next().await.unwrap().unwrap();
    let _two = stream.next().await.unwrap().unwrap();
    let held = tracker.budget_status(None).await.unwrap()[0].reserved;
    assert!(held > Money::ZERO);
    drop(stream);
    let s = &tracker.budget_status(None).await.unwrap()[0];
    assert_eq!(s.reserved, Money::ZERO);
    let snap = tracker.snapshot();
    assert_eq!(snap.total.completion_tokens, 2, "two words were streamed");
    assert_eq!(s.spent, snap.total.cost);
    assert!(s.spent > Money::ZERO);
}

#[tokio::test]
async fn token_rate_limit_weighs_prompt_plus_max_tokens() {
    let svc = ServiceBuilder::new()
        .count_tokens()
        .llm_rate_limit(
            RateLimitLayer::new(Algorithm::sliding_window(100, Duration::from_secs(60)).unwrap())
                .by_tokens(),
        )
        .service(MockProvider::new());
    let req = |max| {
        LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hello")]).max_tokens(max))
    };
    // "hello" as one user message is 8 prompt tokens with the chat overhead.
    svc.clone().oneshot(req(42)).await.unwrap(); // 50
    svc.clone().oneshot(req(40)).await.unwrap(); // 98
    let e = svc.clone().oneshot(req(1)).await.unwrap_err(); // 107 > 100
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    let e = svc.clone().oneshot(req(500)).await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidRequest,
        "heavier than the whole limit: {e}"
    );
    // Without count_tokens outside, a token limit explains itself.
    let bare = ServiceBuilder::new()
        .llm_rate_limit(
            RateLimitLayer::new(Algorithm::sliding_window(100, Duration::from_secs(60)).unwrap())
                .by_tokens(),
        )
        .service(MockProvider::new());
    let e = bare.oneshot(req(1)).await.unwrap_err();
    assert!(e.message().contains("count_tokens"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn wait_mode_queues_fifo_and_rejects_past_max_wait() {
    let svc = ServiceBuilder::new()
        .llm_rate_limit(
            RateLimitLayer::new(Algorithm::leaky_bucket(1, Duration::from_secs(1), 1).unwrap())
                .mode(Mode::Wait {
                    max_wait: Duration::from_millis(2500),
                }),
        )
        .service(MockProvider::new());
    let start = tokio::time::Instant::now();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let svc = svc.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let r = svc.oneshot(chat("gpt-4o", "hi")).await;
            order
                .lock()
                .unwrap()
                .push((i, start.elapsed().as_millis(), r.is_ok()));
        }));
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut order = order.lock().unwrap().clone();
    order.sort();
    assert_eq!(
        order,
        vec![
            (0, 0, true),
            (1, 1000, true),
            (2, 2000, true),
            (3, 0, false)
        ]
    );
}

#[tokio::test]
async fn budget_periods_start_over_and_alert_again() {
    let clock = ManualClock::new();
    let alerts = Arc::new(Mutex::new(Vec::<BudgetAlert>::new()));
    let sink = alerts.clone();
    let tracker = CostTracker::builder()
        .prices(prices())
        .clock(Arc::new(clock.clone()))
        .budget(
            Budget::new(
                "daily",
                BudgetScope::EachCaller,
                Period::Day,
                Money::parse_usd("0.002").unwrap(),
            )
            .unwrap()
            .thresholds(vec![Threshold::percent(50).unwrap()]),
        )
        .alerts(move |a: &BudgetAlert| sink.lock().unwrap().push(a.clone()))
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .count_tokens()
        .track_cost(tracker.clone())
        .service(MockProvider::new());
    let mut ok_day1 = 0;
    for _ in 0..20 {
        if svc
            .clone()
            .oneshot(chat("gpt-4o", "hi").with_caller("bob"))
            .await
            .is_ok()
        {
            ok_day1 += 1;
        }
    }
    assert!(ok_day1 < 20, "the daily budget must refuse some");
    // Another caller has a budget of its own.
    assert!(
        svc.clone()
            .oneshot(chat("gpt-4o", "hi").with_caller("carol"))
            .await
            .is_ok()
    );
    let err = svc
        .clone()
        .oneshot(chat("gpt-4o", "hi").with_caller("bob"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
    assert!(err.retry_after().unwrap() <= Duration::from_secs(86_400));
    assert_eq!(
        alerts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.caller.as_deref() == Some("bob"))
            .count(),
        1
    );
    clock.advance(Duration::from_secs(86_400));
    assert!(
        svc.clone()
            .oneshot(chat("gpt-4o", "hi").with_caller("bob"))
            .await
            .is_ok(),
        "a new day, a new budget"
    );
    for _ in 0..20 {
        let _ = svc
            .clone()
            .oneshot(chat("gpt-4o", "hi").with_caller("bob"))
            .await;
    }
    assert_eq!(
        alerts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.caller.as_deref() == Some("bob"))
            .count(),
        2
    );
}

#[tokio::test]
async fn without_max_tokens_the_model_maximum_bounds_the_reservation() {
    // 16,384 output tokens of gpt-4o cost $0.16384: a $0.10 budget cannot hold that.
    let tracker = CostTracker::builder()
        .prices(prices())
        .budget(
            Budget::new(
                "small",
                BudgetScope::Global,
                Period::Total,
                Money::parse_usd("0.10").unwrap(),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .count_tokens()
        .track_cost(tracker)
        .service(MockProvider::new());
    let no_max = LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]));
    // It can never fit, whatever is spent: a client error that says so, not a 402 to retry.
    let err = svc.clone().oneshot(no_max).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{err}");
    assert!(err.message().contains("can never fit"), "{err}");
    assert_eq!(err.retry_after(), None);
    assert!(
        svc.oneshot(chat("gpt-4o", "hi")).await.is_ok(),
        "with max_tokens it fits"
    );
}

#[tokio::test]
async fn unpriced_model_under_a_blocking_budget_is_a_clear_error() {
    let tracker = CostTracker::builder()
        .prices(prices())
        .budget(
            Budget::new(
                "all",
                BudgetScope::Global,
                Period::Total,
                Money::from_usd(1),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .count_tokens()
        .track_cost(tracker)
        .service(MockProvider::new());
    let err = svc.oneshot(chat("mystery-model", "hi")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.message().contains("mystery-model"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn timeout_layer_catches_a_stalled_provider() {
    let svc = ServiceBuilder::new()
        .llm_timeout(Duration::from_secs(2))
        .service(
            MockProvider::builder()
                .failures(FailurePlan::Schedule(vec![Some(Failure::Stall)]))
                .build(),
        );
    let start = tokio::time::Instant::now();
    let err = svc.oneshot(chat("gpt-4o", "hi")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn a_config_with_an_out_of_range_retry_budget_builds_without_panicking() {
    let mut raw: serde_json::Value = serde_json::from_str(
        &llm_tower::config::Config::embedded_default()
            .unwrap()
            .to_json_pretty(),
    )
    .unwrap();
    let retry = raw
        .as_object_mut()
        .unwrap()
        .entry("retry")
        .or_insert_with(|| serde_json::json!({}));
    retry["budget_min_per_second"] = serde_json::json!(u32::MAX);
    retry["budget_percent"] = serde_json::json!(1000);
    let config = llm_tower::config::Config::from_str(&raw.to_string()).unwrap();
    let stack = llm_tower::config::build(&config).await.unwrap();
    let _ = stack.service();
}
