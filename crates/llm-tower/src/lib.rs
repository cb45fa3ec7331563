//! **llm-tower**: tower middleware for calling large language models.
//!
//! Every provider is a `tower::Service<LlmRequest>`; rate limiting, retry, token counting
//! and cost tracking are separate layers you stack with `ServiceBuilder`, next to your own.
//! This facade re-exports the crates of the workspace:
//!
//! | path | crate | what |
//! |---|---|---|
//! | `llm_tower::*` | `llm-tower-core` | requests, responses, streams, usage, money, errors, clock |
//! | [`layers`] | `llm-tower-layers` | rate_limit, retry, token_count, cost, timeout, trace, builder |
//! | `providers` | `llm-tower-providers` | OpenAI, Azure OpenAI, Anthropic, OpenAI-compatible, mock (feature `providers`, default) |
//! | `config` | `llm-tower-config` | the JSON config: `build_blocking`, `Config` (feature `config`) |
//! | `redis` | `llm-tower-redis` | rate-limit and budget stores shared by several instances (feature `redis`) |
//! | [`sync`] | here | a blocking client for callers without an async runtime |
//!
//! ```
//! use std::time::Duration;
//! use llm_tower::prelude::*;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), llm_tower::Error> {
//! let tracker = CostTracker::builder()
//!     .prices(PriceTable::new().with("gpt-4o-mini", ModelPrice::usd("0.15", "0.60")?))
//!     .budget(Budget::new("daily", BudgetScope::Global, Period::Day, Money::from_usd_str("0.50")?)?)
//!     .build()?;
//! // One type for the whole stack, to keep in a struct or in axum state.
//! let stack: BoxLlmService = ServiceBuilder::new()
//!     .count_tokens()
//!     .track_cost(tracker.clone())
//!     .llm_rate_limit(RateLimitLayer::new(Algorithm::sliding_window(60, Duration::from_secs(60))?).key(KeyBy::Caller))
//!     .llm_retry(RetryLayer::new())
//!     .boxed_llm()
//!     .service(MockProvider::new());
//! let resp = stack
//!     .oneshot(LlmRequest::chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("Hello!")])).with_caller("alice"))
//!     .await?;
//! println!("{} tokens, ${}", resp.usage.map_or(0, |u| u.total_tokens), resp.cost.unwrap_or_default());
//! # Ok(()) }
//! ```
//!
//! A streamed response is priced when it ends: the chunk that carries the usage carries
//! the cost too ([`ChatChunk::cost`]), and [`LlmResponse::stream_cost`] holds it once the
//! stream has ended, failed or been dropped.
//!
//! The layer order and what each layer reads and writes are documented in [`layers`].
//!
//! # Cargo features
//!
//! The layers (`llm_tower::layers`, the prelude's builder methods, [`BoxLlmService`],
//! [`sync::BlockingClient`]) are always there; they need no HTTP client and no Redis.
//!
//! | feature | default | brings |
//! |---|---|---|
//! | `providers` | yes | `llm_tower::providers`: OpenAI, Azure OpenAI, Anthropic, OpenAI-compatible and the mock, over one shared HTTP client (hyper, rustls) |
//! | `config` | no | `llm_tower::config`: the JSON config (`Config`, `build_blocking`), and `BlockingClient::from_config`; brings `providers` |
//! | `redis` | no | `llm_tower::redis`: rate-limit and budget stores on Redis; with `config`, the config's `redis` store |
//! | `full` | no | all of the above |
//!
//! `default-features = false` takes only the layers, for your own provider services.
//! An `axum` feature (`IntoResponse` for [`Error`], HTTP key extractors) comes with the
//! planned crate layout; until then `examples/axum_app.rs` shows the pattern.
#![forbid(unsafe_code)]

#[cfg(feature = "config")]
pub use llm_tower_config as config;
pub use llm_tower_core::*;
pub use llm_tower_layers as layers;
pub use llm_tower_layers::builder::{BoxLlmService, LlmServiceExt, ServiceBuilderExt};
#[cfg(feature = "providers")]
pub use llm_tower_providers as providers;
#[cfg(feature = "redis")]
pub use llm_tower_redis as redis;

pub mod sync;

/// The names most programs need.
pub mod prelude {
    pub use llm_tower_core::{
        CallerKey, ChatChunk, ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, LlmRequest,
        LlmResponse, Message, Money, Price, ResponseBody, StreamCost, Usage,
    };
    pub use llm_tower_layers::builder::{BoxLlmService, LlmServiceExt, ServiceBuilderExt};
    pub use llm_tower_layers::cost::{
        Budget, BudgetAlert, BudgetScope, CostTracker, ModelPrice, Period, PriceTable, Threshold,
    };
    pub use llm_tower_layers::provider_limits::{AdaptiveLimitLayer, AdaptiveMode};
    pub use llm_tower_layers::rate_limit::{Algorithm, KeyBy, Mode, RateLimitLayer};
    pub use llm_tower_layers::retry::RetryLayer;
    #[cfg(feature = "providers")]
    pub use llm_tower_providers::mock::MockProvider;
}

// The README's programs compile as written (`cargo test --doc` with the features they use).
#[cfg(all(doctest, feature = "config"))]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
