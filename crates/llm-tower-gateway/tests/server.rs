//! The server: graceful shutdown with a stream in flight, TCP_NODELAY, slow clients, and
//! the OpenAI Python SDK against a real gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::routing::get;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use llm_tower_core::{
    ChatChunk, ChunkChoice, Delta, Error, LlmRequest, LlmResponse, ResponseBody, Role,
};
use llm_tower_gateway::{AppState, ConnectionInfo, ServeOptions, Settings, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

fn chunk(text: &str, finish: Option<&str>) -> ChatChunk {
    ChatChunk {
        extra: Default::default(),
        id: "chatcmpl-test".into(),
        model: CHAT_MODEL.into(),
        created: 1,
        choices: vec![ChunkChoice {
            logprobs: None,
            index: 0,
            delta: Delta {
                reasoning_content: None,
                refusal: None,
                thinking_blocks: Vec::new(),
                role: Some(Role::Assistant),
                content: Some(text.into()),
                tool_calls: Vec::new(),
            },
            finish_reason: finish.map(str::to_owned),
        }],
        usage: None,
        cost: None,
        native: None,
    }
}

/// A provider whose one stream is fed by the test, chunk by chunk.
fn fed_provider() -> (
    impl tower::Service<LlmRequest, Response = LlmResponse, Error = Error, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static,
    mpsc::UnboundedSender<ChatChunk>,
) {
    let (tx, rx) = mpsc::unbounded_channel::<ChatChunk>();
    let rx = Arc::new(Mutex::new(Some(rx)));
    let svc = tower::service_fn(move |_req: LlmRequest| {
        let rx = rx.lock().unwrap().take();
        async move {
            let rx = rx.ok_or_else(|| Error::internal("one stream only"))?;
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|c| (Ok(c), rx))
            });
            Ok(LlmResponse::new(ResponseBody::Stream(Box::pin(stream))))
        }
    });
    (svc, tx)
}

#[tokio::test]
async fn graceful_shutdown_finishes_an_in_flight_stream_and_stops_accepting() {
    let (provider, tx) = fed_provider();
    let state = AppState::builder(provider).build();
    let mut gw = Gateway::start(state).await;
    let addr = gw.addr;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(&chat_body(true, None)).unwrap(),
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();

    tx.send(chunk("first", None)).unwrap();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&frame).contains("first"));

    // Shut down while the stream is open: the listener closes...
    gw.signal_stop();
    let mut refused = false;
    for _ in 0..10_000 {
        match TcpStream::connect(addr).await {
            Err(_) => {
                refused = true;
                break;
            }
            Ok(_) => tokio::task::yield_now().await,
        }
    }
    assert!(refused, "the listener still accepts after shutdown started");

    // ...but the in-flight stream runs to its end.
    tx.send(chunk(" second", Some("stop"))).unwrap();
    drop(tx);
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            rest.extend_from_slice(&data);
        }
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.contains("second"), "{rest}");
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    drop(client);
    assert_eq!(gw.join().await, Shutdown::Graceful);
}

#[tokio::test]
async fn a_stream_still_open_after_the_grace_period_is_cut() {
    let (provider, tx) = fed_provider();
    let mut settings = Settings::default();
    settings.shutdown_grace = Duration::from_millis(50);
    let state = AppState::builder(provider).settings(settings).build();
    let mut gw = Gateway::start(state).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let body = serde_json::to_vec(&chat_body(true, None)).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    tx.send(chunk("first", None)).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("first"));

    // The stream never ends; shutdown waits the grace period, then drops the connection.
    gw.signal_stop();
    assert_eq!(gw.join().await, Shutdown::GraceExpired);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection outlived serve()");
    assert!(!String::from_utf8_lossy(&rest).contains("[DONE]"));
    drop(tx);
}

#[tokio::test]
async fn accepted_sockets_have_tcp_nodelay() {
    let router = axum::Router::new().route(
        "/conn",
        get(|Extension(info): Extension<ConnectionInfo>| async move {
            format!("nodelay={} peer_ip={}", info.nodelay, info.peer.ip())
        }),
    );
    let gw = Gateway::start_router(router, ServeOptions::from(&Settings::default())).await;
    let r = gw.get("/conn", &[]).await;
    assert_eq!(r.text(), "nodelay=true peer_ip=127.0.0.1");
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let mut settings = Settings::default();
    settings.header_read_timeout = Duration::from_millis(50);
    let gw = Gateway::start(
        AppState::builder(fed_provider().0)
            .settings(settings)
            .build(),
    )
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // The server closes the connection once the header timeout passes (an event, not a sleep).
    let mut buf = Vec::new();
    // Well under hyper's own 30 s default, so the configured timeout is what closes it.
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the connection was not closed");
}

#[tokio::test]
async fn slow_body_is_408() {
    let mut settings = Settings::default();
    settings.body_read_timeout = Duration::from_millis(20);
    let t = tracker();
    let gw = Gateway::start(state_with(
        stack(
            llm_tower_providers::mock::MockProvider::new(),
            t.clone(),
            generous(),
        ),
        t,
        settings,
    ))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ALICE}\r\ncontent-length: 100\r\n\r\n{{\"model\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_sdk_example_runs_against_the_gateway() {
    if !common::python_sdk("openai") {
        return;
    }
    let gw = Gateway::start(default_state()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/gateway_client.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .env("LLM_TOWER_BASE_URL", format!("http://{}/v1", gw.addr))
        .env("LLM_TOWER_API_KEY", ALICE)
        .env("LLM_TOWER_STRICT", "1")
        .env("LLM_TOWER_MODEL", CHAT_MODEL)
        .env("LLM_TOWER_EMBEDDING_MODEL", EMBED_MODEL)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ok: all calls succeeded"), "{stdout}");
}
