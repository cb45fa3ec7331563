//! Pins the layer order of the crate docs (trace outermost, timeout innermost):
//!
//! trace -> count_tokens -> track_cost -> rate_limit (caller, Reject) -> retry
//!       -> adaptive_limits -> rate_limit (provider, Wait) -> timeout -> provider

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm_tower::layers::rate_limit::Mode;
use llm_tower::prelude::*;
use llm_tower::providers::mock::{Failure, FailurePlan};
use tower::{ServiceBuilder, ServiceExt, service_fn};

type Seen = Arc<Mutex<Vec<(bool, u64)>>>;

/// The documented stack around `provider`, with a caller limit of `caller_limit` per minute
/// and a provider limit of `provider_limit` per minute.
fn stack(
    tracker: CostTracker,
    caller_limit: u64,
    provider_limit: u64,
    provider: MockProvider,
    seen: Seen,
) -> impl tower::Service<LlmRequest, Response = LlmResponse, Error = Error, Future: Send> + Clone {
    // A probe just above the provider records what the innermost layer sees.
    let probe = service_fn(move |req: LlmRequest| {
        let seen = seen.clone();
        let provider = provider.clone();
        async move {
            seen.lock().unwrap().push((
                req.ctx.meter.is_some(),
                req.ctx.token_estimate.map_or(0, |e| e.prompt_tokens),
            ));
            provider.oneshot(req).await
        }
    });
    ServiceBuilder::new()
        .llm_trace()
        .count_tokens()
        .track_cost(tracker)
        .llm_rate_limit(
            RateLimitLayer::new(
                Algorithm::sliding_window(caller_limit, Duration::from_secs(60)).unwrap(),
            )
            .name("caller")
            .key(KeyBy::Caller),
        )
        .llm_retry(
            RetryLayer::new()
                .seed(9)
                .backoff(Duration::from_millis(10), Duration::from_millis(50))
                .retry_after_cap(Duration::from_secs(1)),
        )
        .llm_rate_limit(
            RateLimitLayer::new(
                Algorithm::sliding_window(provider_limit, Duration::from_secs(60)).unwrap(),
            )
            .name("provider")
            .key(KeyBy::Provider)
            .mode(Mode::Wait {
                max_wait: Duration::ZERO,
            }),
        )
        .llm_timeout(Duration::from_secs(30))
        .service(probe)
}

fn tracker() -> CostTracker {
    CostTracker::builder()
        .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
        .budget(Budget::new("b", BudgetScope::Global, Period::Total, Money::from_usd(1)).unwrap())
        .build()
        .unwrap()
}

fn req(caller: &str) -> LlmRequest {
    LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hello")]).max_tokens(16))
        .with_caller(caller)
}

#[tokio::test(start_paused = true)]
async fn token_estimate_reaches_the_innermost_layer() {
    let seen: Seen = Arc::default();
    let svc = stack(tracker(), 10, 10, MockProvider::new(), seen.clone());
    svc.oneshot(req("a")).await.unwrap();
    assert_eq!(seen.lock().unwrap().as_slice(), &[(true, 8)]);
}

#[tokio::test(start_paused = true)]
async fn retries_spend_provider_quota_but_not_caller_quota_and_cost_settles_once() {
    let seen: Seen = Arc::default();
    let provider = MockProvider::builder()
        .failures(FailurePlan::Once(vec![Some(Failure::ServerError {
            status: 502,
        })]))
        .build();
    let t = tracker();
    // Caller: 1 per minute. Provider: 3 per minute.
    let svc = stack(t.clone(), 1, 3, provider, seen.clone());
    let resp = svc.clone().oneshot(req("a")).await.unwrap();
    assert_eq!(resp.meta.attempts, 2, "the 502 was retried");
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "two attempts reached the provider"
    );
    assert_eq!(
        t.snapshot().total.requests,
        1,
        "cost settles once per request, outside retry"
    );
    // The caller's one request per minute is spent once, not per attempt...
    let e = svc.clone().oneshot(req("a")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.message().contains("\"caller\""), "{e}");
    // ...while the provider limit counted both attempts: one slot is left of three.
    svc.clone().oneshot(req("b")).await.unwrap();
    let e = svc.clone().oneshot(req("c")).await.unwrap_err();
    assert!(e.message().contains("\"provider\""), "{e}");
}

