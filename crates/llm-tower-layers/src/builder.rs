//! [`ServiceBuilderExt`]: one method per llm-tower layer on `tower::ServiceBuilder`.
//!
//! The names do not collide with tower's own (`rate_limit`, `retry`, `timeout`) or
//! tower-http's (`trace`).

use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use tower::layer::util::Stack;

use crate::cost::{CostTracker, TrackCostLayer};
use crate::rate_limit::RateLimitLayer;
use crate::retry::RetryLayer;
use crate::timeout::TimeoutLayer;
use crate::token_count::{CountTokensLayer, TokenCounter};
use crate::trace::LlmTraceLayer;

/// Adds llm-tower's layers to a `ServiceBuilder`. See the crate docs for the order.
pub trait ServiceBuilderExt<L>: Sized {
    /// A `gen_ai.client` span and metrics per request ([`LlmTraceLayer`]).
    fn llm_trace(self) -> ServiceBuilder<Stack<LlmTraceLayer, L>>;

    /// Token counting with the default tokenizers ([`CountTokensLayer`]).
    fn count_tokens(self) -> ServiceBuilder<Stack<CountTokensLayer, L>>;

    /// Token counting with your own counter.
    fn count_tokens_with(
        self,
        counter: Arc<dyn TokenCounter>,
    ) -> ServiceBuilder<Stack<CountTokensLayer, L>>;

    /// Cost tracking and budgets ([`TrackCostLayer`]).
    fn track_cost(self, tracker: CostTracker) -> ServiceBuilder<Stack<TrackCostLayer, L>>;

    /// A rate limit ([`RateLimitLayer`]).
    fn llm_rate_limit(self, layer: RateLimitLayer) -> ServiceBuilder<Stack<RateLimitLayer, L>>;

    /// Retries ([`RetryLayer`]).
    fn llm_retry(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>>;

    /// A per-attempt timeout that honours the request deadline ([`TimeoutLayer`]).
    fn llm_timeout(self, timeout: Duration) -> ServiceBuilder<Stack<TimeoutLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn llm_trace(self) -> ServiceBuilder<Stack<LlmTraceLayer, L>> {
        self.layer(LlmTraceLayer::new())
    }

    fn count_tokens(self) -> ServiceBuilder<Stack<CountTokensLayer, L>> {
        self.layer(CountTokensLayer::default())
    }

    fn count_tokens_with(
        self,
        counter: Arc<dyn TokenCounter>,
    ) -> ServiceBuilder<Stack<CountTokensLayer, L>> {
        self.layer(CountTokensLayer::new(counter))
    }

    fn track_cost(self, tracker: CostTracker) -> ServiceBuilder<Stack<TrackCostLayer, L>> {
        self.layer(TrackCostLayer::new(tracker))
    }

    fn llm_rate_limit(self, layer: RateLimitLayer) -> ServiceBuilder<Stack<RateLimitLayer, L>> {
        self.layer(layer)
    }

    fn llm_retry(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(layer)
    }

    fn llm_timeout(self, timeout: Duration) -> ServiceBuilder<Stack<TimeoutLayer, L>> {
        self.layer(TimeoutLayer::new(timeout))
    }
}
