//! The response cache through the gateway, over a counting upstream on a real socket:
//! hits with `x-llm-tower-cache`, streams replayed as SSE, `Cache-Control` honoured in the
//! three formats, sampled requests left alone, and hits that spend no budget and no token
//! quota but count as requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::response::IntoResponse;
use common::Gateway;
use http::StatusCode;
use llm_tower_config::{BuiltStack, Config, build};
use llm_tower_gateway::AppState;
use serde_json::{Value, json};

/// An OpenAI-compatible upstream that answers `answer #n` to its n-th request (JSON, or
/// SSE with usage when asked to stream).
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: Bytes| {
            let c = c.clone();
            async move {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                let req: Value = serde_json::from_slice(&body).unwrap();
                let text = format!("answer #{n}");
                let usage = json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13});
                if req["stream"] == true {
                    let chunk = |choices: Value, usage: Value| {
                        let mut c = json!({"id": "c-1", "object": "chat.completion.chunk",
                            "created": 1, "model": "m", "choices": choices});
                        if !usage.is_null() {
                            c["usage"] = usage;
                        }
                        format!("data: {c}\n\n")
                    };
                    let body = [
                        chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": null}]), Value::Null),
                        chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]), Value::Null),
                        chunk(json!([]), usage),
                        "data: [DONE]\n\n".to_owned(),
                    ]
                    .concat();
                    ([("content-type", "text/event-stream")], body).into_response()
                } else {
                    axum::Json(json!({
                        "id": "c-1", "object": "chat.completion", "created": 1, "model": "m",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": usage
                    }))
                    .into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, calls)
}

