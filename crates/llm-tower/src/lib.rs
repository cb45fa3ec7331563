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
//! | [`providers`] | `llm-tower-providers` | OpenAI, Azure OpenAI, Anthropic, OpenAI-compatible, mock |
//! | [`redis`] | `llm-tower-redis` | rate-limit and budget stores shared by several instances |
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
//!     .budget(Budget::new("daily", BudgetScope::Global, Period::Day, Money::from_usd(5))?)
//!     .build()?;
//! let stack = ServiceBuilder::new()
//!     .count_tokens()
//!     .track_cost(tracker.clone())
//!     .llm_rate_limit(RateLimitLayer::new(Algorithm::sliding_window(60, Duration::from_secs(60))?).key(KeyBy::Caller))
//!     .llm_retry(RetryLayer::new())
//!     .service(MockProvider::new());
//! let resp = stack
//!     .oneshot(LlmRequest::chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("Hello!")])).with_caller("alice"))
//!     .await?;
//! println!("{} tokens, ${}", resp.usage.map_or(0, |u| u.total_tokens), resp.cost.unwrap_or_default());
//! # Ok(()) }
//! ```
//!
//! The layer order and what each layer reads and writes are documented in
//! [`layers`](llm_tower_layers).
#![forbid(unsafe_code)]

pub use llm_tower_core::*;
pub use llm_tower_layers as layers;
pub use llm_tower_providers as providers;
pub use llm_tower_redis as redis;

pub mod sync;

/// The names most programs need.
pub mod prelude {
    pub use llm_tower_core::{
        CallerKey, ChatChunk, ChatRequest, ChatResponse, Error, ErrorKind, LlmRequest, LlmResponse,
        Message, Money, Price, ResponseBody, Usage,
    };
    pub use llm_tower_layers::builder::ServiceBuilderExt;
    pub use llm_tower_layers::cost::{
        Budget, BudgetAlert, BudgetScope, CostTracker, ModelPrice, Period, PriceTable, Threshold,
    };
    pub use llm_tower_layers::rate_limit::{Algorithm, KeyBy, Mode, RateLimitLayer};
    pub use llm_tower_layers::retry::RetryLayer;
    pub use llm_tower_providers::mock::MockProvider;
}
