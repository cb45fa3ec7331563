#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use llm_tower_core::{
    CacheDirective, CacheStatus, ChatChoice, ChatRequest, ChatResponse, ChatStream,
    EmbeddingsRequest, EmbeddingsResponse, Error, LlmRequest, LlmResponse, ManualClock, Message,
    Money, ResponseBody, Usage, UsageSource, collect_chat_stream, response_chunks,
};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use super::*;
use crate::builder::{BoxLlmService, LlmServiceExt, ServiceBuilderExt};
use crate::cost::CostTracker;
use crate::rate_limit::{Algorithm, KeyBy, RateLimitLayer};

/// How a test provider streams.
#[derive(Clone, Copy, PartialEq)]
enum Streams {
    Whole,
    FailMidway,
}

/// A provider that counts its calls and answers `answer #n` (n from 1).
#[derive(Clone)]
struct Provider {
    calls: Arc<AtomicUsize>,
    streams: Streams,
}

impl Provider {
    fn new() -> Self {
        Provider {
            calls: Arc::default(),
            streams: Streams::Whole,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service(&self) -> BoxLlmService {
        let this = self.clone();
        tower::service_fn(move |req: LlmRequest| {
            let n = this.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let streams = this.streams;
            async move {
                let usage = Usage::new(10, 3, UsageSource::Provider);
                if let llm_tower_core::RequestBody::Embeddings(_) = req.body {
                    let e: EmbeddingsResponse = serde_json::from_value(serde_json::json!({
                        "model": "emb", "data": [{"index": 0, "embedding": [0.5, n as f64]}]
                    }))
                    .unwrap();
                    let mut r = LlmResponse::new(ResponseBody::Embeddings(e));
                    r.usage = Some(Usage::new(2, 0, UsageSource::Provider));
                    return Ok(r);
                }
                let chat = ChatResponse::new(
                    "chatcmpl-1",
                    "gpt-4o-mini",
                    1,
                    vec![ChatChoice::new(
                        0,
                        Message::assistant(format!("answer #{n}")),
                        Some("stop".into()),
                    )],
                );
                let mut r = if req.is_stream() {
                    let mut chunks: Vec<Result<_, Error>> = response_chunks(&chat, Some(usage))
                        .into_iter()
                        .map(Ok)
                        .collect();
                    if streams == Streams::FailMidway {
                        chunks.truncate(1);
                        chunks.push(Err(Error::new(
                            llm_tower_core::ErrorKind::Transport,
                            "reset",
                        )));
                    }
                    let s: ChatStream = Box::pin(futures_util::stream::iter(chunks));
                    LlmResponse::new(ResponseBody::Stream(s))
                } else {
                    let mut r = LlmResponse::new(ResponseBody::Chat(chat));
                    r.usage = Some(usage);
                    r
                };
                r.meta.provider = Some(Arc::from("mock"));
                Ok::<_, Error>(r)
            }
        })
        .boxed_llm()
    }
}

fn chat(text: &str) -> ChatRequest {
    let mut c = ChatRequest::new("gpt-4o-mini", vec![Message::user(text)]);
    c.temperature = Some(0.0);
    c
}

fn req(c: ChatRequest) -> LlmRequest {
    LlmRequest::chat(c)
}

fn layer() -> ResponseCacheLayer {
    ResponseCacheLayer::new(MemoryCacheStore::default())
}

async fn text_of(resp: LlmResponse) -> String {
    match resp.body {
        ResponseBody::Chat(c) => c.text().into_owned(),
        ResponseBody::Stream(s) => collect_chat_stream(s).await.unwrap().0.text().into_owned(),
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache_with_its_usage_at_no_cost() {
    let p = Provider::new();
    let svc = layer().layer(p.service());
    let first = svc.clone().oneshot(req(chat("hi"))).await.unwrap();
    assert_eq!(first.meta.cache, Some(CacheStatus::Miss));
    assert_eq!(text_of(first).await, "answer #1");
    let second = svc.clone().oneshot(req(chat("hi"))).await.unwrap();
    assert_eq!(second.meta.cache, Some(CacheStatus::Hit));
    assert_eq!(second.usage, Some(Usage::new(10, 3, UsageSource::Provider)));
    assert_eq!(second.cost, Some(Money::ZERO));
    assert_eq!(second.meta.provider.as_deref(), Some("mock"));
    assert_eq!(text_of(second).await, "answer #1");
    assert_eq!(p.calls(), 1);
    // Another question is a miss.
    let other = svc.clone().oneshot(req(chat("other"))).await.unwrap();
    assert_eq!(other.meta.cache, Some(CacheStatus::Miss));
    assert_eq!(p.calls(), 2);
}

#[tokio::test]
async fn a_streamed_request_is_replayed_from_a_whole_answer_and_the_other_way_round() {
    let p = Provider::new();
    let svc = layer().layer(p.service());
    svc.clone().oneshot(req(chat("a"))).await.unwrap();
    let replay = svc
        .clone()
        .oneshot(req(chat("a").streaming()))
        .await
        .unwrap();
    assert_eq!(replay.meta.cache, Some(CacheStatus::Hit));
    let cost = replay.stream_cost().unwrap();
    assert_eq!(cost.get(), Some(Money::ZERO));
    let chunks: Vec<_> = replay.into_stream().unwrap().collect().await;
    let last = chunks.last().unwrap().as_ref().unwrap();
    assert_eq!(last.usage, Some(Usage::new(10, 3, UsageSource::Provider)));
    assert_eq!(last.cost, Some(Money::ZERO));
    let s: ChatStream = Box::pin(futures_util::stream::iter(chunks));
    let (whole, _) = collect_chat_stream(s).await.unwrap();
    assert_eq!(whole.text(), "answer #1");
    assert_eq!(whole.choices[0].finish_reason.as_deref(), Some("stop"));

    // A streamed miss is stored once it has ended; a whole request then hits.
    let miss = svc
        .clone()
        .oneshot(req(chat("b").streaming()))
        .await
        .unwrap();
    assert_eq!(miss.meta.cache, Some(CacheStatus::Miss));
    assert_eq!(text_of(miss).await, "answer #2");
    let hit = svc.clone().oneshot(req(chat("b"))).await.unwrap();
    assert_eq!(hit.meta.cache, Some(CacheStatus::Hit));
    assert_eq!(hit.usage, Some(Usage::new(10, 3, UsageSource::Provider)));
    assert_eq!(text_of(hit).await, "answer #2");
    assert_eq!(p.calls(), 2);
}

#[tokio::test]
async fn a_stream_that_fails_or_is_dropped_is_not_stored() {
    let mut p = Provider::new();
    p.streams = Streams::FailMidway;
    let svc = layer().layer(p.service());
    let resp = svc
        .clone()
        .oneshot(req(chat("a").streaming()))
        .await
        .unwrap();
    let items: Vec<_> = resp.into_stream().unwrap().collect().await;
    assert!(items.last().unwrap().is_err());
    let again = svc.clone().oneshot(req(chat("a"))).await.unwrap();
    assert_eq!(again.meta.cache, Some(CacheStatus::Miss));

    let p = Provider::new();
    let svc = layer().layer(p.service());
    let resp = svc
        .clone()
        .oneshot(req(chat("b").streaming()))
        .await
        .unwrap();
    let mut s = resp.into_stream().unwrap();
    s.next().await.unwrap().unwrap();
    drop(s);
    let again = svc.clone().oneshot(req(chat("b"))).await.unwrap();
    assert_eq!(again.meta.cache, Some(CacheStatus::Miss));
    assert_eq!(p.calls(), 2);
}

#[tokio::test]
async fn no_cache_skips_the_lookup_but_stores_and_no_store_bypasses() {
    let p = Provider::new();
    let svc = layer().layer(p.service());
    svc.clone().oneshot(req(chat("a"))).await.unwrap();
    let mut fresh = req(chat("a"));
    fresh.extensions.insert(CacheDirective {
        no_cache: true,
        no_store: false,
    });
    let fresh = svc.clone().oneshot(fresh).await.unwrap();
    assert_eq!(fresh.meta.cache, Some(CacheStatus::Miss));
    assert_eq!(text_of(fresh).await, "answer #2");
    // The fresh answer replaced the old one.
    let hit = svc.clone().oneshot(req(chat("a"))).await.unwrap();
    assert_eq!(text_of(hit).await, "answer #2");

    let mut bypass = req(chat("b"));
    bypass.extensions.insert(CacheDirective::BYPASS);
    let r = svc.clone().oneshot(bypass).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Bypass));
    let r = svc.clone().oneshot(req(chat("b"))).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Miss));
    assert_eq!(p.calls(), 4);
}

