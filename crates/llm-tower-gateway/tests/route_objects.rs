//! Route objects through the gateway over real local upstreams (OpenAI wire format):
//! weighted and p2c balance, a group whose failing member's circuit opens, fallback after
//! the group, hedging a held upstream, and prompt-cache affinity measured by an upstream
//! that reports cached tokens only for a system prompt it has seen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::Gateway;
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::{Value, json};
use tokio::sync::watch;

/// A local OpenAI: counts requests, may fail (503), may hold every request until
/// released, and reports cached prompt tokens for a system prompt it has seen before.
struct Upstream {
    name: String,
    calls: AtomicU64,
    fail: AtomicBool,
    hold: AtomicBool,
    /// Held requests wait until this is true.
    released: watch::Sender<bool>,
    seen: Mutex<HashSet<String>>,
}

impl Upstream {
    fn release(&self) {
        self.hold.store(false, Ordering::SeqCst);
        self.released.send_replace(true);
    }
}

async fn chat(State(up): State<Arc<Upstream>>, Json(body): Json<Value>) -> Response {
    up.calls.fetch_add(1, Ordering::SeqCst);
    if up.fail.load(Ordering::SeqCst) {
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {"message": "overloaded", "type": "server_error"}})),
        )
            .into_response();
    }
    if up.hold.load(Ordering::SeqCst) {
        let mut rx = up.released.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                break;
            }
        }
    }
    let system = body["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let cached = if up.seen.lock().unwrap().insert(system) {
        0
    } else {
        1024
    };
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": up.name}}],
        "usage": {"prompt_tokens": 1100, "completion_tokens": 2, "total_tokens": 1102,
                  "prompt_tokens_details": {"cached_tokens": cached}}
    }))
    .into_response()
}

