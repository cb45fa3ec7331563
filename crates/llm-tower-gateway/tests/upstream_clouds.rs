//! The gateway in front of Gemini, Vertex AI and Bedrock (local servers that speak their
//! wire formats): each is served in all three client formats (OpenAI chat, Responses,
//! Anthropic Messages), streamed too: Gemini and Vertex over SSE, Bedrock over
//! ConverseStream's binary event-stream frames.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message as EsMessage};
use axum::Json;
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::Gateway;
use http::{HeaderMap, StatusCode};
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::{Value, json};

const GEMINI_TEXT: &str = "Gemini says hi.";
const BEDROCK_TEXT: &str = "Bedrock says hi.";

/// One ConverseStream event as an event-stream frame.
fn frame(event: &str, payload: Value) -> Vec<u8> {
    let m = EsMessage::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    write_message_to(&m, &mut out).unwrap();
    out
}

/// `generateContent` / `streamGenerateContent?alt=sse` for any model (Gemini and Vertex
/// share the wire format; a stream without `alt=sse` is refused), `converse` and
/// `converse-stream` for Bedrock. Vertex requests must carry the bearer token, Bedrock
/// requests a SigV4 authorization.
async fn upstream() -> SocketAddr {
    async fn google(
        Path(target): Path<String>,
        RawQuery(query): RawQuery,
        headers: HeaderMap,
    ) -> Response {
        let vertex = headers.get("x-goog-api-key").is_none();
        if vertex
            && headers.get("authorization").and_then(|v| v.to_str().ok())
                != Some("Bearer ya29.test-token")
        {
            return (StatusCode::UNAUTHORIZED, "no bearer token").into_response();
        }
        let answer = json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": GEMINI_TEXT}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 4, "totalTokenCount": 11},
            "modelVersion": "gemini-2.5-flash"
        });
        if target.ends_with(":streamGenerateContent") {
            if query.as_deref() != Some("alt=sse") {
                return (StatusCode::BAD_REQUEST, "streams need alt=sse").into_response();
            }
            // The text in two events; the usage with the last.
            let (a, b) = GEMINI_TEXT.split_at(7);
            let first = json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": a}]}, "index": 0}],
                "modelVersion": "gemini-2.5-flash"
            });
            let mut last = answer.clone();
            last["candidates"][0]["content"]["parts"][0]["text"] = json!(b);
            let body = format!("data: {first}\r\n\r\ndata: {last}\r\n\r\n");
            return ([(http::header::CONTENT_TYPE, "text/event-stream")], body).into_response();
        }
        Json(answer).into_response()
    }
    async fn converse_stream(Path(_model): Path<String>, headers: HeaderMap) -> Response {
        let signed = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        if !signed {
            return (StatusCode::FORBIDDEN, "not signed").into_response();
        }
        let (a, b) = BEDROCK_TEXT.split_at(8);
        let frames = [
            frame("messageStart", json!({"role": "assistant"})),
            frame(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": a}}),
            ),
            frame(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": b}}),
            ),
            frame("contentBlockStop", json!({"contentBlockIndex": 0})),
            frame("messageStop", json!({"stopReason": "end_turn"})),
            frame(
                "metadata",
                json!({"usage": {"inputTokens": 6, "outputTokens": 4, "totalTokens": 10},
                       "metrics": {"latencyMs": 12}}),
            ),
        ]
        .concat();
        (
            [(
                http::header::CONTENT_TYPE,
                "application/vnd.amazon.eventstream",
            )],
            frames,
        )
            .into_response()
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
        .route("/model/{model}/converse", post(converse))
        .route("/model/{model}/converse-stream", post(converse_stream));
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
}

/// The server-sent events of a body: `(event name, data)`.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            if data.is_empty() || data == "[DONE]" {
                return None;
            }
            Some((name, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

/// The streamed text and the final `(input, output)` usage of a stream in each format:
/// chat's usage chunk, Responses' `response.completed`, Messages' `message_delta`.
fn stream_text_and_usage(format: &str, body: &str) -> (String, Option<(u64, u64)>) {
    let events = sse_events(body);
    let n = |v: &Value| v.as_u64().unwrap();
    let mut text = String::new();
    let mut usage = None;
    for (name, data) in &events {
        match format {
            "chat" => {
                if let Some(t) = data["choices"][0]["delta"]["content"].as_str() {
                    text.push_str(t);
                }
                if data["usage"].is_object() {
                    assert!(usage.is_none(), "two usage chunks: {body}");
                    assert_eq!(data["choices"], json!([]), "{data}");
                    let u = &data["usage"];
                    assert_eq!(
                        n(&u["total_tokens"]),
                        n(&u["prompt_tokens"]) + n(&u["completion_tokens"])
                    );
                    usage = Some((n(&u["prompt_tokens"]), n(&u["completion_tokens"])));
                }
            }
            "responses" => match name.as_str() {
                "response.output_text.delta" => text.push_str(data["delta"].as_str().unwrap()),
                "response.completed" => {
                    let u = &data["response"]["usage"];
                    assert_eq!(
                        n(&u["total_tokens"]),
                        n(&u["input_tokens"]) + n(&u["output_tokens"])
                    );
                    usage = Some((n(&u["input_tokens"]), n(&u["output_tokens"])));
                }
                _ => {}
            },
            _ => match name.as_str() {
                "content_block_delta" => {
                    text.push_str(data["delta"]["text"].as_str().unwrap_or_default());
                }
                "message_delta" => {
                    let u = &data["usage"];
                    usage = Some((n(&u["input_tokens"]), n(&u["output_tokens"])));
                }
                _ => {}
            },
        }
    }
    (text, usage)
}

#[tokio::test]
async fn gemini_vertex_and_bedrock_streams_are_served_in_every_format() {
    let up = upstream().await;
    let gw = gateway(up).await;
    for (model, expected, usage) in [
        ("gem/gemini-2.5-flash", GEMINI_TEXT, (7, 4)),
        ("vx/gemini-2.5-pro", GEMINI_TEXT, (7, 4)),
        ("br/amazon.nova-lite-v1:0", BEDROCK_TEXT, (6, 4)),
    ] {
        for (format, path, body, end) in [
            (
                "chat",
                "/v1/chat/completions",
                json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                       "messages": [{"role": "user", "content": "hi"}]}),
                "data: [DONE]",
            ),
            (
                "responses",
                "/v1/responses",
                json!({"model": model, "stream": true, "input": "hi"}),
                "response.completed",
            ),
            (
                "messages",
                "/v1/messages",
                json!({"model": model, "stream": true, "max_tokens": 64,
                       "messages": [{"role": "user", "content": "hi"}]}),
                "event: message_stop",
            ),
        ] {
            let r = gw.post(path, &[], body).await;
            assert_eq!(r.status, StatusCode::OK, "{model} {format}: {}", r.text());
            let text = r.text();
            assert!(text.contains(end), "{model} {format}: {text}");
            let (streamed, got) = stream_text_and_usage(format, &text);
            assert_eq!(streamed, expected, "{model} {format}: {text}");
            assert_eq!(got, Some(usage), "{model} {format}: {text}");
        }
    }
}
