//! Every endpoint and error path of the gateway, over real sockets on 127.0.0.1:0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use llm_tower_core::CallerKey;
use llm_tower_gateway::{AppState, ProviderHealth, Settings};
use llm_tower_layers::rate_limit::Algorithm;
use llm_tower_providers::mock::{Failure, FailurePlan, MockProvider, Reply as MockReply};
use serde_json::json;

fn auth(token: &str) -> [(&'static str, String); 1] {
    [("authorization", bearer(token))]
}

fn h<'a>(a: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    a.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn chat_completion_has_openai_shape_and_usage() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].is_string());
    assert!(v["created"].is_u64());
    assert_eq!(v["model"], CHAT_MODEL);
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(v["choices"][0]["finish_reason"].is_string());
    let u = &v["usage"];
    let (p, c, t) = (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
        u["total_tokens"].as_u64().unwrap(),
    );
    assert!(p > 0 && c > 0);
    assert_eq!(t, p + c);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn request_id_is_echoed() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let mut hs = h(&a);
    hs.push(("x-request-id", "my-req-42"));
    let r = gw
        .post("/v1/chat/completions", &hs, chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-request-id"), Some("my-req-42"));
    // Errors echo it too.
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("x-request-id", "my-req-43")],
            chat_body(false, None),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("x-request-id"), Some("my-req-43"));
}

#[tokio::test]
async fn streaming_chat_sends_chunks_then_done_without_usage_by_default() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(true, None))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.sse_events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks.len() >= 3);
    let id = chunks[0]["id"].clone();
    let mut text = String::new();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id, "one id for the whole stream");
        assert!(c.get("usage").is_none(), "no usage field unless asked: {c}");
        assert!(!c["choices"].as_array().unwrap().is_empty());
        text.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
    assert!(!text.is_empty());
}

