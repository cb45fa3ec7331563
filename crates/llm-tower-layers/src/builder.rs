//! [`ServiceBuilderExt`]: one method per llm-tower layer on `tower::ServiceBuilder`, and
//! [`BoxLlmService`]: a whole stack as one type you can name.
//!
//! The names do not collide with tower's own (`rate_limit`, `retry`, `timeout`) or
//! tower-http's (`trace`).
//!
//! A stack's type spells every layer
//! (`LlmTrace<CountTokens<TrackCost<RateLimit<Retry<..>>>>>`), so storing it in a struct
//! or in axum state means boxing it. [`ServiceBuilderExt::boxed_llm`] (last, before
//! `.service(..)`) or [`LlmServiceExt::boxed_llm`] (on a built service) give a
//! [`BoxLlmService`], which is `Clone + Send + Sync` and whose clones share every layer's
//! state:
//!
//! ```
//! use llm_tower_layers::builder::{BoxLlmService, ServiceBuilderExt};
//! use llm_tower_layers::cost::CostTracker;
//! # use llm_tower_core::{Error, LlmRequest, LlmResponse};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     llm: BoxLlmService,
//! }
//!
//! # fn main() -> Result<(), Error> {
//! # let provider = tower::service_fn(|_req: LlmRequest| async {
//! #     Err::<LlmResponse, _>(Error::internal("not called"))
//! # });
//! let state = AppState {
//!     llm: tower::ServiceBuilder::new()
//!         .llm_trace()
//!         .count_tokens()
//!         .track_cost(CostTracker::builder().build()?)
//!         .boxed_llm()
//!         .service(provider),
//! };
//! # let _ = state.llm.clone();
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::{Error, LlmRequest, LlmResponse};
use tower::layer::util::{Identity, Stack};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};

use crate::cache::ResponseCacheLayer;
use crate::cost::{CostTracker, TrackCostLayer};
use crate::provider_limits::AdaptiveLimitLayer;
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

    /// A response cache ([`ResponseCacheLayer`]).
    fn llm_cache(self, layer: ResponseCacheLayer) -> ServiceBuilder<Stack<ResponseCacheLayer, L>>;

    /// Cost tracking and budgets ([`TrackCostLayer`]).
    fn track_cost(self, tracker: CostTracker) -> ServiceBuilder<Stack<TrackCostLayer, L>>;

    /// A rate limit ([`RateLimitLayer`]).
    fn llm_rate_limit(self, layer: RateLimitLayer) -> ServiceBuilder<Stack<RateLimitLayer, L>>;

    /// Holds requests back while the provider's own limit is exhausted
    /// ([`AdaptiveLimitLayer`]); inside `llm_retry`, outside `llm_timeout`.
    fn adaptive_limits(
        self,
        layer: AdaptiveLimitLayer,
    ) -> ServiceBuilder<Stack<AdaptiveLimitLayer, L>>;

    /// Retries ([`RetryLayer`]).
    fn llm_retry(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>>;

    /// A per-attempt timeout that honours the request deadline ([`TimeoutLayer`]).
    fn llm_timeout(self, timeout: Duration) -> ServiceBuilder<Stack<TimeoutLayer, L>>;

    /// Boxes the whole stack built so far into a [`BoxLlmService`]. Call it last, right
    /// before `.service(provider)`, like tower's `boxed_clone_sync` (which needs a `Sync`
    /// future, which our layers' futures are not).
    fn boxed_llm(self) -> ServiceBuilder<Stack<BoxLlmLayer<L>, Identity>>;
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

    fn llm_cache(self, layer: ResponseCacheLayer) -> ServiceBuilder<Stack<ResponseCacheLayer, L>> {
        self.layer(layer)
    }

    fn track_cost(self, tracker: CostTracker) -> ServiceBuilder<Stack<TrackCostLayer, L>> {
        self.layer(TrackCostLayer::new(tracker))
    }

    fn llm_rate_limit(self, layer: RateLimitLayer) -> ServiceBuilder<Stack<RateLimitLayer, L>> {
        self.layer(layer)
    }

    fn adaptive_limits(
        self,
        layer: AdaptiveLimitLayer,
    ) -> ServiceBuilder<Stack<AdaptiveLimitLayer, L>> {
        self.layer(layer)
    }

    fn llm_retry(self, layer: RetryLayer) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(layer)
    }

    fn llm_timeout(self, timeout: Duration) -> ServiceBuilder<Stack<TimeoutLayer, L>> {
        self.layer(TimeoutLayer::new(timeout))
    }

    fn boxed_llm(self) -> ServiceBuilder<Stack<BoxLlmLayer<L>, Identity>> {
        ServiceBuilder::new().layer(BoxLlmLayer {
            inner: self.into_inner(),
        })
    }
}