/// A tracker with a $0.001 budget of which $0.00003 is left: less than the worst case of
/// `req` ($0.00018), which still fits the whole limit (so it is refused with 402, not as a
/// request that can never fit).
async fn exhausted(scope: BudgetScope, caller: &str) -> CostTracker {
    let t = CostTracker::builder()
        .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
        .budget(Budget::new("tiny", scope, Period::Total, Money::from_nanos(1_000_000)).unwrap())
        .build()
        .unwrap();
    let spend =
        LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hello")]).max_tokens(95))
            .with_caller(caller);
    let r = t.reserve(&spend).await.unwrap();
    // 8 x $2.50/M + 95 x $10/M = $0.00097.
    r.settle(
        Some(llm_tower_core::Usage::new(
            8,
            95,
            llm_tower_core::UsageSource::Provider,
        )),
        false,
    )
    .await;
    t
}

#[tokio::test(start_paused = true)]
async fn budget_refusal_comes_before_the_rate_limit() {
    let seen: Seen = Arc::default();
    let tiny = exhausted(BudgetScope::Global, "a").await;
    let svc = stack(tiny, 1, 10, MockProvider::new(), seen.clone());
    for _ in 0..3 {
        let e = svc.clone().oneshot(req("a")).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::BudgetExceeded,
            "budget is checked outside the caller limit: {e}"
        );
    }
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn trace_is_outermost_it_sees_the_budget_and_caller_limit_refusals() {
    // A thread-local recorder: nothing global, so tests running in parallel cannot
    // interfere (tracing's callsite caches are global, so this test counts metrics).
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let tiny = exhausted(BudgetScope::Caller("poor".into()), "poor").await;
            let svc = stack(tiny, 1, 10, MockProvider::new(), Seen::default());
            let e = svc.clone().oneshot(req("poor")).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
            svc.clone().oneshot(req("rich")).await.unwrap();
            let e = svc.clone().oneshot(req("rich")).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RateLimited);
        });
    });
    // The trace layer counted every request by outcome, the refusals of track_cost and of
    // the caller limit included: it sits outside both.
    let mut outcomes: Vec<(String, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, _, _, _)| key.key().name() == "llm_tower_requests_total")
        .filter_map(|(key, _, _, value)| {
            let outcome = key
                .key()
                .labels()
                .find(|l| l.key() == "llm_tower.outcome")?
                .value()
                .to_owned();
            match value {
                metrics_util::debugging::DebugValue::Counter(n) => Some((outcome, n)),
                _ => None,
            }
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("budget_exceeded".to_owned(), 1),
            ("rate_limited".to_owned(), 1),
            ("success".to_owned(), 1)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_is_innermost_it_bounds_each_attempt_and_retry_recovers() {
    // The first attempt never answers: a per-attempt timeout (inside retry) turns it into
    // a retryable Timeout and the second attempt succeeds. A timeout outside retry would
    // fail the whole request instead.
    let seen: Seen = Arc::default();
    let provider = MockProvider::builder()
        .failures(FailurePlan::Once(vec![Some(Failure::Stall)]))
        .build();
    let svc = stack(tracker(), 10, 10, provider.clone(), seen.clone());
    let start = tokio::time::Instant::now();
    let resp = svc.oneshot(req("a")).await.unwrap();
    assert_eq!(resp.meta.attempts, 2);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "both attempts reached the provider"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(31),
        "the stalled attempt was cut at the 30 s per-attempt timeout: {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn adaptive_limits_wait_inside_retry_but_outside_the_attempts_timeout() {
    // The provider's first answer says nothing is left for 3 s. The next request waits
    // those 3 s in the adaptive layer, then its attempt gets the full 1 s timeout and
    // succeeds at once: a wait is neither an attempt nor part of one's timeout.
    let calls = Arc::new(Mutex::new(0u32));
    let provider = {
        let calls = calls.clone();
        service_fn(move |req: LlmRequest| {
            let calls = calls.clone();
            async move {
                *calls.lock().unwrap() += 1;
                let mut resp = MockProvider::builder().build().oneshot(req).await?;
                resp.meta.provider_limits = Some(llm_tower::ProviderLimits {
                    requests: Some(llm_tower::LimitState {
                        limit: Some(10),
                        remaining: Some(0),
                        reset: Some(Duration::from_secs(3)),
                    }),
                    ..Default::default()
                });
                Ok::<_, Error>(resp)
            }
        })
    };
    let svc = ServiceBuilder::new()
        .llm_retry(RetryLayer::new().seed(9))
        .adaptive_limits(AdaptiveLimitLayer::new().key("mock/gpt-4o-mini"))
        .llm_timeout(Duration::from_secs(1))
        .service(provider);
    svc.clone().oneshot(req("a")).await.unwrap();
    let start = tokio::time::Instant::now();
    let resp = svc.oneshot(req("a")).await.unwrap();
    assert_eq!(resp.meta.attempts, 1, "the wait was not an attempt");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    assert_eq!(
        *calls.lock().unwrap(),
        2,
        "nothing was sent during the reset"
    );
}
