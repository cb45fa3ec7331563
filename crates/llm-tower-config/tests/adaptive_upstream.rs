//! Adaptive provider limits, whole stack over real local sockets: a config-built stack in
//! front of an OpenAI-format upstream on `127.0.0.1:0` that enforces its own rate limit.
//!
//! The upstream admits `LIMIT` requests per `WINDOW` (a fixed window starting with the
//! first request), reports `x-ratelimit-{limit,remaining,reset}-requests` on every answer
//! (so the `LIMIT`-th answer says `remaining: 0, reset: 2s`), and answers 429 to anything
//! that arrives while the window is spent. Time is tokio's, paused: the client stack and
//! the upstream read the same clock, and the 2 s resets pass without real sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use llm_tower_config::{BuildOptions, Config, build_with};
use llm_tower_core::{ChatRequest, LlmRequest, Message};
use serde_json::json;
use tokio::time::Instant;
use tower::ServiceExt;

const LIMIT: u32 = 3;
const WINDOW: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Upstream {
    window_start: Option<Instant>,
    used: u32,
    /// Requests received, and those that arrived while the window was spent.
    received: u32,
    refused: u32,
}

async fn chat(State(up): State<Arc<Mutex<Upstream>>>) -> Response {
    let now = Instant::now();
    let mut u = up.lock().unwrap();
    u.received += 1;
    let start = match u.window_start {
        Some(s) if now < s + WINDOW => s,
        _ => {
            u.used = 0;
            u.window_start = Some(now);
            now
        }
    };
    let reset = (start + WINDOW).saturating_duration_since(now);
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        headers.insert(k, HeaderValue::from_str(&v).unwrap());
    };
    set("x-ratelimit-limit-requests", LIMIT.to_string());
    set(
        "x-ratelimit-reset-requests",
        format!("{}ms", reset.as_millis()),
    );
    if u.used >= LIMIT {
        u.refused += 1;
        set("x-ratelimit-remaining-requests", "0".to_owned());
        set("retry-after-ms", reset.as_millis().to_string());
        let body = json!({"error": {"message": "Rate limit reached for requests",
            "type": "requests", "code": "rate_limit_exceeded"}});
        return (StatusCode::TOO_MANY_REQUESTS, headers, axum::Json(body)).into_response();
    }
    u.used += 1;
    set(
        "x-ratelimit-remaining-requests",
        (LIMIT - u.used).to_string(),
    );
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    });
    (headers, axum::Json(body)).into_response()
}

async fn upstream() -> (String, Arc<Mutex<Upstream>>) {
    let state = Arc::new(Mutex::new(Upstream::default()));
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), state)
}

fn config(base_url: &str, adaptive: serde_json::Value) -> Config {
    json!({
        "providers": {
            "up": {
                "type": "openai",
                "api_key": "sk-test-key",
                "base_url": base_url,
                "adaptive_limits": adaptive,
                "models": { "gpt-4o-mini": {} }
            }
        },
        "retry": { "max_retries": 0 }
    })
    .to_string()
    .parse()
    .unwrap()
}

fn request() -> LlmRequest {
    LlmRequest::chat(ChatRequest::new("up/gpt-4o-mini", vec![Message::user("hello")]).max_tokens(8))
}

/// `clients` concurrent clients, each sending `each` requests one after the other.
async fn run(stack: &llm_tower_config::BuiltStack, clients: usize, each: usize) -> (usize, usize) {
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let svc = stack.service();
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..each {
                    if svc.clone().oneshot(request()).await.is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    (ok, clients * each)
}

#[tokio::test(start_paused = true)]
async fn concurrent_clients_all_succeed_and_nothing_is_sent_while_the_window_is_spent() {
    let (url, up) = upstream().await;
    let stack = build_with(&config(&url, json!(true)), BuildOptions::new())
        .await
        .unwrap();
    let t0 = Instant::now();
    let (ok, total) = run(&stack, 8, 3).await;
    let u = up.lock().unwrap();
    assert_eq!(ok, total, "every client succeeds");
    assert_eq!(
        u.refused, 0,
        "no request arrived while the upstream's window was spent"
    );
    assert_eq!(u.received, 24, "nothing retried, nothing lost");
    // 24 requests at 3 per 2 s window: the clients waited for 7 resets.
    assert!(t0.elapsed() >= 7 * WINDOW, "{:?}", t0.elapsed());
}

#[tokio::test(start_paused = true)]
async fn without_adaptive_limits_the_same_clients_collect_429s() {
    let (url, up) = upstream().await;
    let stack = build_with(&config(&url, json!(false)), BuildOptions::new())
        .await
        .unwrap();
    let (ok, total) = run(&stack, 8, 3).await;
    let u = up.lock().unwrap();
    assert!(
        u.refused > 0,
        "the control: the upstream does refuse an overrun"
    );
    assert!(ok < total);
}

#[tokio::test(start_paused = true)]
async fn reject_mode_refuses_without_sending_and_gives_the_reset() {
    let (url, up) = upstream().await;
    let stack = build_with(
        &config(&url, json!({"mode": "reject"})),
        BuildOptions::new(),
    )
    .await
    .unwrap();
    for _ in 0..LIMIT {
        stack.service().oneshot(request()).await.unwrap();
    }
    let err = stack.service().oneshot(request()).await.unwrap_err();
    assert_eq!(err.kind(), llm_tower_core::ErrorKind::RateLimited);
    assert_eq!(
        err.code(),
        Some(llm_tower_layers::provider_limits::REFUSAL_CODE)
    );
    assert_eq!(err.retry_after(), Some(WINDOW));
    let u = up.lock().unwrap();
    assert_eq!((u.received, u.refused), (LIMIT, 0));
}
