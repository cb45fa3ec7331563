//! The adaptive provider-limit layer alone, over `tower_test::mock`, on a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::{
    ChatRequest, Clock, Error, ErrorKind, LimitOrigin, LimitState, LlmRequest, LlmResponse,
    ManualClock, Message, ProviderLimits, ResponseBody,
};
use llm_tower_layers::provider_limits::{
    AdaptiveLimitLayer, AdaptiveMode, MemoryAdaptiveStore, REFUSAL_CODE,
};
use llm_tower_layers::retry::RetryLayer;
use tower::{Layer, ServiceExt};
use tower_test::mock;

type Handle = mock::Handle<LlmRequest, LlmResponse>;
type ToError = fn(llm_tower_core::BoxError) -> Error;

/// The layer over a tower-test mock (whose errors are boxed).
fn stack(
    layer: AdaptiveLimitLayer,
) -> (
    tower::util::BoxCloneSyncService<LlmRequest, LlmResponse, Error>,
    Handle,
) {
    let (mock, handle) = mock::pair::<LlmRequest, LlmResponse>();
    let svc = layer.layer(
        tower::ServiceBuilder::new()
            .map_err(Error::from_boxed as ToError)
            .service(mock),
    );
    (tower::util::BoxCloneSyncService::new(svc), handle)
}

fn req() -> LlmRequest {
    LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]).max_tokens(10))
}

fn limits(limit: u64, remaining: u64, reset: Duration) -> ProviderLimits {
    ProviderLimits {
        requests: Some(LimitState {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(reset),
        }),
        ..Default::default()
    }
}

fn answer(l: Option<ProviderLimits>) -> LlmResponse {
    let chat = llm_tower_core::ChatResponse {
        extra: Default::default(),
        service_tier: None,
        id: "x".into(),
        model: "gpt-4o".into(),
        created: 0,
        choices: vec![],
        system_fingerprint: None,
        native: None,
    };
    let mut r = LlmResponse::new(ResponseBody::Chat(chat));
    r.meta.provider_limits = l;
    r
}

/// Lets spawned tasks run until they block.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn manual() -> (ManualClock, AdaptiveLimitLayer) {
    let clock = ManualClock::new();
    let layer = AdaptiveLimitLayer::new()
        .key("openai/gpt-4o")
        .clock(Arc::new(clock.clone()));
    (clock, layer)
}

