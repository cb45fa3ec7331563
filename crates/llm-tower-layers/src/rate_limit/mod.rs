//! Rate limiting: sliding window and leaky bucket, by requests or by tokens, keyed.
//!
//! ```
//! use std::time::Duration;
//! use llm_tower_layers::rate_limit::{Algorithm, KeyBy, Mode, RateLimitLayer};
//!
//! # fn main() -> Result<(), llm_tower_core::Error> {
//! // 60 requests per minute per caller, refused beyond that.
//! let per_caller = RateLimitLayer::new(Algorithm::sliding_window(60, Duration::from_secs(60))?)
//!     .name("per_caller")
//!     .key(KeyBy::Caller);
//! // 30,000 tokens per minute towards the provider, bursting to 10,000, waiting up to 5 s.
//! let provider_tpm = RateLimitLayer::new(Algorithm::leaky_bucket(30_000, Duration::from_secs(60), 10_000)?)
//!     .name("provider_tpm")
//!     .by_tokens()
//!     .mode(Mode::Wait { max_wait: Duration::from_secs(5) });
//! # let _ = (per_caller, provider_tpm);
//! # Ok(()) }
//! ```
//!
//! # Algorithms
//! - [`Algorithm::SlidingWindow`]: an exact sliding log. In every closed window
//!   `[t - window, t]` the admitted weight is at most `limit`; a denied request is not
//!   recorded; the retry-after is the exact time until enough weight has left the window.
//! - [`Algorithm::LeakyBucket`]: GCRA with `rate` per `per` and a `burst`, in exact
//!   arithmetic: from idle exactly `burst` units pass at once, and the long-run rate is
//!   exactly `rate / per` even when `per / rate` is not a whole number of nanoseconds.
//!
//! # Modes
//! - [`Mode::Reject`]: fail at once with `RateLimited` and the exact retry-after.
//! - [`Mode::Wait`]: take the next free slot (first come, first served per key) and wait
//!   for it; reject at once if the slot is further away than `max_wait` or the request's
//!   deadline. A waiter that is dropped keeps its slot (the limit never overshoots).
//!
//! A request heavier than the whole limit (or burst) fails at once with
//! `InvalidRequest`: no wait could ever admit it.
//!
//! # Errors
//! `RateLimited` (with `retry_after` and the limit in `Error::limits`), `InvalidRequest`
//! for an impossible weight, `Config` when limiting by tokens without the token-count
//! layer outside or when an [`Algorithm`] built directly has invalid parameters (see
//! [`Algorithm::validate`]), and whatever the store returns (`Store`).
//!
//! # Clone
//! The state lives in the store, behind an `Arc` made by the layer: every service the layer
//! builds and every clone of those services share one limit.
//!
//! # Stores
//! [`RateLimitStore`] separates the decision from where state lives. [`MemoryStore`] keeps
//! it in this process; `llm-tower-redis` shares it between instances. Every store must pass
//! [`conformance::run`].

mod algorithm;
pub mod conformance;
mod key;
mod layer;
mod memory;
mod service;
mod store;

pub use algorithm::{Algorithm, Decision, Gcra, SlidingLog};
pub use key::{KeyBy, KeyExtractor};
pub use layer::{Mode, RateLimitLayer, Unit};
pub use memory::MemoryStore;
pub use service::RateLimit;
pub use store::{Acquire, RateLimitStore, StoreFuture};
