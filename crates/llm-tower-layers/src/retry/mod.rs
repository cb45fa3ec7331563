//! Retry with exponential backoff, full jitter, `retry-after`, deadlines and a retry budget.
//!
//! ```
//! use std::time::Duration;
//! use llm_tower_layers::retry::RetryLayer;
//!
//! let retry = RetryLayer::new()
//!     .max_retries(3)
//!     .backoff(Duration::from_millis(200), Duration::from_secs(10))
//!     .retry_after_cap(Duration::from_secs(30));
//! # let _ = retry;
//! ```
//!
//! [`RetryPolicy`] is a `tower::retry::Policy`: it retries only what
//! `Error::is_retryable()` allows (rate limits, timeouts, transport errors, 5xx,
//! overloaded), waits `random(0, min(max, base * 2^n))` (full jitter), or the error's
//! `retry-after` when that is longer, and gives up when:
//! - the error is not retryable, or `max_retries` retries were made;
//! - the `retry-after` exceeds the cap (waiting that long helps nobody);
//! - the wait would end past the request's deadline;
//! - the retry budget ([`tower::retry::budget::TpsBudget`]) is empty: a failing provider
//!   gets at most a fixed share of retries on top of the normal traffic, not a storm.
//!
//! The number of attempts is written to `ResponseMeta::attempts` on success and to
//! `Error::attempts()` on the final error. Streams are retried only until their headers
//! arrive; an error in the middle of a stream reaches the caller.
//!
//! # Errors
//! The last attempt's error, with `attempts()` set.
//!
//! # Clone
//! The budget and the jitter generator are shared by all services the layer builds; the
//! attempt count is per request.

mod policy;

pub use policy::{Retry, RetryLayer, RetryPolicy};
