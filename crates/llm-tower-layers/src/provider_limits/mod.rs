//! Adaptive provider limits: hold requests back while the provider's own rate limit is
//! exhausted, instead of sending them to collect a 429.
//!
//! Providers report their limits with every answer (`x-ratelimit-*` of OpenAI and Azure,
//! `anthropic-ratelimit-*`, `retry-after(-ms)` on a 429); the providers of
//! `llm-tower-providers` parse them into [`ProviderLimits`](llm_tower_core::ProviderLimits)
//! (`ResponseMeta::provider_limits`, and `Error::limits` / `Error::retry_after` on errors).
//! [`AdaptiveLimitLayer`] reads them after every call and, per target key:
//!
//! - counts down between two reports: each admitted request takes 1 from the requests
//!   window and its token estimate (prompt + `max_tokens`, when the token-count layer runs
//!   outside) from the token windows; a report replaces the window, minus the requests
//!   still in flight (which the provider may not have counted yet);
//! - when nothing is left, holds further requests until the window's reset; when the reset
//!   is unknown, until the provider answers a request in flight;
//! - when the provider reports `remaining: 0` with a reset, or answers 429 with a
//!   retry-after, blocks the target until then in the [`AdaptiveLimitStore`], where other
//!   instances sharing the store see it too.
//!
//! A target the layer has never heard from is probed: in `Wait` mode one request goes and
//! the others wait for its answer, which teaches the layer the limits (a burst at a cold
//! start cannot overrun a window it does not know yet). If that first answer takes longer
//! than `max_wait`, the others go anyway. `Reject` mode does not probe. A reset is taken as
//! "full again" (the providers' own meaning); waiting until the whole reset is
//! conservative for providers that refill gradually.
//!
//! ```
//! use std::time::Duration;
//! use llm_tower_layers::provider_limits::{AdaptiveLimitLayer, AdaptiveMode};
//!
//! // In front of one target: wait for the provider's reset, at most 10 s.
//! let layer = AdaptiveLimitLayer::new()
//!     .key("openai-eu/gpt-4o")
//!     .mode(AdaptiveMode::Wait { max_wait: Duration::from_secs(10) });
//! # let _ = layer;
//! ```
//!
//! # Keys
//! State is kept per target key. With [`AdaptiveLimitLayer::key`] (what the config does)
//! it is one fixed key per target, `{provider}/{model}`; by default the key is
//! `{provider}/{model}` of the request (`RequestContext::provider`). The provider name
//! stands for its API key or deployment: in the config one provider entry has one key, so
//! two keys of one account are two providers, tracked apart.
//!
//! # Modes
//! - [`AdaptiveMode::Wait`] (default, 30 s at most): wait until the reset, re-check, and
//!   send. If the reset is at or past the request's deadline, or further than `max_wait`,
//!   fail at once.
//! - [`AdaptiveMode::Reject`]: fail at once.
//!
//! # Errors
//! A request held back fails with a retryable `RateLimited` whose origin is
//! [`LimitOrigin::Provider`](llm_tower_core::LimitOrigin), the retry-after when the reset
//! is known, and the code [`REFUSAL_CODE`]: the retry layer does not retry it (this layer
//! already chose not to wait), so a router goes on to its next target. `Store` when the
//! store cannot be read; everything else comes from the inner service.
//!
//! # Where it sits
//! Inside retry, outside the per-attempt timeout: every attempt's answer (a 429 included)
//! updates the state, a wait happens before the attempt's timeout starts, and waiting is
//! not an attempt (it spends no retry budget).
//!
//! # Clone
//! State lives behind an `Arc` made by the layer: every service it builds and every clone
//! share it. Blocks live in the store (in memory by default; Redis in `llm-tower-redis`).
//!
//! # Metrics
//! - `llm_tower_provider_limit_wait_seconds{target}` (histogram): requests that waited,
//!   and for how long (`_count`, `_sum`).
//! - `llm_tower_provider_limit_rejected_total{target, reason}`: requests held back with an
//!   error (`reject_mode`, `deadline`, `max_wait`).
//! - `llm_tower_provider_limit_blocks_total{target, cause}`: blocks learned from the
//!   provider (`exhausted`, `retry_after`).
//! - `llm_tower_provider_limit_blocked_until_seconds{target}` (gauge): Unix time until
//!   which the target was last blocked; blocked targets now:
//!   `count(llm_tower_provider_limit_blocked_until_seconds > time())`.

mod layer;
mod service;
mod state;
mod store;

pub use layer::{AdaptiveLimitLayer, AdaptiveMode, DEFAULT_MAX_WAIT};
pub use service::AdaptiveLimit;
pub use store::{AdaptiveLimitStore, MemoryAdaptiveStore, conformance};

/// The error code of a request this layer held back (`Error::code`).
pub const REFUSAL_CODE: &str = "provider_limit_reached";