/// Sends one request and answers it with `l`.
async fn exchange(
    svc: &tower::util::BoxCloneSyncService<LlmRequest, LlmResponse, Error>,
    handle: &mut Handle,
    l: Option<ProviderLimits>,
) {
    let fut = tokio::spawn(svc.clone().oneshot(req()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(l));
    fut.await.unwrap().unwrap();
}

#[tokio::test]
async fn wait_mode_holds_requests_until_the_reported_reset() {
    let (clock, layer) = manual();
    let (svc, mut handle) = stack(layer);
    handle.allow(10);
    exchange(
        &svc,
        &mut handle,
        Some(limits(5, 0, Duration::from_secs(2))),
    )
    .await;

    let waiting = tokio::spawn(svc.clone().oneshot(req()));
    settle().await;
    assert!(handle.poll_request().is_pending(), "sent before the reset");
    clock.advance(Duration::from_millis(1999));
    settle().await;
    assert!(handle.poll_request().is_pending(), "sent before the reset");
    clock.advance(Duration::from_millis(1));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(None));
    waiting.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_count_down_holds_back_what_the_provider_would_refuse() {
    let (clock, layer) = manual();
    let (svc, mut handle) = stack(layer);
    handle.allow(10);
    // 2 left in a window that resets in 1 s.
    exchange(
        &svc,
        &mut handle,
        Some(limits(3, 2, Duration::from_secs(1))),
    )
    .await;
    let a = tokio::spawn(svc.clone().oneshot(req()));
    let b = tokio::spawn(svc.clone().oneshot(req()));
    let c = tokio::spawn(svc.clone().oneshot(req()));
    settle().await;
    let (_, sa) = handle.next_request().await.unwrap();
    let (_, sb) = handle.next_request().await.unwrap();
    assert!(
        handle.poll_request().is_pending(),
        "the third would collect a 429"
    );
    sa.send_response(answer(None));
    sb.send_response(answer(None));
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    clock.advance(Duration::from_secs(1));
    let (_, sc) = handle.next_request().await.unwrap();
    sc.send_response(answer(None));
    c.await.unwrap().unwrap();
}

#[tokio::test]
async fn reject_mode_fails_at_once_with_the_providers_origin_and_the_retry_after() {
    let (clock, layer) = manual();
    let (svc, mut handle) = stack(layer.mode(AdaptiveMode::Reject));
    handle.allow(10);
    exchange(
        &svc,
        &mut handle,
        Some(limits(5, 0, Duration::from_secs(2))),
    )
    .await;
    clock.advance(Duration::from_millis(500));
    let err = svc
        .clone()
        .oneshot(req().with_provider("openai"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.is_retryable(), "a router moves on to its next target");
    assert_eq!(err.origin(), Some(LimitOrigin::Provider));
    assert_eq!(err.code(), Some(REFUSAL_CODE));
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
    assert_eq!(err.provider(), Some("openai"));
    assert!(handle.poll_request().is_pending(), "nothing was sent");
    clock.advance(Duration::from_millis(1500));
    exchange(&svc, &mut handle, None).await;
}

#[tokio::test]
async fn a_reset_past_the_deadline_fails_at_once_and_one_within_it_waits() {
    let (clock, layer) = manual();
    let (svc, mut handle) = stack(layer);
    handle.allow(10);
    exchange(
        &svc,
        &mut handle,
        Some(limits(5, 0, Duration::from_secs(2))),
    )
    .await;
    let late = req().with_deadline(clock.now() + Duration::from_secs(1));
    let err = svc.clone().oneshot(late).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    assert!(err.message().contains("deadline"), "{err}");
    assert_eq!(clock.elapsed(), Duration::ZERO, "failed without waiting");

    let in_time = tokio::spawn(
        svc.clone()
            .oneshot(req().with_deadline(clock.now() + Duration::from_secs(3))),
    );
    settle().await;
    assert!(handle.poll_request().is_pending());
    clock.advance(Duration::from_secs(2));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(None));
    in_time.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_reset_further_than_max_wait_fails_at_once() {
    let (_clock, layer) = manual();
    let (svc, mut handle) = stack(layer.mode(AdaptiveMode::Wait {
        max_wait: Duration::from_secs(1),
    }));
    handle.allow(10);
    exchange(
        &svc,
        &mut handle,
        Some(limits(5, 0, Duration::from_secs(360))),
    )
    .await;
    let err = svc.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(360)));
    assert!(err.message().contains("longest wait"), "{err}");
}

#[tokio::test]
async fn a_429_with_retry_after_blocks_the_target_until_then() {
    let (clock, layer) = manual();
    let (svc, mut handle) = stack(layer);
    handle.allow(10);
    let fut = tokio::spawn(svc.clone().oneshot(req()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(
        Error::new(ErrorKind::RateLimited, "HTTP 429: slow down")
            .with_origin(LimitOrigin::Provider)
            .with_retry_after(Duration::from_secs(3)),
    );
    let err = fut.await.unwrap().unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::RateLimited,
        "the provider's error comes back as is"
    );
    assert_eq!(err.code(), None);

    let waiting = tokio::spawn(svc.clone().oneshot(req()));
    clock.advance(Duration::from_millis(2999));
    settle().await;
    assert!(
        handle.poll_request().is_pending(),
        "sent inside the retry-after"
    );
    clock.advance(Duration::from_millis(1));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(None));
    waiting.await.unwrap().unwrap();
}