fn config(upstream: SocketAddr, extra: Value) -> Value {
    let mut c = json!({
        "providers": {
            "up": {
                "type": "openai_compatible",
                "base_url": format!("http://{upstream}/v1"),
                "models": { "m": { "price": { "input": "1.00", "output": "2.00" } } }
            }
        },
        "retry": { "max_retries": 0 },
        "cache": { "ttl": "10m" }
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn gateway(config: &Value) -> (Gateway, BuiltStack) {
    let config: Config = config.to_string().parse().unwrap();
    let built = build(&config).await.unwrap();
    let gw = Gateway::start(AppState::from_built(&built)).await;
    (gw, built)
}

fn chat(text: &str) -> Value {
    json!({"model": "m", "temperature": 0, "max_tokens": 100,
           "messages": [{"role": "user", "content": text}]})
}

fn content(r: &common::Reply) -> String {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

const PATH: &str = "/v1/chat/completions";

#[tokio::test]
async fn the_same_request_twice_is_a_hit_with_the_same_content_and_one_upstream_call() {
    let (up, calls) = upstream().await;
    let (gw, built) = gateway(&config(up, json!({}))).await;
    let first = gw.post(PATH, &[], chat("hi")).await;
    assert_eq!(first.header("x-llm-tower-cache"), Some("miss"));
    let second = gw.post(PATH, &[], chat("hi")).await;
    assert_eq!(second.header("x-llm-tower-cache"), Some("hit"));
    assert_eq!(content(&second), content(&first));
    assert_eq!(content(&second), "answer #1");
    assert_eq!(second.json()["usage"]["total_tokens"], 13);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Reported as cached in the analytics: two requests, one hit, the cost of one call.
    let snap = built.tracker().snapshot();
    assert_eq!(snap.total.requests, 2);
    assert_eq!(snap.total.cache_hits, 1);
    assert_eq!(snap.total.prompt_tokens, 10);
    let usage = gw.get("/v1/usage", &[]).await.json();
    assert_eq!(usage["total"]["cache_hits"], 1, "{usage}");
}

#[tokio::test]
async fn a_streamed_request_after_a_whole_one_is_replayed_as_a_valid_sse_stream() {
    let (up, calls) = upstream().await;
    let (gw, _built) = gateway(&config(up, json!({}))).await;
    gw.post(PATH, &[], chat("hi")).await;
    let mut body = chat("hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = gw.post(PATH, &[], body.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-llm-tower-cache"), Some("hit"));
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.sse_events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "answer #1");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 13);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A streamed miss is stored when it ends, and answers a whole request after.
    let mut other = chat("other");
    other["stream"] = json!(true);
    let r = gw.post(PATH, &[], other).await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("miss"));
    r.sse_events();
    let r = gw.post(PATH, &[], chat("other")).await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("hit"));
    assert_eq!(content(&r), "answer #2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_cache_forces_a_miss_and_no_store_is_not_stored() {
    let (up, calls) = upstream().await;
    let (gw, _built) = gateway(&config(up, json!({}))).await;
    gw.post(PATH, &[], chat("hi")).await;
    let r = gw
        .post(PATH, &[("cache-control", "no-cache")], chat("hi"))
        .await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("miss"));
    assert_eq!(content(&r), "answer #2");
    // The fresh answer was stored.
    let r = gw.post(PATH, &[], chat("hi")).await;
    assert_eq!(content(&r), "answer #2");
    assert_eq!(r.header("x-llm-tower-cache"), Some("hit"));

    let r = gw
        .post(PATH, &[("cache-control", "no-store")], chat("new"))
        .await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("bypass"));
    assert_eq!(content(&r), "answer #3");
    let r = gw.post(PATH, &[], chat("new")).await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("miss"));
    assert_eq!(content(&r), "answer #4");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_sampled_request_is_not_cached_by_default() {
    let (up, calls) = upstream().await;
    let (gw, _built) = gateway(&config(up, json!({}))).await;
    for warm in [0.7, 0.7] {
        let mut body = chat("hi");
        body["temperature"] = json!(warm);
        let r = gw.post(PATH, &[], body).await;
        assert_eq!(r.header("x-llm-tower-cache"), Some("bypass"));
    }
    let mut body = chat("hi");
    body.as_object_mut().unwrap().remove("temperature");
    let r = gw.post(PATH, &[], body).await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("bypass"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Opted in: cached.
    let (up, calls) = upstream().await;
    let (gw, _built) = gateway(&config(up, json!({"cache": {"nondeterministic": true}}))).await;
    let mut body = chat("hi");
    body["temperature"] = json!(0.7);
    gw.post(PATH, &[], body.clone()).await;
    let r = gw.post(PATH, &[], body).await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("hit"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_hit_spends_no_budget_and_no_token_quota_but_counts_as_a_request() {
    let (up, calls) = upstream().await;
    let extra = json!({
        "rate_limits": [
            { "name": "rpm", "algorithm": "sliding_window", "limit": 3, "window": "1m", "key": "caller" },
            // One request's estimate (prompt + max_tokens 100) fits; two do not.
            { "name": "tpm", "algorithm": "sliding_window", "limit": 150, "window": "1m",
              "unit": "tokens", "key": "caller" }
        ],
        "budgets": [ { "name": "total", "scope": "global", "period": "total", "limit_usd": "1" } ]
    });
    let (gw, built) = gateway(&config(up, extra)).await;
    let spent = |built: &BuiltStack| built.tracker().snapshot().total.cost;
    let r = gw.post(PATH, &[], chat("hi")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let after_first = spent(&built);
    assert!(after_first > llm_tower_core::Money::ZERO);
    // Another question: over the token limit.
    let r = gw.post(PATH, &[], chat("another")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    // The same question: a hit, within the token limit, spending nothing.
    let r = gw.post(PATH, &[], chat("hi")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-llm-tower-cache"), Some("hit"));
    assert_eq!(spent(&built), after_first);
    let budgets = built.tracker().budget_status_all(None).await.unwrap();
    assert_eq!(budgets[0].spent, after_first);
    assert_eq!(budgets[0].reserved, llm_tower_core::Money::ZERO);
    // It was the 3rd request: the 4th is refused by the request limit, hit or not.
    let r = gw.post(PATH, &[], chat("hi")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn messages_and_responses_honour_the_directive_and_carry_the_header() {
    let (up, calls) = upstream().await;
    let (gw, _built) = gateway(&config(up, json!({}))).await;
    let msg = json!({"model": "m", "max_tokens": 100, "temperature": 0,
                     "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/messages", &[], msg.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-llm-tower-cache"), Some("miss"));
    let r = gw.post("/v1/messages", &[], msg.clone()).await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("hit"));
    assert_eq!(r.json()["content"][0]["text"], "answer #1");
    let r = gw
        .post("/v1/messages", &[("cache-control", "no-cache")], msg)
        .await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("miss"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let resp = json!({"model": "m", "input": "hello", "temperature": 0, "store": false});
    let r = gw.post("/v1/responses", &[], resp.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-llm-tower-cache"), Some("miss"));
    let r = gw.post("/v1/responses", &[], resp.clone()).await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("hit"));
    assert_eq!(r.json()["output"][0]["content"][0]["text"], "answer #3");
    let r = gw
        .post("/v1/responses", &[("cache-control", "no-store")], resp)
        .await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("bypass"));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn without_a_cache_there_is_no_cache_header() {
    let (up, calls) = upstream().await;
    let mut c = config(up, json!({}));
    c.as_object_mut().unwrap().remove("cache");
    let (gw, _built) = gateway(&c).await;
    for _ in 0..2 {
        let r = gw.post(PATH, &[], chat("hi")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("x-llm-tower-cache"), None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_route_object_with_cache_false_is_left_alone() {
    let (up, calls) = upstream().await;
    let routes = json!({"routes": {
        "fresh": {"targets": ["up/m"], "cache": false},
        "cached": {"targets": ["up/m"]}
    }});
    let (gw, _built) = gateway(&config(up, routes)).await;
    let mut body = chat("hi");
    body["model"] = json!("fresh");
    for _ in 0..2 {
        let r = gw.post(PATH, &[], body.clone()).await;
        assert_eq!(
            r.header("x-llm-tower-cache"),
            Some("bypass"),
            "{}",
            r.text()
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    body["model"] = json!("cached");
    gw.post(PATH, &[], body.clone()).await;
    let r = gw.post(PATH, &[], body).await;
    assert_eq!(r.header("x-llm-tower-cache"), Some("hit"));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
