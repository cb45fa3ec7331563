//! The store trait between the algorithm and where its state lives.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use llm_tower_core::Error;

use super::algorithm::{Algorithm, Decision};

/// A boxed future returned by stores.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// One rate-limit decision to make.
#[derive(Debug, Clone, Copy)]
pub struct Acquire<'a> {
    /// The limiter's name (a namespace: two limiters never share state by accident).
    pub scope: &'a str,
    /// The key within the limiter (caller, model, ... or `""` for a global limit).
    pub key: &'a str,
    /// The algorithm and its parameters.
    pub algorithm: &'a Algorithm,
    /// The request's weight (1 for request limits, the token estimate for token limits).
    pub weight: u64,
    /// How long the caller may wait for a slot (zero in `Reject` mode).
    pub max_wait: Duration,
}

/// Where rate-limit state lives. One call is one atomic decision: check, and record the
/// weight if admitted (at the future slot time when the caller waits).
///
/// Implementations: [`MemoryStore`](super::MemoryStore) here, Redis in `llm-tower-redis`.
/// Every store must pass [`conformance`](super::conformance).
pub trait RateLimitStore: Send + Sync + fmt::Debug + 'static {
    /// Makes one decision, atomically.
    ///
    /// # Errors
    /// `Store` when the state cannot be read or written.
    fn acquire<'a>(&'a self, req: Acquire<'a>) -> StoreFuture<'a, Decision>;
}

impl<T: RateLimitStore + ?Sized> RateLimitStore for std::sync::Arc<T> {
    fn acquire<'a>(&'a self, req: Acquire<'a>) -> StoreFuture<'a, Decision> {
        (**self).acquire(req)
    }
}
