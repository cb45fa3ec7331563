//! Each layer alone, driven with `tower_test::mock` handles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use llm_tower_core::{
    ChatRequest, Error, ErrorKind, LlmRequest, LlmResponse, Message, ResponseBody, Usage,
    UsageSource,
};
use llm_tower_layers::cost::{
    Budget, BudgetScope, CostTracker, ModelPrice, Period, PriceTable, TrackCostLayer,
};
use llm_tower_layers::rate_limit::{Algorithm, KeyBy, Mode, RateLimitLayer};
use llm_tower_layers::retry::RetryLayer;
use llm_tower_layers::token_count::CountTokensLayer;
use tokio_test::{assert_pending, assert_ready_ok};
use tower_test::mock;

type ToError = fn(llm_tower_core::BoxError) -> Error;
type OverMock<L> = tower::ServiceBuilder<
    tower::layer::util::Stack<
        tower::util::MapErrLayer<ToError>,
        tower::layer::util::Stack<L, tower::layer::util::Identity>,
    >,
>;

/// Our layers need `Error` from the inner service; tower-test's mock speaks `BoxError`.
fn over_mock<L>(layer: L) -> OverMock<L> {
    tower::ServiceBuilder::new()
        .layer(layer)
        .map_err(Error::from_boxed as ToError)
}

