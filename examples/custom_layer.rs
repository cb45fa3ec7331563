//! A user's own layer between llm-tower's layers.
//!
//! Run: `cargo run -p llm-tower --example custom_layer`
//!
//! `PromptCapLayer` sits after `count_tokens` (so it can read the token estimate from the
//! request context) and before `track_cost` (so a refused request never reserves budget).
//! It refuses prompts above a token cap and tags the request in `extensions` for any
//! later layer of your own.

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use llm_tower::prelude::*;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// Refuses requests whose prompt estimate is above `max_prompt_tokens`.
#[derive(Clone, Debug)]
struct PromptCapLayer {
    max_prompt_tokens: u64,
}

#[derive(Clone, Debug)]
struct PromptCap<S> {
    inner: S,
    max_prompt_tokens: u64,
}

/// What the cap saw, left in `extensions` for later layers.
#[derive(Clone, Debug)]
struct CheckedPrompt(u64);

impl<S> Layer<S> for PromptCapLayer {
    type Service = PromptCap<S>;
    fn layer(&self, inner: S) -> PromptCap<S> {
        PromptCap {
            inner,
            max_prompt_tokens: self.max_prompt_tokens,
        }
    }
}

impl<S> Service<LlmRequest> for PromptCap<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        let Some(estimate) = req.ctx.token_estimate else {
            return async { Err(Error::config("PromptCap needs count_tokens outside it")) }.boxed();
        };
        if estimate.prompt_tokens > self.max_prompt_tokens {
            let msg = format!(
                "prompt has {} tokens, the cap is {}",
                estimate.prompt_tokens, self.max_prompt_tokens
            );
            return async move { Err(Error::invalid_request(msg)) }.boxed();
        }
        req.extensions.insert(CheckedPrompt(estimate.prompt_tokens));
        self.inner.call(req).boxed()
    }
}

/// Another layer of yours, further in, reads what the cap left in `extensions`.
#[derive(Clone, Debug)]
struct LogCheckedLayer;

#[derive(Clone, Debug)]
struct LogChecked<S>(S);

impl<S> Layer<S> for LogCheckedLayer {
    type Service = LogChecked<S>;
    fn layer(&self, inner: S) -> LogChecked<S> {
        LogChecked(inner)
    }
}

impl<S> Service<LlmRequest> for LogChecked<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error>,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        if let Some(CheckedPrompt(n)) = req.extensions.get::<CheckedPrompt>() {
            println!("  (inner layer: prompt of {n} tokens passed the cap)");
        }
        self.0.call(req)
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let tracker = CostTracker::builder()
        .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00")?))
        .build()?;
    let stack = ServiceBuilder::new()
        .count_tokens()
        .layer(PromptCapLayer {
            max_prompt_tokens: 40,
        })
        .track_cost(tracker.clone())
        .layer(LogCheckedLayer)
        .llm_retry(RetryLayer::new())
        .llm_timeout(Duration::from_secs(30))
        .service(MockProvider::new());

    let short = LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("Hi there")]));
    let resp = stack.clone().oneshot(short).await?;
    println!(
        "short prompt: answered, cost ${}",
        resp.cost.unwrap_or_default()
    );

    let long = LlmRequest::chat(ChatRequest::new(
        "gpt-4o",
        vec![Message::user("word ".repeat(200))],
    ));
    match stack.oneshot(long).await {
        Ok(_) => println!("long prompt: answered (unexpected)"),
        Err(e) => println!("long prompt: refused by the custom layer: {e}"),
    }
    println!(
        "requests that reached the cost layer: {}",
        tracker.snapshot().total.requests
    );
    Ok(())
}
