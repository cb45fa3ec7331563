//! Stored Responses API answers in Redis: two gateway instances sharing one Redis see each
//! other's stored responses (`GET /v1/responses/{id}`, `previous_response_id`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Gateway;
use http::StatusCode;
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::json;

/// `REDIS_URL`, or `None` (a skip) when no Redis is configured and none is required.
fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(
                std::env::var_os("LLM_TOWER_REQUIRE_REDIS").is_none(),
                "REDIS_URL is required here"
            );
            println!("note: skipped: set REDIS_URL to run the Redis response store test");
            None
        }
    }
}

async fn instance(url: &str, prefix: &str) -> Gateway {
    let config = json!({
        "providers": { "mock": { "type": "mock", "models": { "gpt-4o-mini": {} } } },
        "store": { "type": "redis", "url": url, "prefix": prefix },
        "gateway": { "keys": [
            { "name": "alice", "key_sha256": "702f5f2b3f1cddb3f9839ecbb1851fb9d13f3ad0e68321eeec56e6597cf683c8" },
            { "name": "bob", "key_sha256": "c538804dbe223a8c059e8fec5956f575dffd6d0af9e37a8dc41cd0913a3bfa87" }
        ] }
    });
    let built = build(&Config::from_str(&config.to_string()).unwrap())
        .await
        .unwrap();
    Gateway::start(AppState::from_built(&built)).await
}

#[tokio::test]
async fn two_instances_share_stored_responses_through_redis() {
    let Some(url) = redis_url() else {
        return;
    };
    // A fresh prefix per run: nothing left from an earlier run can answer.
    let prefix = format!(
        "llm-tower-test-responses-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let a = instance(&url, &prefix).await;
    let b = instance(&url, &prefix).await;
    let alice = [("authorization", "Bearer sk-alice-limited")];
    let bob = [("authorization", "Bearer sk-bob-broke")];

    let r = a
        .post(
            "/v1/responses",
            &alice,
            json!({"model": "mock/gpt-4o-mini", "input": "Name a tower.", "store": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();

    // The other instance reads it back, for its owner only.
    let got = b.get(&format!("/v1/responses/{id}"), &alice).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.json()["id"], id.as_str());
    assert_eq!(got.json()["output"], r.json()["output"]);
    let other = b.get(&format!("/v1/responses/{id}"), &bob).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text());

    // And continues the conversation from it.
    let next = b
        .post(
            "/v1/responses",
            &alice,
            json!({"model": "mock/gpt-4o-mini", "input": "And another?", "previous_response_id": id}),
        )
        .await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.text());
    assert_eq!(next.json()["previous_response_id"], id.as_str());
}
