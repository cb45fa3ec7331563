//! The response cache on a real Redis: entries are shared by two stores (instances),
//! carry their TTL (`PX`), are refused above the size bound; and a failing Redis is a miss.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use llm_tower_core::{
    CacheStatus, ChatChoice, ChatRequest, ChatResponse, Error, LlmRequest, LlmResponse, Message,
    ResponseBody,
};
use llm_tower_layers::cache::{CacheKey, CacheStore, ResponseCacheLayer};
use llm_tower_redis::{RedisCacheStore, RedisConfig};
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn entries_are_shared_expire_and_are_bounded() {
    let Some(url) = common::redis_or_skip("entries_are_shared_expire_and_are_bounded").await else {
        return;
    };
    let config = common::config(&url, "cache");
    let a = RedisCacheStore::new(&config).unwrap().max_entry_bytes(100);
    let b = RedisCacheStore::new(&config).unwrap();
    let key = CacheKey::from_bytes([7; 32]);
    assert_eq!(a.get(&key).await.unwrap(), None);
    assert!(
        a.put(&key, Bytes::from_static(b"entry"), Duration::from_secs(300))
            .await
            .unwrap()
    );
    assert_eq!(b.get(&key).await.unwrap().as_deref(), Some(&b"entry"[..]));
    // Redis expires it (PX).
    let mut raw = common::raw(&url).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(a.redis_key(&key))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!((290_000..=300_000).contains(&pttl), "pttl {pttl}");
    // Too large: refused, and the old entry is left as it was.
    let big = Bytes::from(vec![b'x'; 101]);
    assert!(!a.put(&key, big, Duration::from_secs(60)).await.unwrap());
    assert_eq!(b.get(&key).await.unwrap().as_deref(), Some(&b"entry"[..]));
}

#[tokio::test]
async fn two_instances_share_answers_through_the_layer() {
    let Some(url) = common::redis_or_skip("two_instances_share_answers_through_the_layer").await
    else {
        return;
    };
    let config = common::config(&url, "cache-layer");
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = {
        let calls = calls.clone();
        tower::service_fn(move |_req: LlmRequest| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                let chat = ChatResponse::new(
                    "id",
                    "m",
                    0,
                    vec![ChatChoice::new(
                        0,
                        Message::assistant("hello"),
                        Some("stop".into()),
                    )],
                );
                Ok::<_, Error>(LlmResponse::new(ResponseBody::Chat(chat)))
            }
        })
    };
    let one =
        ResponseCacheLayer::new(RedisCacheStore::new(&config).unwrap()).layer(provider.clone());
    let two = ResponseCacheLayer::new(RedisCacheStore::new(&config).unwrap()).layer(provider);
    let req = || {
        let mut c = ChatRequest::new("m", vec![Message::user("hi")]);
        c.temperature = Some(0.0);
        LlmRequest::chat(c)
    };
    let r = one.oneshot(req()).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Miss));
    let r = two.oneshot(req()).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Hit));
    assert_eq!(r.as_chat().unwrap().text(), "hello");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_miss_not_an_error() {
    // Nothing listens on a port we just closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config =
        RedisConfig::new(format!("redis://127.0.0.1:{port}/")).timeout(Duration::from_millis(500));
    let store = RedisCacheStore::new(&config).unwrap();
    assert!(store.get(&CacheKey::from_bytes([1; 32])).await.is_err());
    let svc = ResponseCacheLayer::new(store).layer(tower::service_fn(|_req: LlmRequest| async {
        let chat = ChatResponse::new("id", "m", 0, vec![]);
        Ok::<_, Error>(LlmResponse::new(ResponseBody::Chat(chat)))
    }));
    let mut c = ChatRequest::new("m", vec![Message::user("hi")]);
    c.temperature = Some(0.0);
    let r = svc.oneshot(LlmRequest::chat(c)).await.unwrap();
    assert_eq!(r.meta.cache, Some(CacheStatus::Miss));
}
