//! A Rust user's first hour: three small programs written the way a user would, from the
//! README alone, with no layer type named anywhere.
//!
//! 1. an axum service with per-user limits and budgets, its stack stored in the state;
//! 2. a custom streaming provider under the whole stack, reading its stream's cost;
//! 3. a blocking program that builds its stack from a JSON config.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::StreamExt;
use llm_tower::prelude::*;
use llm_tower::{ChunkChoice, Delta};
use tower::{ServiceBuilder, ServiceExt};

// ---------------------------------------------------------------------------------------
// 1. An axum service with per-user limits and budgets.
// ---------------------------------------------------------------------------------------

mod axum_app {
    use super::*;
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;

    #[derive(Clone)]
    pub struct AppState {
        pub llm: BoxLlmService,
    }

    pub fn app() -> Result<(Router, CostTracker), llm_tower::Error> {
        let tracker = CostTracker::builder()
            .prices(PriceTable::new().with("gpt-4o-mini", ModelPrice::usd("0.15", "0.60")?))
            // Each user may spend 20 cents a day; the "trial" user a thousandth of a cent.
            .budget(Budget::new(
                "per_user",
                BudgetScope::EachCaller,
                Period::Day,
                Money::from_usd_str("0.20")?,
            )?)
            .budget(Budget::new(
                "trial",
                BudgetScope::Caller("trial".into()),
                Period::Day,
                "0.00001".parse::<Money>()?,
            )?)
            .build()?;
        let llm = ServiceBuilder::new()
            .llm_trace()
            .count_tokens()
            .track_cost(tracker.clone())
            .llm_rate_limit(
                RateLimitLayer::new(Algorithm::sliding_window(2, Duration::from_secs(60))?)
                    .key(KeyBy::Caller),
            )
            .llm_retry(RetryLayer::new())
            .llm_timeout(Duration::from_secs(30))
            .boxed_llm()
            .service(MockProvider::new());
        let state = AppState { llm };
        Ok((
            Router::new().route("/ask", post(ask)).with_state(state),
            tracker,
        ))
    }

    async fn ask(State(app): State<AppState>, headers: HeaderMap, question: String) -> Response {
        let user = headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anonymous");
        let req = LlmRequest::chat(
            ChatRequest::new("gpt-4o-mini", vec![Message::user(question)]).max_tokens(100),
        )
        .with_caller(user);
        match app.llm.oneshot(req).await {
            Ok(resp) => {
                let text = resp
                    .as_chat()
                    .map(|c| c.text().into_owned())
                    .unwrap_or_default();
                let cost = resp.cost.unwrap_or_default();
                format!("{text} (${cost})").into_response()
            }
            Err(e) => {
                let status = StatusCode::from_u16(e.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let mut resp = (status, e.to_string()).into_response();
                if let Some(after) = e.retry_after() {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, after.as_secs().max(1).into());
                }
                resp
            }
        }
    }
}

async fn post_as(app: &axum::Router, user: &str) -> (u16, Option<String>, String) {
    let req = axum::http::Request::post("/ask")
        .header("x-user", user)
        .body(axum::body::Body::from("Tell me about towers."))
        .unwrap();
    // A fresh clone per request, as axum's server makes one.
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, retry, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn an_axum_app_keeps_the_boxed_stack_in_its_state() {
    let (app, tracker) = axum_app::app().unwrap();
    for _ in 0..2 {
        let (status, _, body) = post_as(&app, "alice").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("($0."), "{body}");
    }
    // Per-user request limit, shared by every clone axum made of the state.
    let (status, retry, body) = post_as(&app, "alice").await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some());
    assert_eq!(post_as(&app, "bob").await.0, 200);
    // The trial user's budget cannot hold the worst case of one request: a 400 that says
    // so (no wait makes room), not a 402 to retry later.
    let (status, retry, body) = post_as(&app, "trial").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("trial") && body.contains("can never fit"),
        "{body}"
    );
    assert!(retry.is_none());

    let snap = tracker.snapshot();
    assert_eq!(snap.by_caller["alice"].requests, 3);
    assert!(snap.by_caller["alice"].cost > Money::ZERO);
}

// ---------------------------------------------------------------------------------------
// 2. A custom streaming provider under the whole stack.
// ---------------------------------------------------------------------------------------

/// "My own provider": a local model server that streams words and reports no usage.
fn my_provider() -> impl tower::Service<
    LlmRequest,
    Response = LlmResponse,
    Error = llm_tower::Error,
    Future = impl Future<Output = Result<LlmResponse, llm_tower::Error>> + Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|req: LlmRequest| async move {
        let model = req.model().to_owned();
        let words = ["Towers ", "are ", "tall ", "and ", "strong."];
        let chunks: Vec<Result<ChatChunk, llm_tower::Error>> = words
            .into_iter()
            .map(|w| {
                Ok(ChatChunk {
                    extra: Default::default(),
                    id: "local-1".into(),
                    model: model.clone(),
                    created: 0,
                    choices: vec![ChunkChoice {
                        logprobs: None,
                        index: 0,
                        delta: Delta {
                            content: Some(w.into()),
                            ..Delta::default()
                        },
                        finish_reason: None,
                    }],
                    usage: None,
                    cost: None,
                    native: None,
                })
            })
            .collect();
        let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks));
        Ok(LlmResponse::new(ResponseBody::Stream(stream)))
    })
}