#[tokio::test]
async fn our_own_local_limits_do_not_block_the_target() {
    let (_clock, layer) = manual();
    let (svc, mut handle) = stack(layer.mode(AdaptiveMode::Reject));
    handle.allow(10);
    let fut = tokio::spawn(svc.clone().oneshot(req()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(Error::rate_limited(
        "our limit",
        Some(Duration::from_secs(60)),
    ));
    assert_eq!(
        fut.await.unwrap().unwrap_err().origin(),
        Some(LimitOrigin::Local)
    );
    exchange(&svc, &mut handle, None).await;
}

#[tokio::test]
async fn keys_are_isolated_per_provider_and_model() {
    let clock = ManualClock::new();
    let layer = AdaptiveLimitLayer::new()
        .mode(AdaptiveMode::Reject)
        .clock(Arc::new(clock.clone()));
    let (svc, mut handle) = stack(layer);
    handle.allow(10);
    let on = |provider: &str, model: &str| {
        LlmRequest::chat(ChatRequest::new(model, vec![Message::user("hi")])).with_provider(provider)
    };
    let fut = tokio::spawn(svc.clone().oneshot(on("key-a", "gpt-4o")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(Some(limits(5, 0, Duration::from_secs(2)))));
    fut.await.unwrap().unwrap();

    let err = svc
        .clone()
        .oneshot(on("key-a", "gpt-4o"))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("key-a/gpt-4o:"), "{err}");
    for (p, m) in [("key-b", "gpt-4o"), ("key-a", "gpt-4o-mini")] {
        let fut = tokio::spawn(svc.clone().oneshot(on(p, m)));
        let (r, send) = handle.next_request().await.unwrap();
        assert_eq!((r.ctx.provider.as_deref(), r.model()), (Some(p), m));
        send.send_response(answer(None));
        fut.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn instances_sharing_a_store_see_each_others_blocks() {
    let clock = ManualClock::new();
    let store = Arc::new(MemoryAdaptiveStore::with_clock(Arc::new(clock.clone())));
    let instance = |store: Arc<MemoryAdaptiveStore>| {
        AdaptiveLimitLayer::new()
            .key("openai/gpt-4o")
            .mode(AdaptiveMode::Reject)
            .clock(Arc::new(clock.clone()))
            .store(store)
    };
    let (a, mut ha) = stack(instance(store.clone()));
    let (b, mut hb) = stack(instance(store.clone()));
    ha.allow(10);
    hb.allow(10);
    exchange(&a, &mut ha, Some(limits(5, 0, Duration::from_secs(2)))).await;
    let err = b.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    clock.advance(Duration::from_secs(2));
    exchange(&b, &mut hb, None).await;
}

#[tokio::test]
async fn retry_gives_up_on_a_held_back_request_so_the_router_moves_on() {
    let (_clock, layer) = manual();
    let (mock, mut handle) = mock::pair::<LlmRequest, LlmResponse>();
    let svc = tower::ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .max_retries(3)
                .retry_after_cap(Duration::from_secs(60)),
        )
        .layer(layer.mode(AdaptiveMode::Reject))
        .map_err(Error::from_boxed as ToError)
        .service(mock);
    let svc = tower::util::BoxCloneSyncService::new(svc);
    handle.allow(10);
    exchange(
        &svc,
        &mut handle,
        Some(limits(5, 0, Duration::from_secs(2))),
    )
    .await;
    let err = svc.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(err.code(), Some(REFUSAL_CODE));
    assert_eq!(err.attempts(), 1, "not retried");
    assert!(handle.poll_request().is_pending());
}

#[tokio::test]
async fn a_dropped_request_frees_its_place_in_flight() {
    let (_clock, layer) = manual();
    let (svc, mut handle) = stack(layer);
    handle.allow(10);
    // One left, reset unknown: a second request waits for the first one's answer.
    let first = tokio::spawn(svc.clone().oneshot(req()));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(Some(ProviderLimits {
        requests: Some(LimitState {
            limit: Some(5),
            remaining: Some(1),
            reset: None,
        }),
        ..Default::default()
    })));
    first.await.unwrap().unwrap();
    let in_flight = tokio::spawn(svc.clone().oneshot(req()));
    let (_, _send_never) = handle.next_request().await.unwrap();
    let waiting = tokio::spawn(svc.clone().oneshot(req()));
    settle().await;
    assert!(handle.poll_request().is_pending(), "waits for an answer");
    in_flight.abort();
    settle().await;
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(None));
    waiting.await.unwrap().unwrap();
}

#[test]
fn waits_rejections_and_blocks_are_measured() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            // Tokio's clock (the default), paused: the 2 s wait passes at once.
            let svc = AdaptiveLimitLayer::new()
                .key("p/m")
                .layer(tower::service_fn(|_req: LlmRequest| async {
                    Ok::<_, Error>(answer(Some(limits(5, 0, Duration::from_secs(2)))))
                }));
            svc.clone().oneshot(req()).await.unwrap();
            let t0 = tokio::time::Instant::now();
            svc.clone().oneshot(req()).await.unwrap();
            assert_eq!(t0.elapsed(), Duration::from_secs(2));
            let late = req()
                .with_deadline((tokio::time::Instant::now() + Duration::from_secs(1)).into_std());
            svc.clone().oneshot(late).await.unwrap_err();
        });
    });
    let mut seen = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let v = match value {
            DebugValue::Counter(n) => format!("{n}"),
            DebugValue::Histogram(h) => format!("{:?}", h.iter().map(|x| x.0).collect::<Vec<_>>()),
            DebugValue::Gauge(_) => "gauge".to_owned(),
        };
        seen.push(format!("{}{{{}}} {v}", key.key().name(), labels.join(",")));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "llm_tower_provider_limit_blocked_until_seconds{target=p/m} gauge",
            "llm_tower_provider_limit_blocks_total{target=p/m,cause=exhausted} 2",
            "llm_tower_provider_limit_rejected_total{target=p/m,reason=deadline} 1",
            "llm_tower_provider_limit_wait_seconds{target=p/m} [2.0]",
        ]
    );
}