#[tokio::test]
async fn sampled_requests_are_cached_only_when_opted_in() {
    for temperature in [Some(0.7), None] {
        let p = Provider::new();
        let svc = layer().layer(p.service());
        let mut c = chat("a");
        c.temperature = temperature;
        for _ in 0..2 {
            let r = svc.clone().oneshot(req(c.clone())).await.unwrap();
            assert_eq!(r.meta.cache, Some(CacheStatus::Bypass));
        }
        assert_eq!(p.calls(), 2);

        let p = Provider::new();
        let svc = layer().cache_nondeterministic(true).layer(p.service());
        svc.clone().oneshot(req(c.clone())).await.unwrap();
        let r = svc.clone().oneshot(req(c)).await.unwrap();
        assert_eq!(r.meta.cache, Some(CacheStatus::Hit));
        assert_eq!(p.calls(), 1);
    }
}

#[tokio::test]
async fn entries_are_per_caller_unless_the_scope_is_global() {
    let p = Provider::new();
    let svc = layer().layer(p.service());
    svc.clone()
        .oneshot(req(chat("a")).with_caller("alice"))
        .await
        .unwrap();
    let bob = svc
        .clone()
        .oneshot(req(chat("a")).with_caller("bob"))
        .await
        .unwrap();
    assert_eq!(bob.meta.cache, Some(CacheStatus::Miss));

    let p = Provider::new();
    let svc = layer().scope(CacheScope::Global).layer(p.service());
    svc.clone()
        .oneshot(req(chat("a")).with_caller("alice"))
        .await
        .unwrap();
    let bob = svc
        .clone()
        .oneshot(req(chat("a")).with_caller("bob"))
        .await
        .unwrap();
    assert_eq!(bob.meta.cache, Some(CacheStatus::Hit));
}

