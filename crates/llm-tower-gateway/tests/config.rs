//! The glue to llm-tower-config and the `llm-tower` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::Gateway;
use http::StatusCode;
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn from_built_serves_the_embedded_default_config() {
    let built = build(&Config::embedded_default().unwrap()).await.unwrap();
    let state = AppState::builder_from_built(&built)
        .prometheus(llm_tower_gateway::telemetry::prometheus().unwrap())
        .build();
    assert!(!state.auth_required());
    assert!(state.describe().unwrap().contains("route \"default\""));
    let gw = Gateway::start(state).await;

    let r = gw.get("/v1/models", &[]).await;
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&"default".to_owned()), "{ids:?}");
    // Model ids with a `/`, sent as they are or percent-encoded (as SDKs do).
    for path in [
        "/v1/models/mock/gpt-4o-mini",
        "/v1/models/mock%2Fgpt-4o-mini",
    ] {
        let r = gw.get(path, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        assert_eq!(r.json()["id"], "mock/gpt-4o-mini");
        assert_eq!(r.json()["owned_by"], "mock");
    }
    let r = gw.get("/v1/models/mock/nope", &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error()["code"], "model_not_found");

    // A route alias, a provider/model, and a bare model name served by one provider.
    for model in ["default", "mock/gpt-4o-mini", "gpt-4o-mini"] {
        let r = gw
            .post(
                "/v1/chat/completions",
                &[],
                json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{model}: {}", r.text());
        assert_eq!(r.json()["object"], "chat.completion");
    }
    // The stack's own "model not found" is a 404.
    let r = gw
        .post(
            "/v1/chat/completions",
            &[],
            json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error()["code"], "model_not_found");
    // Invented model names share one metric label instead of creating series.
    let metrics = gw.get("/metrics", &[]).await.text();
    assert!(!metrics.contains("\"nope\""), "{metrics}");
    assert!(
        metrics.contains("gen_ai_request_model=\"other\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("gen_ai_request_model=\"gpt-4o-mini\""),
        "{metrics}"
    );

    let r = gw.get("/health", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["providers"]["mock"]["status"], "ok");
    let r = gw.get("/v1/usage", &[]).await;
    let v = r.json();
    assert_eq!(v["total"]["requests"], 3);
    assert_eq!(v["by_provider"]["mock"]["requests"], 3);
    assert_eq!(v["budgets"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn gateway_keys_from_the_config_are_required_and_name_the_caller() {
    // The key is sk-alice-test-key, given as its SHA-256.
    let config = Config::from_str(
        r#"{
          "providers": { "mock": { "type": "mock", "models": { "gpt-4o-mini": { "price": { "input": "0.15", "output": "0.60" } } } } },
          "routes": { "default": ["mock/gpt-4o-mini"] },
          "gateway": { "keys": [
            { "name": "alice", "key_sha256": "c6cb9cb148c1134475c79b58fe8bc5606541f523c0d4f0efd30c3ad74f755ae0" },
            { "name": "ops", "key_sha256": "1f3f3ab5ec3d6e1ba2cdc3ea3bb0b2cb46e3b9c7e0e9e3b2ba6f7c1b5d7fa2c1", "admin": true }
          ] }
        }"#,
    )
    .unwrap();
    let built = build(&config).await.unwrap();
    let state = AppState::from_built(&built);
    assert!(state.auth_required());
    let gw = Gateway::start(state).await;
    let body = json!({"model": "default", "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/chat/completions", &[], body.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-wrong")],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-alice-test-key")],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(built.tracker().snapshot().by_caller["alice"].requests, 1);
    assert_eq!(built.admins(), [llm_tower_core::CallerKey::new("ops")]);
    let r = gw
        .get(
            "/v1/usage",
            &[("authorization", "Bearer sk-alice-test-key")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["scope"], "caller");
}

const BIN: &str = env!("CARGO_BIN_EXE_llm-tower");

#[tokio::test]
async fn serve_without_config_prints_one_line_then_stops_on_sigterm() {
    serve_answers_then_stops(&[]).await;
}

#[tokio::test]
async fn serve_on_a_single_threaded_runtime() {
    serve_answers_then_stops(&["--workers", "1"]).await;
    serve_answers_then_stops(&["--workers", "3"]).await;
    let out = tokio::process::Command::new(BIN)
        .args(["serve", "--workers", "0"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses 0 workers");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers"));
}

/// `serve` with the embedded default and `extra` arguments: one line, one chat, SIGTERM.
async fn serve_answers_then_stops(extra: &[&str]) {
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().unwrap();
    assert!(line.contains("embedded default config"), "{line}");
    assert!(line.contains("curl http://127.0.0.1:"), "{line}");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap();
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let req = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"model":"default","messages":[{"role":"user","content":"Hello!"}]}"#,
        )))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = child.wait().await.unwrap();
    assert!(status.success(), "graceful exit on SIGTERM: {status:?}");
}

