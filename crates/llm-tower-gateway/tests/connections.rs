//! Connection limits over real sockets: connections that send no request, idle HTTP/1 and
//! HTTP/2 connections, `max_connections` (connections beyond it wait; idle ones are shed
//! to make room; busy ones are kept), and a flood of 2,000 idle connections.
//!
//! No test sleeps: time passes by awaiting the server's own close (or its 408) under a
//! bounded `tokio::time::timeout`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use llm_tower_gateway::{AppState, ServeOptions, Settings};
use llm_tower_providers::mock::MockProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The longest any test waits for the server to act.
const BOUND: Duration = Duration::from_secs(10);

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
const EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

fn settings(header_read_timeout_ms: u64, idle_timeout_ms: u64) -> Settings {
    let mut s = Settings::default();
    s.header_read_timeout = Duration::from_millis(header_read_timeout_ms);
    s.idle_timeout = Duration::from_millis(idle_timeout_ms);
    s
}

async fn gateway(settings: Settings) -> Gateway {
    Gateway::start(
        AppState::builder(MockProvider::new())
            .models([CHAT_MODEL])
            .settings(settings)
            .build(),
    )
    .await
}

/// Reads until the server closes `s` (EOF or reset) and returns everything read; panics
/// when it is still open after [`BOUND`].
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection");
    out
}

/// Sends one HTTP/1.1 request on `s` and reads its (small, `content-length`) response.
async fn http1_exchange(s: &mut TcpStream, request: &str) -> String {
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(BOUND, s.read(&mut buf))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "closed before the response was complete");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

