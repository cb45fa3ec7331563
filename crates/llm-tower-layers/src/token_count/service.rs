//! [`CountTokens`].

use std::sync::Arc;
use std::task::{Context, Poll};

use llm_tower_core::{Error, LlmRequest, LlmResponse, TokenEstimate, UsageMeter};
use tower::Service;

use super::counter::TokenCounter;
use super::future::ResponseFuture;
use super::layer::CountTokensLayer;

/// The token-counting service made by [`CountTokensLayer`]; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct CountTokens<S> {
    inner: S,
    counter: Arc<dyn TokenCounter>,
}

impl<S> CountTokens<S> {
    /// Wraps `inner`, counting with `counter`.
    pub fn new<C: TokenCounter>(inner: S, counter: C) -> Self {
        CountTokens::from_arc(inner, Arc::new(counter))
    }

    /// Wraps `inner`, counting with an already shared counter.
    pub fn from_arc(inner: S, counter: Arc<dyn TokenCounter>) -> Self {
        CountTokens { inner, counter }
    }

    /// A layer for this service, counting with `counter`.
    pub fn layer<C: TokenCounter>(counter: C) -> CountTokensLayer {
        CountTokensLayer::new(counter)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The counter.
    pub fn counter(&self) -> &Arc<dyn TokenCounter> {
        &self.counter
    }
}

impl<S> Service<LlmRequest> for CountTokens<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: LlmRequest) -> Self::Future {
        let prompt = self.counter.count_prompt(&req.body);
        req.ctx.token_estimate = Some(TokenEstimate {
            prompt_tokens: prompt.tokens,
            max_output_tokens: req.max_output_tokens(),
            output_choices: req.output_choices(),
            source: prompt.source,
        });
        let meter = UsageMeter::new();
        req.ctx.meter = Some(meter.clone());
        let model = req.model().to_owned();
        let counter = Arc::clone(&self.counter);
        ResponseFuture::new(self.inner.call(req), counter, model, prompt, meter)
    }
}