/// Any llm-tower stack behind one type: a `Service<LlmRequest, Response = LlmResponse,
/// Error = Error>` that is `Clone + Send + Sync`. Clones share the state of every layer
/// inside (limits, budgets, counters).
pub type BoxLlmService = BoxCloneSyncService<LlmRequest, LlmResponse, Error>;

/// Wraps the layers `L` and boxes the service they build into a [`BoxLlmService`]
/// ([`ServiceBuilderExt::boxed_llm`]).
#[derive(Clone)]
pub struct BoxLlmLayer<L> {
    inner: L,
}

impl<L: fmt::Debug> fmt::Debug for BoxLlmLayer<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxLlmLayer")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<L> BoxLlmLayer<L> {
    /// Boxes what `inner` builds.
    pub fn new(inner: L) -> Self {
        BoxLlmLayer { inner }
    }
}

impl<S, L> Layer<S> for BoxLlmLayer<L>
where
    L: Layer<S>,
    L::Service:
        Service<LlmRequest, Response = LlmResponse, Error = Error> + Clone + Send + Sync + 'static,
    <L::Service as Service<LlmRequest>>::Future: Send + 'static,
{
    type Service = BoxLlmService;

    fn layer(&self, inner: S) -> BoxLlmService {
        BoxCloneSyncService::new(self.inner.layer(inner))
    }
}

/// [`boxed_llm`](LlmServiceExt::boxed_llm) on any built stack or provider.
pub trait LlmServiceExt: Sized {
    /// This service as a [`BoxLlmService`].
    fn boxed_llm(self) -> BoxLlmService;
}

impl<S> LlmServiceExt for S
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    fn boxed_llm(self) -> BoxLlmService {
        BoxCloneSyncService::new(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::cost::{CostTracker, ModelPrice, PriceTable};
    use llm_tower_core::{ChatChoice, ChatRequest, ChatResponse, Message, ResponseBody};
    use tower::ServiceExt;

    fn provider() -> impl Service<
        LlmRequest,
        Response = LlmResponse,
        Error = Error,
        Future = impl Future<Output = Result<LlmResponse, Error>> + Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static {
        tower::service_fn(|_req: LlmRequest| async {
            let chat = ChatResponse {
                extra: Default::default(),
                service_tier: None,
                id: "x".into(),
                model: "gpt-4o".into(),
                created: 0,
                choices: vec![ChatChoice {
                    extra: Default::default(),
                    logprobs: None,
                    index: 0,
                    message: Message::assistant("hi"),
                    finish_reason: Some("stop".into()),
                }],
                system_fingerprint: None,
                native: None,
            };
            Ok::<_, Error>(LlmResponse::new(ResponseBody::Chat(chat)))
        })
    }

    #[tokio::test]
    async fn both_boxing_methods_give_one_nameable_type_whose_clones_share_state() {
        let tracker = CostTracker::builder()
            .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
            .build()
            .unwrap();
        // Both traits in scope: the builder's method and the service's do not clash.
        let from_builder: BoxLlmService = ServiceBuilder::new()
            .llm_trace()
            .count_tokens()
            .track_cost(tracker.clone())
            .llm_retry(crate::retry::RetryLayer::new())
            .boxed_llm()
            .service(provider());
        let from_service: BoxLlmService = ServiceBuilder::new()
            .count_tokens()
            .track_cost(tracker.clone())
            .service(provider())
            .boxed_llm();
        let req = || LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]));
        for svc in [from_builder, from_service] {
            let resp = svc.clone().oneshot(req()).await.unwrap();
            assert!(resp.cost.is_some());
        }
        assert_eq!(tracker.snapshot().total.requests, 2);
    }
}