const GET_HEALTH: &str = "GET /health HTTP/1.1\r\nhost: x\r\n\r\n";

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let gw = gateway(settings(300, 60_000)).await;
    let start = Instant::now();
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let got = read_until_closed(&mut s).await;
    assert!(got.is_empty());
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed_after_the_header_timeout() {
    let gw = gateway(settings(300, 60_000)).await;
    let start = Instant::now();
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(&H2_PREFACE[..10]).await.unwrap();
    read_until_closed(&mut s).await;
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_http2_preface_and_settings_without_a_request_are_closed_after_the_header_timeout() {
    let gw = gateway(settings(300, 60_000)).await;
    let start = Instant::now();
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(H2_PREFACE).await.unwrap();
    s.write_all(EMPTY_SETTINGS).await.unwrap();
    let got = read_until_closed(&mut s).await;
    // The server spoke HTTP/2 (its SETTINGS frame: type 4 on stream 0) and then hung up.
    assert!(got.len() >= 9 && got[3] == 4, "{got:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_partial_http1_head_is_closed_after_the_header_timeout() {
    let gw = gateway(settings(300, 60_000)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nhost").await.unwrap();
    read_until_closed(&mut s).await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_by_the_header_timeout() {
    // `idle_timeout` is long: hyper's header read timeout is what closes it.
    let gw = gateway(settings(300, 60_000)).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    // The server's header timer starts once it has answered, after this.
    let idle = Instant::now();
    let resp = http1_exchange(&mut s, GET_HEALTH).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let rest = read_until_closed(&mut s).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        idle.elapsed() >= Duration::from_millis(300),
        "{:?}",
        idle.elapsed()
    );
}

/// An HTTP/2 client connection: the request sender and the connection task (which ends
/// when the server closes the connection).
async fn h2_client(
    addr: std::net::SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<Result<(), hyper::Error>>,
) {
    let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    (send, tokio::spawn(conn))
}

fn h2_get(addr: std::net::SocketAddr, path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap()
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_one_with_a_stream_in_flight_is_kept() {
    let release = Arc::new(Notify::new());
    let wait = release.clone();
    let router = axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/wait",
            get(move || {
                let wait = wait.clone();
                async move {
                    wait.notified().await;
                    "released"
                }
            }),
        );
    let mut options = ServeOptions::default();
    options.header_read_timeout = Duration::from_secs(5);
    options.idle_timeout = Duration::from_millis(300);
    let gw = Gateway::start_router(router, options).await;

    // A: a request in flight for longer than the idle timeout.
    let (mut busy, busy_conn) = h2_client(gw.addr).await;
    let pending = tokio::spawn(busy.send_request(h2_get(gw.addr, "/wait")));
    // B: one request, then idle.
    let (mut idle, idle_conn) = h2_client(gw.addr).await;
    // The server's idle time starts when it has sent the response, after this.
    let idle_from = Instant::now();
    let resp = idle.send_request(h2_get(gw.addr, "/ok")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");

    // The server closes B (GOAWAY, then the socket) once it has idled for 300 ms...
    let ended = tokio::time::timeout(BOUND, idle_conn).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection was not closed");
    assert!(
        idle_from.elapsed() >= Duration::from_millis(300),
        "{:?}",
        idle_from.elapsed()
    );
    // ...but not A, whose stream is still running.
    assert!(!busy_conn.is_finished(), "the busy connection was closed");
    release.notify_one();
    let resp = tokio::time::timeout(BOUND, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "released"
    );
    // Idle now, A goes the same way.
    assert!(tokio::time::timeout(BOUND, busy_conn).await.is_ok());
}

/// A chat request whose head is sent and whose body stops halfway: the request is in
/// flight (its connection is busy) until the server answers 408. Returns once the server
/// is reading the body (its `100 Continue`), with the rest of the body.
async fn stalled_chat(addr: std::net::SocketAddr) -> (TcpStream, Vec<u8>) {
    let body = serde_json::to_vec(&chat_body(false, None)).unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let continue_line = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut got = vec![0u8; continue_line.len()];
    tokio::time::timeout(BOUND, s.read_exact(&mut got))
        .await
        .expect("no 100 Continue")
        .unwrap();
    assert_eq!(got, continue_line, "{}", String::from_utf8_lossy(&got));
    let half = body.len() / 2;
    s.write_all(&body[..half]).await.unwrap();
    (s, body[half..].to_vec())
}

#[tokio::test]
async fn beyond_max_connections_a_new_connection_waits_for_a_busy_one_to_end() {
    let mut s = settings(5_000, 60_000);
    s.max_connections = 1;
    s.body_read_timeout = Duration::from_millis(300);
    let gw = gateway(s).await;
    // The one permitted connection is busy until the server answers 408.
    let (busy, _) = stalled_chat(gw.addr).await;
    // Served only once the busy one has had its 408.
    let mut waiting = TcpStream::connect(gw.addr).await.unwrap();
    let resp = http1_exchange(&mut waiting, GET_HEALTH).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let mut buf = [0u8; 4096];
    let n = busy.try_read(&mut buf).expect("the 408 came before");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn at_max_connections_an_idle_connection_makes_room_and_a_busy_one_is_kept() {
    let mut s = settings(5_000, 60_000);
    s.max_connections = 2;
    s.body_read_timeout = Duration::from_secs(5);
    let gw = gateway(s).await;
    let (mut busy, rest) = stalled_chat(gw.addr).await;
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    let resp = http1_exchange(&mut idle, GET_HEALTH).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // A third connection: the idle keep-alive one is closed to make room for it.
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    let resp = http1_exchange(&mut third, GET_HEALTH).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(read_until_closed(&mut idle).await.is_empty());

    // The busy one was kept: its request completes.
    busy.write_all(&rest).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&got).contains("chat.completion") {
        let n = tokio::time::timeout(BOUND, busy.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_do_not_lock_out_a_client() {
    // 2,000 client sockets plus the server's 200 in one process.
    #[cfg(unix)]
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
    // A header read timeout long enough that, were the idle connections not shed to make
    // room, the backlog behind them would hold the request for many seconds.
    let mut s = settings(2_000, 60_000);
    s.max_connections = 200;
    let gw = gateway(s).await;

    let opened = Instant::now();
    let mut idle = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    let opened = opened.elapsed();

    let sent = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(1), gw.get("/health", &[]))
        .await
        .expect("a normal request waited more than a second behind idle connections");
    let answered = sent.elapsed();
    assert_eq!(r.status, StatusCode::OK);

    // Every idle connection is closed by the server: shed to make room, or by the header
    // read timeout.
    let closing = Instant::now();
    for s in &mut idle {
        assert!(read_until_closed(s).await.is_empty());
    }
    println!(
        "opened 2000 idle connections in {opened:?}; a request was answered in {answered:?}; \
         all idle ones were closed {:?} later",
        closing.elapsed()
    );
}

#[tokio::test]
async fn unparseable_http1_gets_hyper_s_own_bodyless_answer_and_is_closed() {
    // Documented in the README: hyper answers these before any service runs, and has no
    // hook to give them a body or an `x-request-id`.
    let gw = gateway(settings(5_000, 60_000)).await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    let huge_head = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let cases: [(&[u8], &str); 3] = [
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", "HTTP/1.1 400"),
        (long_uri.as_bytes(), "HTTP/1.1 414"),
        (huge_head.as_bytes(), "HTTP/1.1 431"),
    ];
    for (request, status) in cases {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        // The server may answer and close before it has read everything.
        let _ = s.write_all(request).await;
        let got = read_until_closed(&mut s).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with(status), "{status}: {text}");
        assert!(
            !text.to_ascii_lowercase().contains("x-request-id"),
            "{text}"
        );
    }
}
