//! Test helpers: a gateway on 127.0.0.1:0 over the mock provider, and a small HTTP client.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use llm_tower_core::{Error, LlmRequest, LlmResponse, Money};
use llm_tower_gateway::{AppState, ServeOptions, Settings, Shutdown, StaticKeys, serve};
use llm_tower_layers::builder::ServiceBuilderExt;
use llm_tower_layers::cost::{Budget, BudgetScope, CostTracker, ModelPrice, Period, PriceTable};
use llm_tower_layers::rate_limit::{Algorithm, KeyBy, RateLimitLayer};
use llm_tower_layers::retry::RetryLayer;
use llm_tower_providers::mock::MockProvider;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

pub const CHAT_MODEL: &str = "gpt-4o-mini";
pub const EMBED_MODEL: &str = "text-embedding-3-small";
pub const COMPLETION_MODEL: &str = "gpt-3.5-turbo-instruct";
pub const ALICE: &str = "sk-test-alice-0123456789";
pub const BOB: &str = "sk-test-bob-0123456789";

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<Shutdown>>>,
}

impl Gateway {
    pub async fn start(state: AppState) -> Gateway {
        let router = state.router();
        Gateway::start_router(router, ServeOptions::from(state.settings())).await
    }

    pub async fn start_router(router: axum::Router, options: ServeOptions) -> Gateway {
        let listener = llm_tower_gateway::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, router, options, async move {
            let _ = rx.await;
        }));
        Gateway {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Starts the graceful shutdown.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the server to end.
    pub async fn join(&mut self) -> Shutdown {
        self.signal_stop();
        self.task.take().unwrap().await.unwrap().unwrap()
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, path, headers, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: serde_json::Value,
    ) -> Reply {
        self.send(
            Method::POST,
            path,
            headers,
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts OpenAI's error shape and returns the `error` object.
    pub fn error(&self) -> serde_json::Value {
        let v = self.json();
        let e = v
            .get("error")
            .unwrap_or_else(|| panic!("no error object: {v}"))
            .clone();
        for field in ["message", "type", "param", "code"] {
            assert!(e.get(field).is_some(), "error lacks {field}: {e}");
        }
        assert!(e["message"].is_string());
        assert!(e["type"].is_string());
        e
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_events(&self) -> Vec<String> {
        let text = self.text();
        assert!(
            text.ends_with("\n\n"),
            "events end with a blank line: {text:?}"
        );
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                e.strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                    .to_owned()
            })
            .collect()
    }
}

pub fn prices() -> PriceTable {
    PriceTable::new()
        .with(
            CHAT_MODEL,
            ModelPrice::usd("0.15", "0.60")
                .unwrap()
                .max_output_tokens(16_384),
        )
        .with(EMBED_MODEL, ModelPrice::usd("0.02", "0").unwrap())
        .with(COMPLETION_MODEL, ModelPrice::usd("1.50", "2.00").unwrap())
}

pub fn tracker() -> CostTracker {
    CostTracker::builder().prices(prices()).build().unwrap()
}

/// A tracker whose global budget cannot hold one chat request.
/// A tracker whose $0.001 monthly budget is all but spent: $0.0000388 left, less than
/// the worst case of `chat_body` (about $0.0000414), which still fits the whole limit
/// (so it is refused with 402, not as a request that can never fit).
pub async fn broke_tracker() -> CostTracker {
    let t = CostTracker::builder()
        .prices(prices())
        .budget(
            Budget::new(
                "tiny",
                BudgetScope::Global,
                Period::Month,
                Money::from_nanos(1_000_000),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let spend = LlmRequest::chat(
        llm_tower_core::ChatRequest::new(CHAT_MODEL, vec![llm_tower_core::Message::user("hi")])
            .max_tokens(1_600),
    );
    let r = t.reserve(&spend).await.unwrap();
    r.settle(
        Some(llm_tower_core::Usage::new(
            8,
            1_600,
            llm_tower_core::UsageSource::Provider,
        )),
        false,
    )
    .await;
    t
}

pub type Stack = BoxCloneSyncService<LlmRequest, LlmResponse, Error>;

/// The stack in the documented order, over `mock`.
pub fn stack(mock: MockProvider, tracker: CostTracker, per_caller: Algorithm) -> Stack {
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .llm_trace()
            .count_tokens()
            .track_cost(tracker)
            .llm_rate_limit(
                RateLimitLayer::new(per_caller)
                    .name("per_caller")
                    .key(KeyBy::Caller),
            )
            .llm_retry(RetryLayer::new().max_retries(0))
            .llm_timeout(Duration::from_secs(60))
            .service(mock),
    )
}

pub fn generous() -> Algorithm {
    Algorithm::sliding_window(1_000_000, Duration::from_secs(1)).unwrap()
}

pub fn keys() -> StaticKeys {
    StaticKeys::new().with(ALICE, "alice").with(BOB, "bob")
}

/// A gateway state over `stack` with the test models and keys (required), usage and metrics.
pub fn state_with(stack: Stack, tracker: CostTracker, settings: Settings) -> AppState {
    AppState::builder(stack)
        .models([CHAT_MODEL, EMBED_MODEL, COMPLETION_MODEL])
        .auth(keys(), true)
        .tracker(tracker)
        .prometheus(llm_tower_gateway::telemetry::prometheus().unwrap())
        .settings(settings)
        .build()
}

pub fn default_state() -> AppState {
    let t = tracker();
    state_with(
        stack(MockProvider::new(), t.clone(), generous()),
        t,
        Settings::default(),
    )
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn chat_body(stream: bool, include_usage: Option<bool>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "model": CHAT_MODEL,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say something about towers."}
        ],
        "max_tokens": 64,
    });
    if stream {
        v["stream"] = true.into();
    }
    if let Some(u) = include_usage {
        v["stream_options"] = serde_json::json!({"include_usage": u});
    }
    v
}

/// `true` when `python3` can import `module` (an official SDK the tests drive). When it
/// cannot, the test skips with a note, unless `CI` or `LLM_TOWER_REQUIRE_SDKS` is set:
/// there `scripts/test.sh` installed the SDKs, so a missing one fails the test.
#[allow(dead_code)]
pub fn python_sdk(module: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var_os("LLM_TOWER_REQUIRE_SDKS").is_some()
            || std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !required,
            "the `{module}` Python package is required here (pip install {module})"
        );
        println!(
            "note: skipped: the `{module}` Python package is not installed (pip install {module})"
        );
    }
    ok
}
