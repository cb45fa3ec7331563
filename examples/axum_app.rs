//! llm-tower inside a plain axum app (not the gateway).
//!
//! Run: `cargo run -p llm-tower --example axum_app` (serves on 127.0.0.1:3000, or the
//! address given as the first argument), or `cargo run -p llm-tower --example axum_app -- --demo`
//! to drive the app in-process and exit.
//!
//! - The app's own routes are guarded by llm-tower's rate-limit store and algorithm,
//!   applied to HTTP requests by `HttpRateLimitLayer` and keyed by the `x-api-user` header:
//!   3 requests per minute per user, then `429` in OpenAI's error shape with `Retry-After`
//!   and `x-ratelimit-*` headers.
//! - The `/ask` handler calls an llm-tower stack (token counting, cost tracking, a
//!   per-user rate limit on the LLM calls, retry) around the mock provider. The user header
//!   becomes the request's caller, so the stack's per-caller limits and budgets apply.
//! - Errors of the stack come back in OpenAI's shape too (`ApiError`).
//!
//! Both limits keep their state behind an `Arc` made when the layer is built, so they hold
//! although axum clones the services for every request.
//!
//! ```text
//! curl -s localhost:3000/ask -H 'x-api-user: alice' -d 'Tell me about towers.'
//! ```

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderName, Request};
use llm_tower::layers::builder::{BoxLlmService, ServiceBuilderExt};
use llm_tower::layers::cost::{CostTracker, ModelPrice, PriceTable};
use llm_tower::layers::rate_limit::{Algorithm, KeyBy, RateLimitLayer};
use llm_tower::layers::retry::RetryLayer;
use llm_tower::providers::mock::MockProvider;
use llm_tower::{CallerKey, ChatRequest, Error, LlmRequest, Message};
use llm_tower_gateway::http_limit::HttpRateLimitLayer;
use llm_tower_gateway::key::Header;
use llm_tower_gateway::openai_error::ApiError;
use tower::{ServiceBuilder, ServiceExt};

#[derive(Clone)]
struct AppState {
    /// The LLM stack the handlers call.
    llm: BoxLlmService,
    tracker: CostTracker,
}

const USER: HeaderName = HeaderName::from_static("x-api-user");

/// `POST /ask`: the body is the question; the answer is plain text.
async fn ask(
    State(state): State<AppState>,
    headers: HeaderMap,
    question: String,
) -> Result<String, ApiError> {
    let mut req = LlmRequest::chat(
        ChatRequest::new("gpt-4o-mini", vec![Message::user(question)]).max_tokens(64),
    );
    if let Some(user) = headers.get(&USER).and_then(|v| v.to_str().ok()) {
        req.ctx.caller = Some(CallerKey::from(user));
    }
    let resp = state.llm.oneshot(req).await?;
    let text = resp
        .as_chat()
        .map(|c| c.text().into_owned())
        .unwrap_or_default();
    let usage = resp.usage.unwrap_or_default();
    Ok(format!(
        "{text}\n({} tokens, ${})\n",
        usage.total_tokens,
        resp.cost.unwrap_or_default()
    ))
}

/// `GET /spend`: the cost analytics so far.
async fn spend(State(state): State<AppState>) -> String {
    let snap = state.tracker.snapshot();
    let mut out = format!(
        "total: {} requests, ${}\n",
        snap.total.requests, snap.total.cost
    );
    for (user, t) in &snap.by_caller {
        out.push_str(&format!("  {user}: {} requests, ${}\n", t.requests, t.cost));
    }
    out
}

fn app() -> Result<Router, Error> {
    let tracker = CostTracker::builder()
        .prices(PriceTable::new().with("gpt-4o-mini", ModelPrice::usd("0.15", "0.60")?))
        .build()?;
    let llm = ServiceBuilder::new()
        .llm_trace()
        .count_tokens()
        .track_cost(tracker.clone())
        .llm_rate_limit(
            RateLimitLayer::new(Algorithm::sliding_window(100, Duration::from_secs(60))?)
                .name("llm_per_user")
                .key(KeyBy::Caller),
        )
        .llm_retry(RetryLayer::new().max_retries(2))
        .boxed_llm()
        .service(MockProvider::new());
    // The app's own routes: 3 requests per minute per `x-api-user`.
    let per_user = HttpRateLimitLayer::new(Algorithm::sliding_window(3, Duration::from_secs(60))?)
        .name("http_per_user")
        .key(Header::new(USER));
    Ok(Router::new()
        .route("/ask", post(ask))
        .route("/spend", get(spend))
        .layer(per_user)
        .with_state(AppState { llm, tracker }))
}

async fn demo(app: Router) -> Result<(), Box<dyn std::error::Error>> {
    for user in ["alice", "alice", "alice", "alice", "bob"] {
        let req = Request::post("/ask")
            .header(&USER, user)
            .body(Body::from("Tell me about towers."))?;
        // A fresh clone per request, as axum's server does: the limit still holds.
        let resp = app.clone().oneshot(req).await?;
        let status = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024).await?;
        match retry {
            Some(r) => println!(
                "{user}: {status} (retry after {r} s) {}",
                String::from_utf8_lossy(&body)
            ),
            None => print!("{user}: {status} {}", String::from_utf8_lossy(&body)),
        }
    }
    let resp = app
        .oneshot(
            Request::get("/spend")
                .header(&USER, "carol")
                .body(Body::empty())?,
        )
        .await?;
    let body = axum::body::to_bytes(resp.into_body(), 64 * 1024).await?;
    print!("{}", String::from_utf8_lossy(&body));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = app()?;
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--demo") {
        return demo(app).await;
    }
    let addr = arg.unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "axum_app on http://{} -- try: curl -s http://{}/ask -H 'x-api-user: alice' -d 'Tell me about towers.'",
        listener.local_addr()?,
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use http::StatusCode;

    async fn ask_as(app: &Router, user: &str) -> (StatusCode, HeaderMap, String) {
        let req = Request::post("/ask")
            .header(&USER, user)
            .body(Body::from("Tell me about towers."))
            .unwrap();
        // A fresh clone per request, as axum's server makes.
        let resp = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, 64 * 1024).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_header_keyed_limit_holds_across_axum_clones() {
        let app = app().unwrap();
        for _ in 0..3 {
            let (status, _, body) = ask_as(&app, "alice").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body.contains("tokens, $"), "{body}");
        }
        let (status, headers, body) = ask_as(&app, "alice").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert!(
            headers.contains_key("x-ratelimit-limit-requests"),
            "{headers:?}"
        );
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["error"]["type"], "rate_limit_error", "{err}");
        // Another user has a limit of their own.
        let (status, _, _) = ask_as(&app, "bob").await;
        assert_eq!(status, StatusCode::OK);

        // The handler's stack saw alice's three calls and bob's one, as their callers.
        let resp = app
            .clone()
            .oneshot(
                Request::get("/spend")
                    .header(&USER, "carol")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(resp.into_body(), 64 * 1024)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.starts_with("total: 4 requests"), "{text}");
        assert!(text.contains("alice: 3 requests"), "{text}");
        assert!(text.contains("bob: 1 requests"), "{text}");
    }
}
