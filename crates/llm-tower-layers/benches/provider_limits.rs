//! The adaptive provider-limit layer's overhead per call: a service answering at once
//! with the provider's limits (plenty left), bare and behind the layer.
//!
//! Run: `cargo bench -p llm-tower-layers --bench provider_limits`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use llm_tower_core::{
    ChatRequest, ChatResponse, Error, LimitState, LlmRequest, LlmResponse, Message, ProviderLimits,
    ResponseBody,
};
use llm_tower_layers::provider_limits::AdaptiveLimitLayer;
use tower::{Layer, ServiceExt, service_fn};

fn answer() -> LlmResponse {
    let chat = ChatResponse {
        extra: Default::default(),
        service_tier: None,
        id: "x".into(),
        model: "gpt-4o-mini".into(),
        created: 0,
        choices: vec![],
        system_fingerprint: None,
        native: None,
    };
    let mut r = LlmResponse::new(ResponseBody::Chat(chat));
    let state = LimitState {
        limit: Some(1_000_000_000),
        remaining: Some(999_999_999),
        reset: Some(Duration::from_millis(6)),
    };
    r.meta.provider_limits = Some(ProviderLimits {
        requests: Some(state),
        tokens: Some(state),
        ..Default::default()
    });
    r
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inner = service_fn(|_r: LlmRequest| async { Ok::<_, Error>(answer()) });
    let layered = AdaptiveLimitLayer::new()
        .key("openai/gpt-4o-mini")
        .layer(inner);
    let req = LlmRequest::chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("hi")]));

    let mut g = c.benchmark_group("provider_limits");
    g.bench_function("bare", |b| {
        b.iter(|| black_box(rt.block_on(inner.oneshot(req.clone())).unwrap()));
    });
    g.bench_function("adaptive", |b| {
        b.iter(|| black_box(rt.block_on(layered.clone().oneshot(req.clone())).unwrap()));
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
