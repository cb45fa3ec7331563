//! Two instances, one limit: two service stacks rate-limited through one Redis.
//!
//! Each stack stands for a separate gateway instance: its own `RateLimitLayer`, its own
//! `RedisRateLimitStore` and connection. Both use the limiter name `shared_rpm` and the same
//! key prefix, so they draw from one budget of 5 requests per minute: 10 requests spread over
//! the two stacks see 5 admitted in total, not 5 each.
//!
//! ```text
//! redis-server &            # or: docker run -p 6379:6379 redis:7
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example redis_shared_limits
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llm_tower_core::{
    ChatChoice, ChatRequest, ChatResponse, Error, LlmRequest, LlmResponse, Message, ResponseBody,
};
use llm_tower_layers::rate_limit::{Algorithm, RateLimitLayer};
use llm_tower_redis::{FailurePolicy, RedisConfig, RedisConnection, RedisRateLimitStore};
use tower::{Layer, ServiceExt, service_fn};

/// A stand-in for a provider: answers every chat request at once.
async fn echo_model(req: LlmRequest) -> Result<LlmResponse, Error> {
    Ok(LlmResponse::new(ResponseBody::Chat(ChatResponse {
        extra: Default::default(),
        service_tier: None,
        id: "chatcmpl-example".to_owned(),
        model: req.model().to_owned(),
        created: 0,
        choices: vec![ChatChoice {
            extra: Default::default(),
            logprobs: None,
            index: 0,
            message: Message::assistant("hello"),
            finish_reason: Some("stop".to_owned()),
        }],
        system_fingerprint: None,
        native: None,
    })))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    // A fresh prefix per run, so running the example twice within a minute starts afresh.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let config = RedisConfig::new(url.as_str())
        .prefix(format!("llm-tower-example:{run}"))
        .failure_policy(FailurePolicy::FailClosed)
        .timeout(Duration::from_millis(500));

    // Is Redis there at all?
    if let Err(e) = RedisConnection::new(&config)?.ping().await {
        println!("Redis is not reachable at {} ({e}).", config.redacted_url());
        println!("Start one with `redis-server` (or `docker run -p 6379:6379 redis:7`),");
        println!("or point REDIS_URL at yours, then run this example again.");
        return Ok(());
    }

    let limit = Algorithm::sliding_window(5, Duration::from_secs(60))?;
    // Two "instances": separate layers, stores and connections; same limiter name and prefix.
    let stacks = (0..2)
        .map(|_| {
            let store = RedisRateLimitStore::new(&config)?;
            let layer = RateLimitLayer::new(limit)
                .name("shared_rpm")
                .store(Arc::new(store));
            Ok(layer.layer(service_fn(echo_model)))
        })
        .collect::<Result<Vec<_>, Error>>()?;

    let mut admitted = [0usize; 2];
    for i in 0..10 {
        let instance = i % 2;
        let req = LlmRequest::chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("hi")]));
        match stacks[instance].clone().oneshot(req).await {
            Ok(resp) => {
                admitted[instance] += 1;
                let text = resp
                    .as_chat()
                    .map(|c| c.text().into_owned())
                    .unwrap_or_default();
                println!("request {i:>2} via instance {instance}: admitted ({text})");
            }
            Err(e) => println!("request {i:>2} via instance {instance}: {e}"),
        }
    }
    println!(
        "admitted: instance 0 = {}, instance 1 = {}, together = {} (limit 5 per minute, shared)",
        admitted[0],
        admitted[1],
        admitted[0] + admitted[1]
    );
    Ok(())
}
