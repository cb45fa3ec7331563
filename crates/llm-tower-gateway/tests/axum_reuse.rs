//! The rate-limit layer guarding plain axum routes, keyed by a header: the limit holds
//! across axum's per-request clones of the service.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::post;
use http::{HeaderName, Request, StatusCode};
use http_body_util::BodyExt;
use llm_tower_core::{ChatRequest, LlmRequest, Message};
use llm_tower_gateway::http_limit::HttpRateLimitLayer;
use llm_tower_gateway::key::Header;
use llm_tower_gateway::openai_error::ApiError;
use llm_tower_layers::builder::ServiceBuilderExt;
use llm_tower_layers::rate_limit::Algorithm;
use llm_tower_providers::mock::MockProvider;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

type Llm = BoxCloneSyncService<LlmRequest, llm_tower_core::LlmResponse, llm_tower_core::Error>;

async fn ask(State(llm): State<Llm>, body: String) -> Result<String, ApiError> {
    let req = LlmRequest::chat(ChatRequest::new("gpt-4o-mini", vec![Message::user(body)]));
    let resp = llm.oneshot(req).await?;
    Ok(resp
        .as_chat()
        .map(|c| c.text().into_owned())
        .unwrap_or_default())
}

fn app() -> Router {
    let llm: Llm = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .count_tokens()
            .service(MockProvider::new()),
    );
    let limit =
        HttpRateLimitLayer::new(Algorithm::sliding_window(3, Duration::from_secs(60)).unwrap())
            .name("per_user")
            .key(Header::new(HeaderName::from_static("x-api-user")));
    Router::new()
        .route("/ask", post(ask))
        .layer(limit)
        .with_state(llm)
}

fn request(user: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/ask");
    if let Some(u) = user {
        b = b.header("x-api-user", u);
    }
    b.body(Body::from("Tell me about towers.")).unwrap()
}

#[tokio::test]
async fn limit_holds_across_axum_clones_per_header_value() {
    let app = app();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        // A fresh clone per request, as axum's server does.
        let resp = app.clone().oneshot(request(Some("alice"))).await.unwrap();
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let h = resp.headers();
            let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry));
            assert_eq!(h["x-ratelimit-limit-requests"], "3");
            assert_eq!(h["x-ratelimit-remaining-requests"], "0");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        } else {
            let remaining = resp.headers()["x-ratelimit-remaining-requests"].clone();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(!body.is_empty(), "the handler called the llm stack");
            assert!(remaining.to_str().unwrap().parse::<u64>().unwrap() < 3);
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    // Another header value has its own limit; a request without the header is not keyed.
    let resp = app.clone().oneshot(request(Some("bob"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}
