//! Hostile upstream bodies: a declared length above the cap fails before a byte is read,
//! an endless body stops at the cap, a shared buffer budget bounds all bodies at once, and
//! a JSON answer to a streaming request is named as such.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Reply, guard, serve};
use llm_tower_core::{ChatRequest, ErrorKind, LlmRequest, Message};
use llm_tower_providers::http::{BufferBudget, HttpClient, HttpConfig};
use llm_tower_providers::openai::{OpenAi, OpenAiConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::ServiceExt;

const KEY: &str = "sk-test-SECRET-hostile";

fn provider(base: &str, http: HttpConfig) -> OpenAi {
    OpenAi::new(
        OpenAiConfig::new(KEY).base_url(format!("{base}/v1")),
        HttpClient::with_config(http).unwrap(),
    )
    .unwrap()
}

fn chat(stream: bool) -> LlmRequest {
    let mut c = ChatRequest::new("gpt-4o-mini", vec![Message::user("hi")]).max_tokens(5);
    c.stream = stream;
    LlmRequest::chat(c)
}

/// A raw HTTP/1.1 server on 127.0.0.1:0 that reads a request head and answers `head`,
/// then `body(n)` for n = 0, 1, ... until writing fails (or forever stalls when `body`
/// returns `None`).
async fn raw_server(head: &'static str, body: fn(usize) -> Option<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut i = 0;
                loop {
                    match body(i) {
                        Some(chunk) => {
                            if s.write_all(&chunk).await.is_err() {
                                return;
                            }
                        }
                        None => {
                            // Stall: keep the connection open without sending more.
                            let _ = s.read(&mut buf).await;
                            return;
                        }
                    }
                    i += 1;
                }
            });
        }
    });
    addr
}

/// 64 KiB of JSON-ish padding as one HTTP chunk.
fn endless_chunk(_: usize) -> Option<Vec<u8>> {
    let data = vec![b' '; 64 * 1024];
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\r\n");
    Some(out)
}

#[tokio::test]
async fn a_declared_length_above_the_cap_fails_before_reading() {
    // 10 GiB declared, one byte sent, then silence: reading would hang until the
    // request timeout; the declared length alone must fail the call.
    let addr = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10737418240\r\n\r\n{",
        |i| (i == 0).then(Vec::new),
    )
    .await;
    let p = provider(
        &format!("http://{addr}"),
        HttpConfig::default().request_timeout(Duration::from_secs(3600)),
    );
    let e = guard(p.oneshot(chat(false))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(e.message().contains("declares 10737418240 bytes"), "{e}");
    assert!(e.message().contains("max_response_bytes"), "{e}");
    assert!(e.message().contains(&(32 * 1024 * 1024).to_string()), "{e}");
}

#[tokio::test]
async fn an_endless_body_stops_at_the_cap() {
    let addr = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        endless_chunk,
    )
    .await;
    let p = provider(
        &format!("http://{addr}"),
        HttpConfig::default().max_body_bytes(1024 * 1024),
    );
    let e = guard(p.oneshot(chat(false))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(
        e.message()
            .contains("larger than the limit of 1048576 bytes (max_response_bytes)"),
        "{e}"
    );
}

#[tokio::test]
async fn a_shared_buffer_budget_bounds_bodies_and_is_given_back() {
    let budget = BufferBudget::new(256 * 1024);
    let addr = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        endless_chunk,
    )
    .await;
    let p = provider(
        &format!("http://{addr}"),
        HttpConfig::default()
            .max_body_bytes(8 * 1024 * 1024)
            .buffer_budget(budget.clone()),
    );
    let e = guard(p.oneshot(chat(false))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(e.message().contains("max_upstream_buffer_bytes"), "{e}");
    assert!(e.message().contains("262144"), "{e}");
    assert_eq!(budget.in_use(), 0, "the failed body gave its room back");

    // A normal answer through a client sharing the budget takes room while it is read
    // and gives it back.
    let ok = serve(|_| {
        Reply::json(
            200,
            json!({
                "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
            }),
        )
    })
    .await;
    let p = provider(
        &ok.url(),
        HttpConfig::default().buffer_budget(budget.clone()),
    );
    guard(p.oneshot(chat(false))).await.unwrap();
    assert_eq!(budget.in_use(), 0);
}

#[tokio::test]
async fn a_json_answer_to_a_streaming_request_is_named() {
    let server = serve(|_| {
        Reply::json(
            200,
            json!({"error": {"message": "streaming is disabled for this deployment", "type": "invalid_request_error"}}),
        )
    })
    .await;
    let p = provider(&server.url(), HttpConfig::default());
    let e = match guard(p.oneshot(chat(true))).await {
        Err(e) => e,
        Ok(_) => panic!("a JSON body is not a stream"),
    };
    assert!(
        e.message()
            .contains("answered application/json to a streaming request"),
        "{e}"
    );
    assert!(e.message().contains("streaming is disabled"), "{e}");
    assert!(!e.message().contains(KEY));
}