#[tokio::test]
async fn check_config_lists_every_problem_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("llm-tower-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"providers": {}, "retry": {"max": "soon"}}"#).unwrap();
    let out = tokio::process::Command::new(BIN)
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problems"), "{err}");
    assert!(err.contains("retry.max: "), "{err}");
    assert!(err.contains("providers: "), "{err}");

    let good = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.json");
    let out = tokio::process::Command::new(BIN)
        .args(["check-config", good])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("route \"default\": trace -> count_tokens"),
        "{text}"
    );
    assert!(text.contains("is valid"));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn count_tokens_reads_stdin_and_says_if_it_is_an_estimate() {
    use tokio::io::AsyncWriteExt;
    for (model, expect) in [("gpt-4o", "(exact, o200k_base)"), ("llama3.2", "(estimate")] {
        let mut child = tokio::process::Command::new(BIN)
            .args(["count-tokens", "--model", model])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"Hello, world! How are towers built?")
            .await
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(expect), "{model}: {text}");
        let n: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
        assert!(n > 3, "{text}");
    }
    let exact = Tokenizers::new()
        .count_text("gpt-4o", "Hello, world! How are towers built?")
        .tokens;
    let out = tokio::process::Command::new(BIN)
        .args(["count-tokens", "--model", "gpt-4o", "-"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("0 tokens"));
    assert!(exact > 0);
}

use llm_tower_layers::token_count::{TokenCounter, Tokenizers};

#[tokio::test]
async fn config_built_limits_budgets_fallback_and_circuits_over_a_socket() {
    // alice: sk-alice-limited, 3 requests a minute; bob: sk-bob-broke, a budget too small
    // for any request. The "default" route falls back from a failing mock to a good one;
    // "solo" has only the failing mock, whose circuit opens after two failures.
    let config = Config::from_str(
        r#"{
          "providers": {
            "broken": { "type": "mock", "failures": { "rate": 1.0, "kind": "http_error", "status": 500 },
                        "models": { "m": { "price": { "input": "1.00", "output": "2.00" } } } },
            "good": { "type": "mock", "models": { "m": { "price": { "input": "1.00", "output": "2.00" } } } }
          },
          "routes": { "default": ["broken/m", "good/m"], "solo": ["broken/m"] },
          "retry": { "max_retries": 0 },
          "circuit_breaker": { "failure_threshold": 2, "cooldown": "10m" },
          "gateway": { "keys": [
            { "name": "alice", "key_sha256": "702f5f2b3f1cddb3f9839ecbb1851fb9d13f3ad0e68321eeec56e6597cf683c8",
              "rate_limits": [ { "name": "alice_rpm", "algorithm": "sliding_window", "limit": 3, "window": "1m", "key": "caller", "mode": "reject" } ] },
            { "name": "bob", "key_sha256": "c538804dbe223a8c059e8fec5956f575dffd6d0af9e37a8dc41cd0913a3bfa87",
              "budget": { "period": "day", "limit_usd": "0.00005" } },
            { "name": "carol", "key_sha256": "dfae0e900eaa8e4e2352da9da8f79cb45456f44c8f56afbe9a1cf4cabd98697d" }
          ] }
        }"#,
    )
    .unwrap();
    let built = build(&config).await.unwrap();
    let gw = Gateway::start(AppState::from_built(&built)).await;
    let body = |model: &str| json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let alice = [("authorization", "Bearer sk-alice-limited")];
    let bob = [("authorization", "Bearer sk-bob-broke")];

    // Fallback: every answer comes from the good mock.
    for _ in 0..3 {
        let r = gw
            .post("/v1/chat/completions", &alice, body("default"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let snap = built.tracker().snapshot();
    assert_eq!(snap.by_provider["good"].requests, 3, "{snap:?}");
    // alice's own limit: the fourth request in the minute is a 429 with Retry-After.
    let r = gw
        .post("/v1/chat/completions", &alice, body("default"))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.error()["type"], "rate_limit_error");

    // bob's budget holds the worst case of one request ($0.000042 of $0.00005), not of a
    // second one after the first was spent: 402, nothing more spent.
    let r = gw.post("/v1/chat/completions", &bob, body("default")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = gw.post("/v1/chat/completions", &bob, body("default")).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text());
    assert_eq!(r.error()["code"], "budget_exceeded");
    assert_eq!(r.header("retry-after").map(str::is_empty), Some(false));
    // A request that could never fit the whole budget is a 400 that says so, without
    // Retry-After.
    let huge = json!({"model": "default", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw.post("/v1/chat/completions", &bob, huge).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.error()["code"], "budget_too_small");
    assert!(
        r.error()["message"]
            .as_str()
            .unwrap()
            .contains("can never fit")
    );
    assert_eq!(r.header("retry-after"), None);

    // The broken target's circuit opened after its two failures above (the first two
    // fallbacks): "solo" now fails fast with 503 instead of calling it.
    let carol = [("authorization", "Bearer sk-carol-plain")];
    let r = gw.post("/v1/chat/completions", &carol, body("solo")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(
        r.error()["message"].as_str().unwrap().contains("circuit"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn check_config_into_a_closed_pipe_exits_quietly() {
    // `llm-tower check-config FILE | head -0`: stdout is closed before the report is
    // written. The write fails with a broken pipe; the command must not panic.
    let dir = std::env::temp_dir().join(format!("llm-tower-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ok.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({
            "providers": { "mock": { "type": "mock", "models": { "m": {} } } }
        }))
        .unwrap(),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["check-config", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
    std::fs::remove_dir_all(&dir).ok();
}
