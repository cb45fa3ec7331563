//! Where a response-cache miss spends its time: the key, the lookup, the insert into a
//! full memory store, and the layer as a whole in front of a service answering at once.
//!
//! Run: `cargo bench -p llm-tower-layers --bench cache`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use llm_tower_core::{
    ChatChoice, ChatRequest, ChatResponse, Error, LlmRequest, LlmResponse, Message, RequestBody,
    ResponseBody, Usage, UsageSource,
};
use llm_tower_layers::cache::{CacheKey, CacheStore, MemoryCacheStore, ResponseCacheLayer};
use tower::{Layer, ServiceExt, service_fn};

const PROMPT: &str = "You are reviewing a pull request for a Rust service that calls language models. \
The change adds a rate limiter keyed by caller, a retry policy with jittered backoff, and a cost tracker \
with monthly budgets. Summarise the risks in three bullet points and suggest one test for each risk.";

fn answer() -> LlmResponse {
    let chat = ChatResponse::new(
        "chatcmpl-1",
        "gpt-4o-mini",
        0,
        vec![ChatChoice::new(
            0,
            Message::assistant("Fine."),
            Some("stop".into()),
        )],
    );
    let mut r = LlmResponse::new(ResponseBody::Chat(chat));
    r.usage = Some(Usage::new(90, 2, UsageSource::Provider));
    r
}

fn request(seed: i64) -> LlmRequest {
    let mut chat = ChatRequest::new(
        "gpt-4o-mini",
        vec![Message::system("Be concise."), Message::user(PROMPT)],
    );
    chat.temperature = Some(0.0);
    chat.seed = Some(seed);
    LlmRequest::chat(chat)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("cache");
    let req = request(0);
    g.bench_function("key", |b| {
        b.iter(|| black_box(CacheKey::of(&req, Some("caller"))))
    });

    let store = MemoryCacheStore::builder().max_entries(10_000).build();
    let entry = Bytes::from(vec![b'x'; 600]);
    // Fill it, so inserts evict as a busy cache does.
    rt.block_on(async {
        for i in 0..12_000 {
            let key = CacheKey::of(&request(-i), None);
            store
                .put(&key, entry.clone(), Duration::from_secs(600))
                .await
                .unwrap();
        }
    });
    let key = CacheKey::of(&req, None);
    g.bench_function("lookup_miss", |b| {
        b.iter(|| black_box(rt.block_on(store.get(&key)).unwrap()));
    });
    let mut n = 0;
    g.bench_function("insert_full_store", |b| {
        b.iter(|| {
            n += 1;
            let key = CacheKey::of(&request(n), None);
            rt.block_on(store.put(&key, entry.clone(), Duration::from_secs(600)))
                .unwrap()
        });
    });

    let inner = service_fn(|_r: LlmRequest| async { Ok::<_, Error>(answer()) });
    let cached = ResponseCacheLayer::new(MemoryCacheStore::builder().max_entries(10_000).build())
        .layer(inner);
    g.bench_function("bare", |b| {
        b.iter(|| black_box(rt.block_on(inner.oneshot(req.clone())).unwrap()));
    });
    rt.block_on(cached.clone().oneshot(req.clone())).unwrap();
    g.bench_function("layer_hit", |b| {
        b.iter(|| black_box(rt.block_on(cached.clone().oneshot(req.clone())).unwrap()));
    });
    let mut seed = 1_000_000;
    g.bench_function("layer_miss", |b| {
        b.iter(|| {
            seed += 1;
            let mut r = req.clone();
            if let RequestBody::Chat(c) = &mut r.body {
                c.seed = Some(seed);
            }
            black_box(rt.block_on(cached.clone().oneshot(r)).unwrap())
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