#[tokio::test]
async fn a_cold_target_is_probed_with_one_request_before_the_burst_goes() {
    let (clock, layer) = manual();
    let (svc, mut handle) = stack(layer.mode(AdaptiveMode::Wait {
        max_wait: Duration::from_secs(10),
    }));
    handle.allow(10);
    let burst: Vec<_> = (0..4)
        .map(|_| tokio::spawn(svc.clone().oneshot(req())))
        .collect();
    let (_, probe) = handle.next_request().await.unwrap();
    settle().await;
    assert!(
        handle.poll_request().is_pending(),
        "the others wait for the first answer"
    );
    // The answer: 2 left in this window.
    probe.send_response(answer(Some(limits(3, 2, Duration::from_secs(1)))));
    settle().await;
    for _ in 0..2 {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(answer(None));
    }
    settle().await;
    assert!(
        handle.poll_request().is_pending(),
        "the fourth waits for the reset"
    );
    clock.advance(Duration::from_secs(1));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(None));
    for r in burst {
        r.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_slow_probe_lets_the_others_go_after_max_wait_instead_of_failing_them() {
    let (clock, layer) = manual();
    let (svc, mut handle) = stack(layer.mode(AdaptiveMode::Wait {
        max_wait: Duration::from_secs(2),
    }));
    handle.allow(10);
    let first = tokio::spawn(svc.clone().oneshot(req()));
    let (_, slow) = handle.next_request().await.unwrap();
    let second = tokio::spawn(svc.clone().oneshot(req()));
    settle().await;
    assert!(handle.poll_request().is_pending());
    clock.advance(Duration::from_secs(2));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(answer(None));
    second.await.unwrap().unwrap();
    slow.send_response(answer(None));
    first.await.unwrap().unwrap();
}