#[tokio::test]
async fn the_bypass_filter_keeps_requests_away() {
    let p = Provider::new();
    let svc = layer()
        .bypass_if(|r: &LlmRequest| r.model() == "gpt-4o-mini")
        .layer(p.service());
    svc.clone().oneshot(req(chat("a"))).await.unwrap();
    let r = svc.clone().oneshot(req(chat("a"))).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Bypass));
    assert_eq!(p.calls(), 2);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let clock = ManualClock::new();
    let store = MemoryCacheStore::builder()
        .clock(Arc::new(clock.clone()))
        .build();
    let p = Provider::new();
    let svc = ResponseCacheLayer::new(store)
        .ttl(Duration::from_secs(60))
        .layer(p.service());
    svc.clone().oneshot(req(chat("a"))).await.unwrap();
    clock.advance(Duration::from_secs(59));
    let r = svc.clone().oneshot(req(chat("a"))).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Hit));
    clock.advance(Duration::from_secs(1));
    let r = svc.clone().oneshot(req(chat("a"))).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Miss));
    assert_eq!(p.calls(), 2);
}

#[tokio::test]
async fn embeddings_are_cached() {
    let p = Provider::new();
    let svc = layer().layer(p.service());
    let e = || {
        LlmRequest::embeddings(EmbeddingsRequest {
            model: "emb".into(),
            input: llm_tower_core::EmbeddingInput::One("x".into()),
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Default::default(),
        })
    };
    let first = svc.clone().oneshot(e()).await.unwrap();
    let second = svc.clone().oneshot(e()).await.unwrap();
    assert_eq!(second.meta.cache, Some(CacheStatus::Hit));
    match (first.body, second.body) {
        (ResponseBody::Embeddings(a), ResponseBody::Embeddings(b)) => assert_eq!(a, b),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.calls(), 1);
}

#[derive(Debug)]
struct Broken;

