//! The gateway in front of Gemini, Vertex AI and Bedrock (local servers that speak their
//! wire formats): each is served in all three client formats (OpenAI chat, Responses,
//! Anthropic Messages), streamed too where the upstream streams over SSE.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use axum::Json;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::Gateway;
use http::StatusCode;
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::{Value, json};

const GEMINI_TEXT: &str = "Gemini says hi.";
const BEDROCK_TEXT: &str = "Bedrock says hi.";

/// `generateContent` / `streamGenerateContent?alt=sse` for any model (Gemini and Vertex
/// share the wire format), `converse` for Bedrock.
async fn upstream() -> SocketAddr {
    async fn google(Path(target): Path<String>) -> Response {
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": GEMINI_TEXT}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 4, "totalTokenCount": 11},
            "modelVersion": "gemini-2.5-flash"
        });
        if target.ends_with(":streamGenerateContent") {
            let body = format!("data: {answer}\r\n\r\n");
            return ([(http::header::CONTENT_TYPE, "text/event-stream")], body).into_response();
        }
        Json(answer).into_response()
    }
    async fn converse(Path(_model): Path<String>) -> Response {
        Json(json!({
            "output": {"message": {"role": "assistant", "content": [{"text": BEDROCK_TEXT}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 6, "outputTokens": 4, "totalTokens": 10},
            "metrics": {"latencyMs": 12}
        }))
        .into_response()
    }
    let app = axum::Router::new()
        .route("/v1beta/models/{target}", post(google))
        .route(
            "/v1/projects/p1/locations/us-central1/publishers/google/models/{target}",
            post(google),
        )
        .route("/model/{model}/converse", post(converse));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn gateway(up: SocketAddr) -> Gateway {
    let price = json!({"input": "0.30", "output": "2.50"});
    let config = json!({
        "providers": {
            "gem": {"type": "gemini", "api_key": "gemini-test-key", "base_url": format!("http://{up}"),
                    "models": {"gemini-2.5-flash": {"price": price, "tokenizer": "heuristic"}}},
            "vx": {"type": "vertex", "project": "p1", "location": "us-central1",
                   "auth": {"access_token": "ya29.test-token"}, "base_url": format!("http://{up}"),
                   "models": {"gemini-2.5-pro": {"price": price, "tokenizer": "heuristic"}}},
            "br": {"type": "bedrock", "region": "us-east-1", "base_url": format!("http://{up}"),
                   "credentials": {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "test-secret"},
                   "models": {"amazon.nova-lite-v1:0": {"price": price, "tokenizer": "heuristic"}}}
        },
        "retry": {"max_retries": 0}
    });
    let built = build(&Config::from_str(&config.to_string()).unwrap())
        .await
        .unwrap();
    Gateway::start(AppState::from_built(&built)).await
}

/// The text of an answer in each format.
fn text_of(format: &str, v: &Value) -> String {
    match format {
        "chat" => v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        "responses" => v["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["type"] == "message")
            .flat_map(|i| i["content"].as_array().unwrap().clone())
            .filter_map(|c| c["text"].as_str().map(str::to_owned))
            .collect(),
        _ => v["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

#[tokio::test]
async fn gemini_vertex_and_bedrock_are_served_in_every_format() {
    let up = upstream().await;
    let gw = gateway(up).await;
    for (model, expected) in [
        ("gem/gemini-2.5-flash", GEMINI_TEXT),
        ("vx/gemini-2.5-pro", GEMINI_TEXT),
        ("br/amazon.nova-lite-v1:0", BEDROCK_TEXT),
    ] {
        for (format, path, body) in [
            (
                "chat",
                "/v1/chat/completions",
                json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            ),
            (
                "responses",
                "/v1/responses",
                json!({"model": model, "input": "hi"}),
            ),
            (
                "messages",
                "/v1/messages",
                json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}),
            ),
        ] {
            let r = gw.post(path, &[], body).await;
            assert_eq!(r.status, StatusCode::OK, "{model} {format}: {}", r.text());
            assert_eq!(text_of(format, &r.json()), expected, "{model} {format}");
        }
    }
    // Streamed from Gemini's SSE, in each format.
    for (path, body, marker) in [
        (
            "/v1/chat/completions",
            json!({"model": "gem/gemini-2.5-flash", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            "[DONE]",
        ),
        (
            "/v1/responses",
            json!({"model": "gem/gemini-2.5-flash", "stream": true, "input": "hi"}),
            "response.completed",
        ),
        (
            "/v1/messages",
            json!({"model": "gem/gemini-2.5-flash", "stream": true, "max_tokens": 64,
                   "messages": [{"role": "user", "content": "hi"}]}),
            "message_stop",
        ),
    ] {
        let r = gw.post(path, &[], body).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        let text = r.text();
        assert!(text.contains(marker), "{path}: {text}");
        assert!(text.contains("Gemini says"), "{path}: {text}");
    }
}