async fn upstream(name: &str) -> (SocketAddr, Arc<Upstream>) {
    let up = Arc::new(Upstream {
        name: name.to_owned(),
        calls: AtomicU64::new(0),
        fail: AtomicBool::new(false),
        hold: AtomicBool::new(false),
        released: watch::Sender::new(false),
        seen: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, up)
}

async fn gateway(ups: &[(&str, SocketAddr)], routes: Value) -> Gateway {
    let mut providers = serde_json::Map::new();
    for (name, addr) in ups {
        providers.insert(
            (*name).to_owned(),
            json!({"type": "openai", "api_key": "sk-test", "base_url": format!("http://{addr}/v1"),
                   "models": {"m": {"price": {"input": "1.00", "output": "2.00"}, "tokenizer": "o200k_base"}}}),
        );
    }
    let config = json!({
        "providers": providers,
        "routes": routes,
        "retry": {"max_retries": 0},
        "circuit_breaker": {"failure_threshold": 2, "cooldown": "1h"}
    });
    let built = build(&Config::from_str(&config.to_string()).unwrap())
        .await
        .unwrap();
    Gateway::start(AppState::from_built(&built)).await
}

fn body(system: &str) -> Value {
    json!({"model": "pool", "messages": [
        {"role": "system", "content": system},
        {"role": "user", "content": "hi"}
    ]})
}

async fn ask(gw: &Gateway, system: &str) -> Value {
    let r = gw.post("/v1/chat/completions", &[], body(system)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn weighted_balance_follows_the_weights() {
    let (a, ua) = upstream("a").await;
    let (b, ub) = upstream("b").await;
    let gw = gateway(
        &[("a", a), ("b", b)],
        json!({"pool": {"balance": "weighted",
                        "targets": ["a/m", {"model": "b/m", "weight": 3}]}}),
    )
    .await;
    for _ in 0..200 {
        ask(&gw, "s").await;
    }
    let (na, nb) = (
        ua.calls.load(Ordering::SeqCst),
        ub.calls.load(Ordering::SeqCst),
    );
    assert_eq!(na + nb, 200);
    assert!(
        (25..=75).contains(&na),
        "a {na}, b {nb} (expected about 50/150)"
    );
}

#[tokio::test]
async fn p2c_avoids_a_target_that_holds_requests() {
    let (a, ua) = upstream("a").await;
    let (b, ub) = upstream("b").await;
    ua.hold.store(true, Ordering::SeqCst);
    let gw = Arc::new(
        gateway(
            &[("a", a), ("b", b)],
            json!({"pool": {"targets": ["a/m", "b/m"]}}),
        )
        .await,
    );
    // Warm both estimates: one answered request each.
    ua.hold.store(false, Ordering::SeqCst);
    for _ in 0..10 {
        ask(&gw, "s").await;
    }
    ua.hold.store(true, Ordering::SeqCst);
    let before_a = ua.calls.load(Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move { ask(&gw, "s").await }));
        tokio::task::yield_now().await;
    }
    // Requests queue on `a` (in flight, unanswered): p2c sends the rest to `b`.
    while ub.calls.load(Ordering::SeqCst) + ua.calls.load(Ordering::SeqCst) < 40 {
        tokio::task::yield_now().await;
    }
    let held = ua.calls.load(Ordering::SeqCst) - before_a;
    assert!(held <= 5, "{held} requests went to the held target");
    ua.release();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_failing_member_is_left_out_once_its_circuit_opens_then_the_fallback_serves() {
    let (a, ua) = upstream("a").await;
    let (b, ub) = upstream("b").await;
    let (c, uc) = upstream("c").await;
    ua.fail.store(true, Ordering::SeqCst);
    let gw = gateway(
        &[("a", a), ("b", b), ("c", c)],
        json!({"pool": {"balance": "weighted", "targets": ["a/m", "b/m"], "fallback": ["c/m"]}}),
    )
    .await;
    // Every client succeeds: a failure of `a` moves the request to `b`.
    for _ in 0..40 {
        assert_eq!(ask(&gw, "s").await["choices"][0]["message"]["content"], "b");
    }
    // Two failures open `a`'s circuit; after that it is not drawn.
    assert!(
        ua.calls.load(Ordering::SeqCst) <= 2,
        "{}",
        ua.calls.load(Ordering::SeqCst)
    );
    // The whole group down: the fallback answers.
    ub.fail.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(ask(&gw, "s").await["choices"][0]["message"]["content"], "c");
    }
    assert_eq!(uc.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_held_request_is_hedged_unless_marked() {
    let (a, ua) = upstream("a").await;
    let (b, ub) = upstream("b").await;
    // `a` holds everything; the group's order is decided by weight 1000:1.
    ua.hold.store(true, Ordering::SeqCst);
    let gw = gateway(
        &[("a", a), ("b", b)],
        json!({"pool": {"balance": "weighted",
                        "targets": [{"model": "a/m", "weight": 1000}, "b/m"],
                        "hedge": {"after": "20ms"}}}),
    )
    .await;
    let mut answered_by_b = 0;
    for _ in 0..5 {
        if ask(&gw, "s").await["choices"][0]["message"]["content"] == "b" {
            answered_by_b += 1;
        }
    }
    assert_eq!(answered_by_b, 5, "every held request was hedged to b");
    assert!(ub.calls.load(Ordering::SeqCst) >= 5);
    // Marked as not to be sent twice: it waits for `a`.
    let before = ua.calls.load(Ordering::SeqCst) + ub.calls.load(Ordering::SeqCst);
    let gw = Arc::new(gw);
    let g = gw.clone();
    let marked = tokio::spawn(async move {
        let r = g
            .post(
                "/v1/chat/completions",
                &[("x-llm-tower-hedge", "off")],
                body("s"),
            )
            .await;
        r.json()
    });
    while ua.calls.load(Ordering::SeqCst) + ub.calls.load(Ordering::SeqCst) == before {
        tokio::task::yield_now().await;
    }
    ua.release();
    let v = marked.await.unwrap();
    let after = ua.calls.load(Ordering::SeqCst) + ub.calls.load(Ordering::SeqCst);
    assert_eq!(after - before, 1, "sent once: {v}");
}

#[tokio::test]
async fn prompt_prefix_affinity_keeps_provider_caches_warm() {
    let mut ups = Vec::new();
    let mut handles = Vec::new();
    for name in ["a", "b", "c"] {
        let (addr, up) = upstream(name).await;
        ups.push((name, addr));
        handles.push(up);
    }
    let gw = gateway(
        &ups,
        json!({"pool": {"targets": ["a/m", "b/m", "c/m"], "affinity": "prompt_prefix",
                        "affinity_tokens": 64}}),
    )
    .await;
    let mut cached = 0;
    for i in 0..30 {
        let system = format!(
            "You are assistant number {}. {}",
            i % 5,
            "Be kind. ".repeat(20)
        );
        let v = ask(&gw, &system).await;
        if v["usage"]["prompt_tokens_details"]["cached_tokens"] == 1024 {
            cached += 1;
        }
    }
    // Five prefixes, each seen cold once: every other request hits a warm cache.
    assert_eq!(cached, 25);
}
