//! Rate limits for plain HTTP routes: llm-tower's rate-limit stores and algorithms applied
//! to `http::Request`s, keyed by a header (or any [`HttpKeyExtractor`](crate::key::HttpKeyExtractor)).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use http::HeaderName;
//! use llm_tower_gateway::http_limit::HttpRateLimitLayer;
//! use llm_tower_gateway::key::Header;
//! use llm_tower_layers::rate_limit::Algorithm;
//!
//! # fn main() -> Result<(), llm_tower_core::Error> {
//! // 3 requests per minute per `x-api-user`.
//! let limit = HttpRateLimitLayer::new(Algorithm::sliding_window(3, Duration::from_secs(60))?)
//!     .name("per_user")
//!     .key(Header::new(HeaderName::from_static("x-api-user")));
//! let app: Router = Router::new().route("/", get(|| async { "hello" })).layer(limit);
//! # let _ = app;
//! # Ok(()) }
//! ```
//!
//! Admitted responses carry `x-ratelimit-{limit,remaining,reset}-requests`; refused
//! requests get `429` in OpenAI's error shape with `Retry-After` (seconds, rounded up),
//! `retry-after-ms` and the same headers, without reaching the inner service.
//!
//! # Modes
//! [`Mode::Reject`](llm_tower_layers::rate_limit::Mode::Reject) answers 429 at once;
//! [`Mode::Wait`](llm_tower_layers::rate_limit::Mode::Wait) holds the request until its
//! slot (429 when the slot is further than `max_wait`).
//!
//! # Errors
//! The inner service's errors pass through. A failing store (e.g. Redis down) answers 503:
//! the limit fails closed, never silently open.
//!
//! # Clone
//! The state lives in the store behind an `Arc` made by the layer: every service it builds
//! and every clone of those (axum clones per request) share one limit.

mod layer;
mod service;

pub use layer::HttpRateLimitLayer;
pub use service::HttpRateLimit;