fn whole_stack(tracker: &CostTracker) -> Result<BoxLlmService, llm_tower::Error> {
    Ok(ServiceBuilder::new()
        .llm_trace()
        .count_tokens()
        .track_cost(tracker.clone())
        .llm_rate_limit(
            RateLimitLayer::new(Algorithm::sliding_window(100, Duration::from_secs(60))?)
                .key(KeyBy::Caller),
        )
        .llm_retry(RetryLayer::new())
        .llm_timeout(Duration::from_secs(30))
        .boxed_llm()
        .service(my_provider()))
}

#[tokio::test]
async fn a_custom_streaming_provider_under_the_whole_stack_reports_its_cost() {
    let tracker = CostTracker::builder()
        .prices(PriceTable::new().with("my-llama", ModelPrice::usd("0.20", "0.80").unwrap()))
        .build()
        .unwrap();
    let llm = whole_stack(&tracker).unwrap();
    let mut chat = ChatRequest::new("my-llama", vec![Message::user("Tell me about towers.")]);
    chat.stream = true;

    // Read to the end: the last chunk carries the usage and the cost.
    let resp = llm
        .clone()
        .oneshot(LlmRequest::chat(chat.clone()))
        .await
        .unwrap();
    let cost = resp.stream_cost().expect("the stack prices streams");
    let mut stream = resp.into_stream().unwrap();
    let mut text = String::new();
    let mut last_cost = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        text.push_str(&chunk.text());
        if chunk.usage.is_some() {
            last_cost = chunk.cost;
        }
    }
    assert_eq!(text, "Towers are tall and strong.");
    let settled = cost.get().expect("settled at the end");
    assert_eq!(last_cost, Some(settled));
    assert_eq!(tracker.snapshot().total.cost, settled);

    // Drop a stream early: its cost is settled with what was read.
    let resp = llm.oneshot(LlmRequest::chat(chat)).await.unwrap();
    let early = resp.stream_cost().unwrap();
    let mut stream = resp.into_stream().unwrap();
    stream.next().await.unwrap().unwrap();
    assert!(!early.is_settled());
    drop(stream);
    let partial = early.get().expect("settled on drop");
    assert!(
        Money::ZERO < partial && partial < settled,
        "{partial} vs {settled}"
    );
    assert_eq!(tracker.snapshot().total.cost, settled + partial);
}

// ---------------------------------------------------------------------------------------
// 3. A blocking program that builds its stack from a JSON config.
// ---------------------------------------------------------------------------------------

const CONFIG: &str = r#"{
  "providers": {
    "mock": {
      "type": "mock",
      "models": { "gpt-4o-mini": { "price": { "input": "0.15", "output": "0.60" } } }
    }
  },
  "rate_limits": [
    { "name": "per_user", "algorithm": "sliding_window", "limit": 10, "window": "1m", "key": "caller" }
  ],
  "budgets": [
    { "name": "daily", "scope": "global", "period": "day", "limit_usd": "0.50" }
  ]
}"#;

fn blocking_main() -> Result<(), Box<dyn std::error::Error>> {
    use llm_tower::sync::BlockingClient;

    let config: llm_tower::config::Config = CONFIG.parse()?;
    let stack = llm_tower::config::build_blocking(&config)?;
    let client = BlockingClient::new(stack.service())?;

    let answer = client.chat(ChatRequest::new(
        "gpt-4o-mini",
        vec![Message::user("Hello!")],
    ))?;
    assert!(!answer.text().is_empty());

    let mut stream = client.stream(ChatRequest::new(
        "gpt-4o-mini",
        vec![Message::user("Hello!")],
    ))?;
    let streamed: String = stream
        .by_ref()
        .map(|c| c.map(|c| c.text()))
        .collect::<Result<_, _>>()?;
    assert_eq!(streamed, answer.text());
    let stream_cost = stream.cost().ok_or("the stream was priced")?;
    drop(stream);

    let snap = stack.tracker().snapshot();
    assert_eq!(snap.total.requests, 2);
    assert!(stream_cost > Money::ZERO && stream_cost < snap.total.cost);

    // Or in one step.
    let client = BlockingClient::from_config(&config)?;
    client.chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("Hi")]))?;
    Ok(())
}

#[test]
fn a_blocking_program_builds_its_stack_from_a_json_string() {
    // No async runtime anywhere in this test.
    blocking_main().unwrap();
}
