//! The adaptive provider limits' blocks on Redis: the store contract, two instances
//! sharing a block, and the failure policies.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::{
    ChatRequest, ChatResponse, Error, ErrorKind, LimitState, LlmRequest, LlmResponse, Message,
    ProviderLimits, ResponseBody,
};
use llm_tower_layers::provider_limits::{
    AdaptiveLimitLayer, AdaptiveLimitStore, AdaptiveMode, REFUSAL_CODE, conformance,
};
use llm_tower_redis::{FailurePolicy, RedisAdaptiveStore, RedisConfig};
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn redis_adaptive_store_passes_the_conformance_checks() {
    let Some(url) =
        common::redis_or_skip("redis_adaptive_store_passes_the_conformance_checks").await
    else {
        return;
    };
    let store = RedisAdaptiveStore::new(&common::config(&url, "al-conf")).unwrap();
    conformance(&store, "openai/gpt-4o").await;
}

#[tokio::test]
async fn a_block_is_one_key_with_the_blocks_expiry() {
    let Some(url) = common::redis_or_skip("a_block_is_one_key_with_the_blocks_expiry").await else {
        return;
    };
    let config = common::config(&url, "al-key");
    let store = RedisAdaptiveStore::new(&config).unwrap();
    store
        .block("openai/gpt-4o", Duration::from_micros(1_500_001))
        .await
        .unwrap();
    let key = format!("{}:v1:{{al:openai/gpt-4o}}:blocked", config.prefix);
    let mut raw = common::raw(&url).await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        (1400..=1501).contains(&pttl),
        "rounded up to the millisecond: {pttl}"
    );
}

fn limits(remaining: u64, reset: Duration) -> ProviderLimits {
    ProviderLimits {
        requests: Some(LimitState {
            limit: Some(5),
            remaining: Some(remaining),
            reset: Some(reset),
        }),
        ..Default::default()
    }
}

fn answer(l: ProviderLimits) -> LlmResponse {
    let chat = ChatResponse {
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
    r.meta.provider_limits = Some(l);
    r
}

fn req() -> LlmRequest {
    LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]))
}

#[tokio::test]
async fn an_instance_holds_back_what_another_learned_from_the_provider() {
    let Some(url) =
        common::redis_or_skip("an_instance_holds_back_what_another_learned_from_the_provider")
            .await
    else {
        return;
    };
    let config = common::config(&url, "al-share");
    // Two instances: two stores, two connections, one prefix.
    let instance = || {
        AdaptiveLimitLayer::new()
            .key("openai/gpt-4o")
            .mode(AdaptiveMode::Reject)
            .store(Arc::new(RedisAdaptiveStore::new(&config).unwrap()))
    };
    let a = instance().layer(tower::service_fn(|_r: LlmRequest| async {
        Ok::<_, Error>(answer(limits(0, Duration::from_secs(20))))
    }));
    let b = instance().layer(tower::service_fn(|_r: LlmRequest| async {
        Err::<LlmResponse, _>(Error::internal("instance b must not send"))
    }));
    a.oneshot(req()).await.unwrap();
    let err = b.oneshot(req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.code(), Some(REFUSAL_CODE));
    let ra = err.retry_after().unwrap();
    assert!(
        ra > Duration::from_secs(15) && ra <= Duration::from_secs(20),
        "{ra:?}"
    );
}

/// A port nothing listens on.
fn unreachable(policy: FailurePolicy) -> RedisAdaptiveStore {
    RedisAdaptiveStore::new(
        &RedisConfig::new("redis://127.0.0.1:1/")
            .prefix(common::unique_prefix("al-down"))
            .failure_policy(policy)
            .timeout(Duration::from_millis(500)),
    )
    .unwrap()
}

#[tokio::test]
async fn without_redis_fail_closed_refuses_and_fail_open_local_keeps_blocks_here() {
    let closed = unreachable(FailurePolicy::FailClosed);
    assert_eq!(
        closed.blocked_for("p/m").await.unwrap_err().kind(),
        ErrorKind::Store
    );
    let open = unreachable(FailurePolicy::FailOpenLocal);
    assert_eq!(open.blocked_for("p/m").await.unwrap(), None);
    open.block("p/m", Duration::from_secs(30)).await.unwrap();
    let left = open.blocked_for("p/m").await.unwrap().unwrap();
    assert!(left > Duration::from_secs(25), "{left:?}");
}