#[tokio::test]
async fn streaming_usage_chunk_only_with_include_usage() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    for asked in [false, true] {
        let r = gw
            .post("/v1/chat/completions", &h(&a), chat_body(true, Some(asked)))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let events = r.sse_events();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        let last = chunks.last().unwrap();
        if asked {
            // Every chunk has `usage`: null except the last, whose choices are empty.
            for c in &chunks[..chunks.len() - 1] {
                assert!(c["usage"].is_null() && c.get("usage").is_some(), "{c}");
            }
            assert_eq!(last["choices"].as_array().unwrap().len(), 0);
            let u = &last["usage"];
            assert!(u["completion_tokens"].as_u64().unwrap() > 0);
            assert_eq!(
                u["total_tokens"].as_u64().unwrap(),
                u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
            );
        } else {
            assert!(chunks.iter().all(|c| c.get("usage").is_none()));
            assert!(!last["choices"].as_array().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn legacy_completions() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let r = gw
        .post(
            "/v1/completions",
            &h(&a),
            json!({"model": COMPLETION_MODEL, "prompt": ["Once upon", "a time"], "max_tokens": 8}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"].as_array().unwrap().len(), 2);
    assert!(v["choices"][1]["text"].is_string());
    assert_eq!(v["choices"][1]["index"], 1);
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);
    // Streaming is refused with a 400 naming the field.
    let r = gw
        .post(
            "/v1/completions",
            &h(&a),
            json!({"model": COMPLETION_MODEL, "prompt": "x", "stream": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error()["param"], "stream");
}

#[tokio::test]
async fn embeddings() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let r = gw
        .post(
            "/v1/embeddings",
            &h(&a),
            json!({"model": EMBED_MODEL, "input": ["alpha", "beta"], "dimensions": 8}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], EMBED_MODEL);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["object"], "embedding");
    assert_eq!(data[1]["index"], 1);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["usage"]["prompt_tokens"], v["usage"]["total_tokens"]);
    // base64 encoding is a string.
    let r = gw
        .post(
            "/v1/embeddings",
            &h(&a),
            json!({"model": EMBED_MODEL, "input": "alpha", "encoding_format": "base64"}),
        )
        .await;
    assert!(r.json()["data"][0]["embedding"].is_string());
}

#[tokio::test]
async fn models_list_and_retrieve() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let r = gw.get("/v1/models", &h(&a)).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            assert!(m["owned_by"].is_string());
            assert!(m["created"].is_u64());
            m["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids, [CHAT_MODEL, EMBED_MODEL, COMPLETION_MODEL]);
    let r = gw.get(&format!("/v1/models/{CHAT_MODEL}"), &h(&a)).await;
    assert_eq!(r.json()["id"], CHAT_MODEL);
    let r = gw.get("/v1/models/nope", &h(&a)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error()["code"], "model_not_found");
    // Listing needs a key too.
    assert_eq!(
        gw.get("/v1/models", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn missing_or_wrong_key_is_401_without_echoing_the_key() {
    let gw = Gateway::start(default_state()).await;
    let r = gw
        .post("/v1/chat/completions", &[], chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let e = r.error();
    assert_eq!(e["code"], "invalid_api_key");
    assert_eq!(e["type"], "invalid_request_error");
    let secret = "sk-not-a-real-key-SECRET-123";
    let wrong = auth(secret);
    let r = gw
        .post("/v1/chat/completions", &h(&wrong), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.text().contains(secret), "the key must not be echoed");
    assert!(!r.text().contains("SECRET"));
    // A non-bearer scheme is "missing".
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("authorization", "Basic abc")],
            chat_body(false, None),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn keys_are_optional_when_not_required_and_name_the_caller() {
    let t = tracker();
    let state = AppState::builder(stack(MockProvider::new(), t.clone(), generous()))
        .auth(
            |token: &str| (token == ALICE).then(|| CallerKey::from("alice")),
            false,
        )
        .tracker(t.clone())
        .build();
    let gw = Gateway::start(state).await;
    // No key, an unknown key (SDKs always send one): anonymous.
    let r = gw
        .post("/v1/chat/completions", &[], chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("authorization", "Bearer whatever")],
            chat_body(false, None),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A known key names its caller.
    let a = auth(ALICE);
    assert_eq!(
        gw.post("/v1/chat/completions", &h(&a), chat_body(false, None))
            .await
            .status,
        StatusCode::OK
    );
    let snap = t.snapshot();
    assert_eq!(snap.by_caller.get("alice").map(|t| t.requests), Some(1));
    assert_eq!(snap.total.requests, 3);
}

#[tokio::test]
async fn bad_body_is_400_naming_the_field() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let r = gw
        .post(
            "/v1/chat/completions",
            &h(&a),
            json!({"model": CHAT_MODEL, "messages": [{"role": "robot", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let e = r.error();
    assert_eq!(e["param"], "messages[0].role");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with("messages[0].role: unknown variant"),
        "{msg}"
    );
    assert_eq!(e["type"], "invalid_request_error");

    let r = gw
        .post(
            "/v1/chat/completions",
            &h(&a),
            json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": "lots"}),
        )
        .await;
    assert_eq!(r.error()["param"], "max_tokens");

    // Missing field, broken JSON, empty messages, trailing garbage: 400 in OpenAI's shape.
    let r = gw
        .post("/v1/chat/completions", &h(&a), json!({"model": CHAT_MODEL}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.error()["message"].as_str().unwrap().contains("messages"));
    for raw in [
        &b"{not json"[..],
        b"",
        b"{\"model\":\"gpt-4o-mini\",\"messages\":[]}",
        b"[]",
        b"{} {}",
        &[0xff, 0xfe],
    ] {
        let r = gw
            .send(
                Method::POST,
                "/v1/chat/completions",
                &h(&a),
                Some(raw.to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{raw:?}");
        r.error();
    }
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let r = gw
        .post(
            "/v1/chat/completions",
            &h(&a),
            json!({"model": "gpt-9-ultra", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let e = r.error();
    assert_eq!(e["code"], "model_not_found");
    assert_eq!(e["param"], "model");
}

#[tokio::test]
async fn unknown_route_and_wrong_method() {
    let gw = Gateway::start(default_state()).await;
    let r = gw.get("/v2/nothing", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error()["code"], "unknown_url");
    let r = gw.get("/v1/chat/completions", &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    r.error();
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let cases: [(http::Method, &str, StatusCode); 6] = [
        (http::Method::GET, "/health", StatusCode::OK),
        (http::Method::GET, "/metrics", StatusCode::OK),
        (http::Method::GET, "/v1/models", StatusCode::OK),
        (http::Method::GET, "/v2/nothing", StatusCode::NOT_FOUND),
        (
            http::Method::GET,
            "/v1/chat/completions",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            http::Method::DELETE,
            "/health",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, path, status) in cases {
        let r = gw.send(method.clone(), path, &h(&a), None).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        let id = r.header("x-request-id").unwrap_or_default();
        assert!(!id.is_empty(), "{method} {path}: no x-request-id");
        if !status.is_success() {
            r.error();
        }
        // The client's id is echoed.
        let mut hs = h(&a);
        hs.push(("x-request-id", "given-7"));
        let r = gw.send(method.clone(), path, &hs, None).await;
        assert_eq!(r.header("x-request-id"), Some("given-7"), "{method} {path}");
    }
    // Two requests without an id get different ones.
    let one = gw.get("/health", &[]).await;
    let two = gw.get("/health", &[]).await;
    assert_ne!(one.header("x-request-id"), two.header("x-request-id"));
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let t = tracker();
    let mut settings = Settings::default();
    settings.max_body_bytes = 1024;
    let gw = Gateway::start(state_with(
        stack(MockProvider::new(), t.clone(), generous()),
        t,
        settings,
    ))
    .await;
    let a = auth(ALICE);
    let big = "x".repeat(4096);
    let r = gw
        .post(
            "/v1/chat/completions",
            &h(&a),
            json!({"model": CHAT_MODEL, "messages": [{"role": "user", "content": big}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error()["code"], "request_too_large");
    // Under the limit still works.
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn rate_limited_is_429_with_retry_after_and_ratelimit_headers() {
    let t = tracker();
    let limit = Algorithm::sliding_window(2, Duration::from_secs(60)).unwrap();
    let gw = Gateway::start(state_with(
        stack(MockProvider::new(), t.clone(), limit),
        t,
        Settings::default(),
    ))
    .await;
    let a = auth(ALICE);
    for _ in 0..2 {
        let r = gw
            .post("/v1/chat/completions", &h(&a), chat_body(false, None))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let e = r.error();
    assert_eq!(e["code"], "rate_limit_exceeded");
    assert_eq!(e["type"], "rate_limit_error");
    let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(r.header("retry-after-ms").unwrap().parse::<u64>().unwrap() <= 60_000);
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert!(
        r.header("x-ratelimit-reset-requests")
            .unwrap()
            .ends_with('s')
    );
    // The limit is per caller: bob still passes.
    let b = auth(BOB);
    let r = gw
        .post("/v1/chat/completions", &h(&b), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn exhausted_budget_is_402() {
    let t = broke_tracker().await;
    let gw = Gateway::start(state_with(
        stack(MockProvider::new(), t.clone(), generous()),
        t.clone(),
        Settings::default(),
    ))
    .await;
    let a = auth(ALICE);
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text());
    let e = r.error();
    assert_eq!(e["type"], "insufficient_quota");
    assert_eq!(e["code"], "budget_exceeded");
    // Streaming requests are refused before the stream starts.
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(true, Some(true)))
        .await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
}

fn failing(failure: Failure) -> AppState {
    let t = tracker();
    let mock = MockProvider::builder()
        .failures(FailurePlan::Schedule(vec![Some(failure)]))
        .build();
    state_with(stack(mock, t.clone(), generous()), t, Settings::default())
}

#[tokio::test]
async fn provider_failures_are_502_503_504() {
    let a = auth(ALICE);
    for (failure, status, code) in [
        (
            Failure::ServerError { status: 500 },
            StatusCode::BAD_GATEWAY,
            "provider_5xx",
        ),
        (
            Failure::Overloaded,
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
        ),
        (Failure::Timeout, StatusCode::GATEWAY_TIMEOUT, "timeout"),
    ] {
        let gw = Gateway::start(failing(failure)).await;
        let r = gw
            .post("/v1/chat/completions", &h(&a), chat_body(false, None))
            .await;
        assert_eq!(r.status, status, "{failure:?}: {}", r.text());
        let e = r.error();
        assert_eq!(e["type"], "server_error");
        assert_eq!(e["code"], code);
        assert!(e["message"].as_str().unwrap().starts_with("mock: "));
    }
}

#[tokio::test]
async fn provider_rate_limit_is_429_with_its_retry_after() {
    let a = auth(ALICE);
    let gw = Gateway::start(failing(Failure::RateLimited {
        retry_after: Duration::from_millis(2500),
    }))
    .await;
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.header("retry-after-ms"), Some("2500"));
}

#[tokio::test]
async fn client_deadline_header_gives_504_on_a_stalled_provider() {
    let a = auth(ALICE);
    let gw = Gateway::start(failing(Failure::Stall)).await;
    let mut hs = h(&a);
    hs.push(("x-llm-tower-timeout", "0.01"));
    let r = gw
        .post("/v1/chat/completions", &hs, chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert_eq!(r.error()["code"], "timeout");
}

#[tokio::test]
async fn health_reports_providers() {
    let t = tracker();
    let ok = AppState::builder(stack(MockProvider::new(), t.clone(), generous()))
        .health(|| async {
            vec![
                ProviderHealth::ok("mock"),
                ProviderHealth::failed("openai", "no answer"),
            ]
        })
        .build();
    let gw = Gateway::start(ok).await;
    let r = gw.get("/health", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["providers"]["mock"]["status"], "ok");
    assert_eq!(v["providers"]["openai"]["status"], "error");
    assert_eq!(v["providers"]["openai"]["error"], "no answer");

    let down = AppState::builder(stack(MockProvider::new(), t.clone(), generous()))
        .health(|| async { vec![ProviderHealth::failed("openai", "no answer")] })
        .build();
    let gw = Gateway::start(down).await;
    let r = gw.get("/health", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["status"], "unavailable");

    // No probes: plain liveness.
    let gw = Gateway::start(default_state()).await;
    let r = gw.get("/health", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ok");
}

/// A state whose probe counts its runs.
fn counted_probe(settings: Settings) -> (AppState, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let r2 = runs.clone();
    let t = tracker();
    let state = AppState::builder(stack(MockProvider::new(), t, generous()))
        .health(move || {
            let runs = r2.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                vec![ProviderHealth::ok("openai")]
            }
        })
        .settings(settings)
        .build();
    (state, runs)
}

#[tokio::test]
async fn health_probes_are_cached_and_shared_by_concurrent_requests() {
    use std::sync::atomic::Ordering;
    let (state, runs) = counted_probe(Settings::default());
    let gw = Gateway::start(state).await;
    let replies = futures_util::future::join_all((0..8).map(|_| gw.get("/health", &[]))).await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["providers"]["openai"]["status"], "ok");
    }
    gw.get("/health", &[]).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one probe run for nine requests"
    );

    let mut settings = Settings::default();
    settings.health_cache = Duration::ZERO;
    let (state, runs) = counted_probe(settings);
    let gw = Gateway::start(state).await;
    for _ in 0..3 {
        gw.get("/health", &[]).await;
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "no cache: a probe per request"
    );
}

#[tokio::test]
async fn metrics_expose_gateway_and_stack_metrics() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    gw.post("/v1/chat/completions", &h(&a), chat_body(false, None))
        .await;
    gw.post("/v1/chat/completions", &h(&a), chat_body(true, Some(true)))
        .await;
    gw.post("/v1/chat/completions", &[], chat_body(false, None))
        .await;
    let r = gw.get("/metrics", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    for name in [
        "llm_tower_gateway_requests_total",
        "llm_tower_gateway_overhead_seconds",
        "llm_tower_gateway_request_duration_seconds",
        "gen_ai_client_operation_duration",
        "gen_ai_client_token_usage",
        "llm_tower_requests_total",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }
    assert!(text.contains(r#"route="/v1/chat/completions""#));
    assert!(text.contains(r#"status="401""#));
    assert!(!text.contains(ALICE), "keys never reach metrics");
}

#[tokio::test]
async fn usage_shows_analytics_and_budgets() {
    let t = llm_tower_layers::cost::CostTracker::builder()
        .prices(prices())
        .budget(
            llm_tower_layers::cost::Budget::new(
                "per_caller_daily",
                llm_tower_layers::cost::BudgetScope::EachCaller,
                llm_tower_layers::cost::Period::Day,
                llm_tower_core::Money::from_usd(5),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    // Bob's key is an admin key: he sees everybody's usage; alice sees her own.
    let gw = Gateway::start(
        AppState::builder(stack(MockProvider::new(), t.clone(), generous()))
            .models([CHAT_MODEL])
            .auth(keys(), true)
            .tracker(t)
            .usage_admins(["bob"])
            .build(),
    )
    .await;
    let a = auth(ALICE);
    let b = auth(BOB);
    gw.post("/v1/chat/completions", &h(&a), chat_body(false, None))
        .await;
    gw.post("/v1/chat/completions", &h(&a), chat_body(true, None))
        .await;
    gw.post("/v1/chat/completions", &h(&b), chat_body(false, None))
        .await;
    let r = gw.get("/v1/usage", &h(&b)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["scope"], "all");
    assert_eq!(v["total"]["requests"], 3);
    assert_eq!(v["by_caller"]["alice"]["requests"], 2);
    assert_eq!(v["by_caller"]["bob"]["requests"], 1);
    assert_eq!(v["by_model"][CHAT_MODEL]["requests"], 3);

    let r = gw.get("/v1/usage", &h(&a)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "usage");
    assert_eq!(v["scope"], "caller");
    assert_eq!(v["total"]["requests"], 2, "alice's own totals: {v}");
    assert_eq!(v["by_caller"]["alice"]["requests"], 2);
    assert!(v["by_caller"].get("bob").is_none(), "no other tenant: {v}");
    assert!(v["by_model"].as_object().unwrap().is_empty(), "{v}");
    // Per provider when a router names it in the context (none here: a bare mock).
    assert!(v["by_provider"].is_object());
    assert!(v["total"]["prompt_tokens"].as_u64().unwrap() > 0);
    let budgets = v["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 1);
    assert_eq!(budgets[0]["budget"], "per_caller_daily");
    assert_eq!(budgets[0]["key"], "alice");
    assert_eq!(budgets[0]["limit"], "5");
    assert_ne!(budgets[0]["spent"], "0");
    // Needs a key.
    assert_eq!(
        gw.get("/v1/usage", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn tool_calls_and_stream_text_round_trip() {
    let t = tracker();
    let mock = MockProvider::builder()
        .reply(MockReply::Fixed("one two three".into()))
        .build();
    let gw = Gateway::start(state_with(
        stack(mock, t.clone(), generous()),
        t,
        Settings::default(),
    ))
    .await;
    let a = auth(ALICE);
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(true, None))
        .await;
    let text: String = r
        .sse_events()
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(e).unwrap();
            v["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(text, "one two three");
    let mut body = chat_body(false, None);
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let r = gw.post("/v1/chat/completions", &h(&a), body).await;
    let v = r.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["type"],
        "function"
    );
}

#[tokio::test]
async fn hostile_inputs_never_break_the_server() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"x"}}],"response_format":{}}}"#,
        deep
    );
    let bodies: Vec<Vec<u8>> = vec![
        deep.into_bytes(),
        deep_obj.into_bytes(),
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#.to_vec(),
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":99999999999}"#.to_vec(),
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#.to_vec(),
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"bogus"}]}]}"#.to_vec(),
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":null}]}"#.to_vec(),
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user"}],"stream":"yes"}"#.to_vec(),
        br#"{"model":123,"messages":[]}"#.to_vec(),
        br#"{"model":"\u0000\ud800","messages":[{"role":"user","content":"x"}]}"#.to_vec(),
        format!(r#"{{"model":"{}","messages":[{{"role":"user","content":"x"}}]}}"#, "é".repeat(5000)).into_bytes(),
        br#"null"#.to_vec(),
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":null,"n":1000}"#.to_vec(),
    ];
    for path in ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"] {
        for body in &bodies {
            let r = gw
                .send(Method::POST, path, &h(&a), Some(body.clone()))
                .await;
            assert!(
                r.status.is_success() || r.status.is_client_error(),
                "{path} {}: {} {}",
                String::from_utf8_lossy(&body[..body.len().min(80)]),
                r.status,
                r.text()
            );
            if !r.status.is_success() {
                r.error();
            }
        }
    }
    // Odd headers: a non-UTF-8 request id, a huge timeout, a negative one, a bad bearer.
    let weird: [&[(&str, &str)]; 4] = [
        &[("x-request-id", "")],
        &[("x-llm-tower-timeout", "1e300")],
        &[("x-llm-tower-timeout", "-5")],
        &[("authorization", "Bearer")],
    ];
    for extra in weird {
        let mut hs = h(&a);
        hs.extend_from_slice(extra);
        let r = gw
            .post("/v1/chat/completions", &hs, chat_body(false, None))
            .await;
        assert!(r.status.as_u16() < 500, "{extra:?}: {}", r.status);
    }
    // Still serving.
    let r = gw
        .post("/v1/chat/completions", &h(&a), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}