fn req(model: &str) -> LlmRequest {
    LlmRequest::chat(ChatRequest::new(model, vec![Message::user("hello")]).max_tokens(10))
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

#[tokio::test]
async fn rate_limit_passes_readiness_through_and_refuses_without_calling_inner() {
    let layer = RateLimitLayer::new(Algorithm::sliding_window(1, Duration::from_secs(60)).unwrap())
        .key(KeyBy::Model);
    let (mut svc, mut handle) = mock::spawn_layer::<LlmRequest, LlmResponse, _>(over_mock(layer));
    handle.allow(0);
    assert_pending!(svc.poll_ready());
    handle.allow(2);
    assert_ready_ok!(svc.poll_ready());
    let fut = tokio::spawn(svc.call(req("gpt-4o")));
    let (r, send) = handle.next_request().await.unwrap();
    assert_eq!(r.model(), "gpt-4o");
    send.send_response(answer());
    fut.await.unwrap().unwrap();
    assert_ready_ok!(svc.poll_ready());
    let err = svc.call(req("gpt-4o")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    let limits = err.limits().unwrap().requests.unwrap();
    assert_eq!((limits.limit, limits.remaining), (Some(1), Some(0)));
    // Another model has its own key.
    assert_ready_ok!(svc.poll_ready());
    let fut = tokio::spawn(svc.call(req("gpt-4o-mini")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer());
    fut.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_mode_rejects_at_once_when_the_deadline_is_nearer_than_the_slot() {
    let layer = RateLimitLayer::new(Algorithm::sliding_window(1, Duration::from_secs(10)).unwrap())
        .mode(Mode::Wait {
            max_wait: Duration::from_secs(60),
        });
    let (mut svc, mut handle) = mock::spawn_layer::<LlmRequest, LlmResponse, _>(over_mock(layer));
    handle.allow(10);
    assert_ready_ok!(svc.poll_ready());
    let first = tokio::spawn(svc.call(req("m")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer());
    first.await.unwrap().unwrap();
    let start = tokio::time::Instant::now();
    let deadline = start.into_std() + Duration::from_secs(5);
    assert_ready_ok!(svc.poll_ready());
    let err = svc
        .call(req("m").with_deadline(deadline))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "rejected at once, no waiting"
    );
    assert!(err.retry_after().unwrap() > Duration::from_secs(9));
}

#[tokio::test(start_paused = true)]
async fn retry_resends_a_clone_after_a_retryable_error_only() {
    let layer = RetryLayer::new()
        .seed(5)
        .no_budget()
        .backoff(Duration::from_millis(10), Duration::from_millis(20));
    let (mut svc, mut handle) = mock::spawn_layer::<LlmRequest, LlmResponse, _>(over_mock(layer));
    handle.allow(10);
    assert_ready_ok!(svc.poll_ready());
    let fut = tokio::spawn(svc.call(req("m")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Error::new(ErrorKind::Provider { status: 500 }, "boom"));
    let (again, send) = handle.next_request().await.unwrap();
    assert_eq!(again.model(), "m");
    send.send_response(answer());
    assert_eq!(fut.await.unwrap().unwrap().meta.attempts, 2);

    assert_ready_ok!(svc.poll_ready());
    let fut = tokio::spawn(svc.call(req("m")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Error::new(ErrorKind::Unauthorized, "bad key"));
    let err = fut.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.attempts(), 1);
}

#[test]
fn full_jitter_is_bounded_and_seeded() {
    let a = RetryLayer::new()
        .seed(42)
        .backoff(Duration::from_millis(100), Duration::from_secs(2));
    let b = RetryLayer::new()
        .seed(42)
        .backoff(Duration::from_millis(100), Duration::from_secs(2));
    for retry in 1..8u32 {
        let (x, y) = (
            a.policy().jittered_backoff(retry),
            b.policy().jittered_backoff(retry),
        );
        assert_eq!(x, y, "same seed, same jitter");
        let cap = (Duration::from_millis(100) * 2u32.pow(retry - 1)).min(Duration::from_secs(2));
        assert!(x <= cap, "retry {retry}: {x:?} > {cap:?}");
    }
    let spread: std::collections::HashSet<_> =
        (0..50).map(|_| a.policy().jittered_backoff(3)).collect();
    assert!(spread.len() > 40, "jitter must vary between draws");
}

#[tokio::test]
async fn cost_layer_refuses_before_calling_inner_and_settles_after() {
    let tracker = CostTracker::builder()
        .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
        .budget(
            Budget::new(
                "b",
                BudgetScope::Model("gpt-4o".into()),
                Period::Total,
                llm_tower_core::Money::from_nanos(200_000),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let (mut svc, mut handle) = mock::spawn_layer::<LlmRequest, LlmResponse, _>(over_mock(
        TrackCostLayer::new(tracker.clone()),
    ));
    handle.allow(10);
    assert_ready_ok!(svc.poll_ready());
    let fut = tokio::spawn(svc.call(req("gpt-4o")));
    let (_, send) = handle.next_request().await.unwrap();
    // Held while in flight: prompt estimate + 10 output tokens at $10/M.
    let held = tracker.budget_status(None).await.unwrap()[0].reserved;
    assert!(
        held >= llm_tower_core::Money::from_nanos(100_000),
        "{held:?}"
    );
    send.send_response(answer());
    let resp = fut.await.unwrap().unwrap();
    // 8 x $2.50/M + 2 x $10/M = 20,000 + 20,000 nano-USD.
    assert_eq!(resp.cost, Some(llm_tower_core::Money::from_nanos(40_000)));
    let s = &tracker.budget_status(None).await.unwrap()[0];
    assert_eq!((s.spent.as_nanos(), s.reserved.as_nanos()), (40_000, 0));
    // 160,000 left; a 16-token output bound (180,000 with the prompt) cannot fit: refused,
    // inner never called.
    assert_ready_ok!(svc.poll_ready());
    let big =
        LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hello")]).max_tokens(16));
    let err = svc.call(big).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BudgetExceeded);
    assert!(handle.poll_request().is_pending());
    // Errors release the hold and are counted.
    assert_ready_ok!(svc.poll_ready());
    let fut = tokio::spawn(svc.call(req("gpt-4o")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Error::new(
        ErrorKind::Provider { status: 502 },
        "bad gateway",
    ));
    fut.await.unwrap().unwrap_err();
    let snap = tracker.snapshot();
    assert_eq!((snap.total.requests, snap.total.errors), (3, 2));
    assert_eq!(snap.by_model["gpt-4o"].cost.as_nanos(), 40_000);
    assert_eq!(
        tracker.budget_status(None).await.unwrap()[0]
            .reserved
            .as_nanos(),
        0
    );
}

#[tokio::test]
async fn count_tokens_then_cost_fills_missing_usage_once() {
    let tracker = CostTracker::builder()
        .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
        .build()
        .unwrap();
    let stack = tower::ServiceBuilder::new()
        .layer(CountTokensLayer::default())
        .layer(TrackCostLayer::new(tracker.clone()));
    let (mut svc, mut handle) = mock::spawn_layer::<LlmRequest, LlmResponse, _>(over_mock(stack));
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready());
    let fut = tokio::spawn(svc.call(req("gpt-4o")));
    let (seen, send) = handle.next_request().await.unwrap();
    assert_eq!(seen.ctx.token_estimate.unwrap().prompt_tokens, 8);
    let mut no_usage = answer();
    no_usage.usage = None;
    send.send_response(no_usage);
    let resp = fut.await.unwrap().unwrap();
    let usage = resp.usage.unwrap();
    assert_eq!(
        (usage.prompt_tokens, usage.completion_tokens, usage.source),
        (8, 2, UsageSource::Counted)
    );
    assert_eq!(resp.cost, tracker.cost_of("gpt-4o", &usage));
}

#[test]
fn bad_parameters_are_errors_not_panics() {
    assert_eq!(
        Algorithm::sliding_window(0, Duration::from_secs(1))
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    assert!(Algorithm::sliding_window(1, Duration::ZERO).is_err());
    assert!(Algorithm::leaky_bucket(0, Duration::from_secs(1), 1).is_err());
    assert!(Algorithm::leaky_bucket(1, Duration::ZERO, 1).is_err());
    assert!(Algorithm::leaky_bucket(1, Duration::from_secs(1), 0).is_err());
    assert!(ModelPrice::usd("-1", "1").is_err());
    assert!(ModelPrice::usd("1", "abc").is_err());
}

#[tokio::test]
async fn a_chosen_store_survives_a_later_clock_and_is_shared_between_layers() {
    use std::sync::Arc;
    use tower::{Layer, ServiceExt};
    let store: Arc<dyn llm_tower_layers::rate_limit::RateLimitStore> =
        Arc::new(llm_tower_layers::rate_limit::MemoryStore::new());
    let alg = Algorithm::sliding_window(1, Duration::from_secs(60)).unwrap();
    let ok = tower::service_fn(|_r: LlmRequest| async { Ok::<_, Error>(answer()) });
    let a = RateLimitLayer::new(alg)
        .name("shared")
        .store(store.clone())
        .clock(llm_tower_core::TokioClock::shared())
        .layer(ok);
    let b = RateLimitLayer::new(alg)
        .name("shared")
        .store(store)
        .layer(ok);
    a.oneshot(req("m")).await.unwrap();
    let err = b.oneshot(req("m")).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited,
        "both layers use the one store"
    );
}

#[tokio::test]
async fn an_invalid_algorithm_built_directly_is_a_config_error_not_a_panic() {
    use tower::{Layer, ServiceExt};
    let ok = tower::service_fn(|_r: LlmRequest| async { Ok::<_, Error>(answer()) });
    for alg in [
        Algorithm::LeakyBucket {
            rate: 0,
            per: Duration::from_secs(1),
            burst: 1,
        },
        Algorithm::SlidingWindow {
            limit: 1,
            window: Duration::ZERO,
        },
    ] {
        let svc = RateLimitLayer::new(alg).layer(ok);
        let err = svc.oneshot(req("m")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{alg:?}: {err}");
    }
}

#[tokio::test]
async fn a_closure_key_limits_per_returned_key_and_none_exempts() {
    use tower::{Layer, ServiceExt};
    let ok = tower::service_fn(|_r: LlmRequest| async { Ok::<_, Error>(answer()) });
    let svc = RateLimitLayer::new(Algorithm::sliding_window(1, Duration::from_secs(60)).unwrap())
        .key_with(|r: &LlmRequest| r.ctx.tags.get("team").cloned())
        .layer(ok);
    let tagged = |team: &str| {
        let mut r = req("m");
        r.ctx.tags.insert("team".into(), team.into());
        r
    };
    svc.clone().oneshot(tagged("red")).await.unwrap();
    let err = svc.clone().oneshot(tagged("red")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.message().contains("\"red\""), "{err}");
    svc.clone().oneshot(tagged("blue")).await.unwrap();
    // No team: the closure returns None, which exempts the request.
    for _ in 0..3 {
        svc.clone().oneshot(req("m")).await.unwrap();
    }
}