impl CacheStore for Broken {
    fn get<'a>(&'a self, _key: &'a CacheKey) -> crate::rate_limit::StoreFuture<'a, Option<Bytes>> {
        Box::pin(async { Err(Error::store("down")) })
    }

    fn put<'a>(
        &'a self,
        _key: &'a CacheKey,
        _entry: Bytes,
        _ttl: Duration,
    ) -> crate::rate_limit::StoreFuture<'a, bool> {
        Box::pin(async { Err(Error::store("down")) })
    }

    fn kind(&self) -> &'static str {
        "broken"
    }
}

#[tokio::test]
async fn a_failing_store_never_fails_a_request() {
    let p = Provider::new();
    let svc = ResponseCacheLayer::new(Broken).layer(p.service());
    for _ in 0..2 {
        let r = svc.clone().oneshot(req(chat("a"))).await.unwrap();
        assert_eq!(r.meta.cache, Some(CacheStatus::Miss));
    }
    assert_eq!(p.calls(), 2);
}

#[tokio::test]
async fn entries_above_the_bound_are_not_stored() {
    let p = Provider::new();
    let svc = layer().max_entry_bytes(10).layer(p.service());
    svc.clone().oneshot(req(chat("a"))).await.unwrap();
    svc.clone()
        .oneshot(req(chat("a").streaming()))
        .await
        .unwrap();
    let r = svc.clone().oneshot(req(chat("a"))).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Miss));
    assert_eq!(p.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_hit_counts_as_a_request_but_spends_no_tokens_and_no_budget() {
    let p = Provider::new();
    let requests =
        RateLimitLayer::new(Algorithm::sliding_window(3, Duration::from_secs(60)).unwrap())
            .name("requests")
            .key(KeyBy::Caller);
    // Room for one request's estimate (prompt + 100 output tokens) only.
    let tokens =
        RateLimitLayer::new(Algorithm::sliding_window(150, Duration::from_secs(60)).unwrap())
            .name("tokens")
            .by_tokens()
            .key(KeyBy::Caller);
    let tracker = CostTracker::builder().build().unwrap();
    let admit = ServiceBuilder::new()
        .llm_rate_limit(requests.clone())
        .llm_rate_limit(tokens.clone())
        .service(HitAdmission)
        .boxed_llm();
    let svc = ServiceBuilder::new()
        .count_tokens()
        .llm_cache(layer().admit_hits(admit).tracker(tracker.clone()))
        .llm_rate_limit(requests)
        .llm_rate_limit(tokens)
        .track_cost(tracker.clone())
        .service(p.service());
    let ask = |text: &str| req(chat(text).max_tokens(100)).with_caller("c");
    svc.clone().oneshot(ask("a")).await.unwrap();
    // The token limit is spent: another question is refused...
    let e = svc.clone().oneshot(ask("b")).await.unwrap_err();
    assert_eq!(e.kind(), llm_tower_core::ErrorKind::RateLimited);
    // ...but a hit passes (no tokens), and counts as the 3rd request...
    let hit = svc.clone().oneshot(ask("a")).await.unwrap();
    assert_eq!(hit.meta.cache, Some(CacheStatus::Hit));
    // ...so the 4th is refused by the request limit, hit or not.
    let e = svc.clone().oneshot(ask("a")).await.unwrap_err();
    assert_eq!(e.kind(), llm_tower_core::ErrorKind::RateLimited);
    assert_eq!(p.calls(), 1);
    let snap = tracker.snapshot();
    assert_eq!(snap.total.cache_hits, 1);
    // The first call and the hit; refusals by rate limits before the cost layer are not
    // in the analytics.
    assert_eq!(snap.total.requests, 2);
    assert_eq!(snap.by_caller["c"].cache_hits, 1);
    let first_cost = snap.total.cost;
    assert_eq!(tracker.snapshot().total.cost, first_cost);
}

#[tokio::test]
async fn clones_share_one_cache_and_poll_ready_passes_through() {
    let p = Provider::new();
    let mut svc = layer().layer(p.service());
    std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    svc.call(req(chat("a"))).await.unwrap();
    let r = svc.clone().oneshot(req(chat("a"))).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Hit));
}
