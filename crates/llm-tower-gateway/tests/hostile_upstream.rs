//! Hostile upstreams through the whole gateway: huge and endless bodies cost bounded
//! memory and answer 502 naming the cap; absurd usage cannot wrap the analytics or
//! poison a budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Stdio;

use common::Gateway;
use http::StatusCode;
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_llm-tower");

/// What the raw upstream sends after the response head.
#[derive(Clone, Copy)]
enum Body {
    /// Nothing more: the declared length is never honoured.
    Stall,
    /// 64 KiB chunks until the client goes away.
    Endless,
    /// This exact JSON.
    Json(&'static str),
}

/// A raw HTTP/1.1 upstream on 127.0.0.1:0 answering every request with `head` + `body`.
async fn upstream(head: &'static str, body: Body) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    // One request per loop: read its head (and ignore its body).
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    match body {
                        Body::Stall => {
                            let _ = s.write_all(head.as_bytes()).await;
                            let _ = s.read(&mut buf).await;
                            return;
                        }
                        Body::Endless => {
                            if s.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
                            chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
                            chunk.extend_from_slice(b"\r\n");
                            while s.write_all(&chunk).await.is_ok() {}
                            return;
                        }
                        Body::Json(j) => {
                            let msg = format!("{head}content-length: {}\r\n\r\n{j}", j.len());
                            if s.write_all(msg.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn config(upstream: SocketAddr, extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "providers": {
            "up": {
                "type": "openai_compatible",
                "base_url": format!("http://{upstream}/v1"),
                "models": { "m": { "price": { "input": "1.00", "output": "2.00" }, "max_output_tokens": 1000 } }
            }
        },
        "retry": { "max_retries": 0 }
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

/// Runs `llm-tower serve --config` on `config`; returns the child and its address.
async fn spawn_gateway(config: &serde_json::Value) -> (tokio::process::Child, SocketAddr) {
    let dir = std::env::temp_dir().join(format!(
        "llm-tower-hostile-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config.json");
    std::fs::write(&file, serde_json::to_vec(config).unwrap()).unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&file)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap();
    (child, url.trim_start_matches("http://").parse().unwrap())
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

/// Peak resident memory of `pid` in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

async fn post_chat(addr: SocketAddr) -> (StatusCode, serde_json::Value) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"model":"up/m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .unwrap();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(60), client.request(req))
        .await
        .expect("the gateway hung")
        .unwrap();
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn four_at_once(addr: SocketAddr) -> Vec<(StatusCode, serde_json::Value)> {
    futures_util::future::join_all((0..4).map(|_| post_chat(addr))).await
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_ten_gigabyte_answers_cost_bounded_memory_and_name_the_cap() {
    // Declared 10 GiB: refused before reading, at once.
    let huge = upstream(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10737418240\r\n\r\n",
        Body::Stall,
    )
    .await;
    let (mut child, addr) = spawn_gateway(&config(huge, json!({}))).await;
    for (status, body) in four_at_once(addr).await {
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("declares 10737418240 bytes"), "{msg}");
        assert!(msg.contains("max_response_bytes"), "{msg}");
    }
    let peak = peak_rss_mib(child.id().unwrap());
    assert!(peak < 150, "peak RSS {peak} MiB");
    child.kill().await.unwrap();

    // Endless chunked bodies, defaults (32 MiB per body, 64 MiB for all at once): each
    // stops at a cap, and the gateway's peak stays far below 4 x 10 GB.
    let endless = upstream(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
        Body::Endless,
    )
    .await;
    let (mut child, addr) = spawn_gateway(&config(endless, json!({}))).await;
    for (status, body) in four_at_once(addr).await {
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("max_response_bytes") || msg.contains("max_upstream_buffer_bytes"),
            "{msg}"
        );
    }
    let peak = peak_rss_mib(child.id().unwrap());
    assert!(peak < 150, "peak RSS {peak} MiB");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn absurd_usage_cannot_wrap_the_analytics_or_poison_a_budget() {
    let absurd = upstream(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n",
        Body::Json(
            r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9223372036854775808,"completion_tokens":18446744073709551615,"total_tokens":18446744073709551615}}"#,
        ),
    )
    .await;
    let cfg = config(
        absurd,
        json!({ "budgets": [ { "name": "month", "scope": "global", "period": "month", "limit_usd": "5" } ] }),
    );
    let built = build(&Config::from_str(&cfg.to_string()).unwrap())
        .await
        .unwrap();
    let gw = Gateway::start(AppState::from_built(&built)).await;
    let body =
        json!({"model": "up/m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..3 {
        let r = gw.post("/v1/chat/completions", &[], body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let snap = built.tracker().snapshot();
    assert_eq!(snap.total.requests, 3);
    // Settled at the reserved worst case: a few prompt tokens and 10 output tokens each.
    assert!(
        snap.total.prompt_tokens > 0 && snap.total.prompt_tokens < 100,
        "{snap:?}"
    );
    assert_eq!(snap.total.completion_tokens, 30, "{snap:?}");
    assert!(snap.total.cost.as_nanos() > 0, "{snap:?}");
    assert!(snap.total.cost.as_nanos() < 1_000_000, "{snap:?}");
    let usage = gw.get("/v1/usage", &[]).await;
    let v = usage.json();
    let budget = &v["budgets"][0];
    assert_eq!(budget["exhausted"], false, "{v}");
    assert!(
        budget["spent"].as_str().unwrap().len() < 12,
        "spend stays near the worst case: {v}"
    );
    // The budget still admits requests: one hostile answer cannot poison it.
    let r = gw.post("/v1/chat/completions", &[], body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
