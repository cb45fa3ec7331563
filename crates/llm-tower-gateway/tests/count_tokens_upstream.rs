//! `POST /v1/messages/count_tokens` answered by Anthropic's own endpoint for a provider
//! configured with `"count_tokens": "provider"` (a local server that speaks it), by the
//! gateway's tokenizer otherwise; the Anthropic Python SDK's `count_tokens` over both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::Gateway;
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::{Value, json};

const KEY: &str = "sk-ant-count-SECRET-42";
const COUNTED: u64 = 4321;

type Seen = Arc<Mutex<Vec<(http::HeaderMap, Value)>>>;

async fn upstream() -> (SocketAddr, Seen) {
    async fn count(
        State(seen): State<Seen>,
        headers: http::HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        let ok = headers.get("x-api-key").is_some_and(|k| k == KEY);
        seen.lock().unwrap().push((headers, body.clone()));
        if !ok {
            return (
                http::StatusCode::UNAUTHORIZED,
                Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
            )
                .into_response();
        }
        if body["model"] == "claude-broken" {
            return (
                http::StatusCode::BAD_REQUEST,
                Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "messages: bad"}})),
            )
                .into_response();
        }
        Json(json!({"input_tokens": COUNTED})).into_response()
    }
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/v1/messages/count_tokens", post(count))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

async fn gateway(up: SocketAddr) -> Gateway {
    let price = json!({"input": "3.00", "output": "15.00"});
    let models = json!({"claude-sonnet-4-5": {"price": price}, "claude-broken": {"price": price}});
    let config = json!({
        "providers": {
            "ant": {"type": "anthropic", "api_key": KEY, "base_url": format!("http://{up}"),
                    "count_tokens": "provider", "models": models},
            "local": {"type": "anthropic", "api_key": KEY, "base_url": format!("http://{up}"),
                      "models": {"claude-haiku-4-5": {"price": price}}}
        },
        "routes": {"smart": ["ant/claude-sonnet-4-5", "local/claude-haiku-4-5"]}
    });
    let built = build(&Config::from_str(&config.to_string()).unwrap())
        .await
        .unwrap();
    Gateway::start(AppState::from_built(&built)).await
}

fn body(model: &str) -> Value {
    json!({
        "model": model,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "How many tokens is this?"}],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    })
}

#[tokio::test]
async fn count_tokens_asks_the_provider_when_configured() {
    let (up, seen) = upstream().await;
    let gw = gateway(up).await;
    let headers = [("anthropic-beta", "token-counting-2024-11-01")];
    for model in ["ant/claude-sonnet-4-5", "smart"] {
        let r = gw
            .post("/v1/messages/count_tokens", &headers, body(model))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json(), json!({"input_tokens": COUNTED}));
        assert_eq!(r.header("x-llm-tower-token-count"), Some("provider"));
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let (h, sent) = &seen[0];
    // The upstream model name, what count_tokens takes, nothing else.
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["thinking"]["budget_tokens"], 2048);
    assert_eq!(sent["tools"][0]["name"], "f");
    assert!(sent.get("max_tokens").is_none(), "{sent}");
    assert!(sent.get("stream").is_none(), "{sent}");
    assert_eq!(
        h.get("anthropic-beta").unwrap(),
        "token-counting-2024-11-01",
        "the client's beta header is forwarded"
    );
}

#[tokio::test]
async fn other_providers_count_locally_and_upstream_errors_are_anthropic_shaped() {
    let (up, seen) = upstream().await;
    let gw = gateway(up).await;
    let r = gw
        .post(
            "/v1/messages/count_tokens",
            &[],
            body("local/claude-haiku-4-5"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-llm-tower-token-count"), Some("estimate"));
    let n = r.json()["input_tokens"].as_u64().unwrap();
    assert!(n > 0 && n != COUNTED, "{n}");
    assert!(seen.lock().unwrap().is_empty());

    let r = gw
        .post("/v1/messages/count_tokens", &[], body("ant/claude-broken"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(!r.text().contains(KEY));
}

#[tokio::test]
async fn the_anthropic_sdk_counts_through_the_provider() {
    if !common::python_sdk("anthropic") {
        return;
    }
    let (up, _seen) = upstream().await;
    let gw = gateway(up).await;
    let script = r#"
import os, anthropic
c = anthropic.Anthropic(base_url=os.environ["BASE"], api_key="any", max_retries=0)
r = c.messages.count_tokens(model="smart", messages=[{"role": "user", "content": "hi"}])
print(r.input_tokens)
"#;
    let out = tokio::process::Command::new("python3")
        .args(["-c", script])
        .env("BASE", format!("http://{}", gw.addr))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), COUNTED.to_string());
}
