//! Observability: a span per request with OpenTelemetry GenAI attributes, and metrics.
//!
//! The span is `gen_ai.client` (level INFO) with `gen_ai.operation.name`,
//! `gen_ai.request.model`, `gen_ai.provider.name`, `gen_ai.response.model`,
//! `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`, `llm_tower.cost_usd`,
//! `llm_tower.caller`, `llm_tower.attempts`, `llm_tower.outcome` and `error.type`. The other
//! layers log inside it: rate-limit refusals and waits, each retry with its delay and
//! cause, budget alerts.
//!
//! Metrics go through the [`metrics`] facade, so any exporter can serve them (the gateway
//! serves Prometheus):
//! - `gen_ai.client.operation.duration` (histogram, seconds; labels
//!   `gen_ai.operation.name`, `gen_ai.request.model`, `llm_tower.outcome`),
//! - `gen_ai.client.token.usage` (histogram, tokens; label `gen_ai.token.type` = input|output),
//! - `llm_tower_requests_total` (counter; labels model, outcome),
//! - from the other layers: `llm_tower_rate_limited_total`, `llm_tower_rate_limit_wait_seconds`,
//!   `llm_tower_retries_total`, `llm_tower_retry_budget_exhausted_total`,
//!   `llm_tower_budget_alerts_total`, `llm_tower_budget_refusals_total`,
//!   `llm_tower_cost_nano_usd_total`.
//!
//! For a stream the span and the duration end with the stream, and usage and cost are
//! taken from the chunk that carries the usage.
//!
//! # Label cardinality
//! The model a request names becomes a metric label. Where callers are untrusted (a
//! gateway), bound the label set with [`LlmTraceLayer::label_models`]: a name outside the
//! set is labelled `other`, so invented model names cannot create new series. The span
//! always records the requested name.
//!
//! # Clone
//! Stateless (the label set is shared behind an `Arc`).

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::future::BoxFuture;
use llm_tower_core::{
    ChatChunk, ChatStream, Error, ErrorKind, LimitOrigin, LlmRequest, LlmResponse, ResponseBody,
    SharedClock, TokioClock, Usage,
};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::{Instrument, Span, field::Empty};

use crate::classify::Outcome;

/// Builds [`LlmTrace`] services.
#[derive(Clone, Debug)]
pub struct LlmTraceLayer {
    clock: SharedClock,
    label_models: Option<Arc<HashSet<String>>>,
}

/// The metric label of a model outside [`LlmTraceLayer::label_models`].
pub const OTHER_MODEL: &str = "other";

impl Default for LlmTraceLayer {
    fn default() -> Self {
        LlmTraceLayer::new()
    }
}

impl LlmTraceLayer {
    /// A trace layer on the tokio clock.
    pub fn new() -> Self {
        LlmTraceLayer {
            clock: TokioClock::shared(),
            label_models: None,
        }
    }

    /// Only these model names become `gen_ai.request.model` metric labels; any other
    /// name is labelled [`OTHER_MODEL`]. Without it every requested name is a label.
    #[must_use]
    pub fn label_models<I, M>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: Into<String>,
    {
        self.label_models = Some(Arc::new(models.into_iter().map(Into::into).collect()));
        self
    }

    /// Uses `clock` for durations.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl<S> Layer<S> for LlmTraceLayer {
    type Service = LlmTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LlmTrace {
            inner,
            clock: self.clock.clone(),
            label_models: self.label_models.clone(),
        }
    }
}

/// The service built by [`LlmTraceLayer`].
#[derive(Clone, Debug)]
pub struct LlmTrace<S> {
    inner: S,
    clock: SharedClock,
    label_models: Option<Arc<HashSet<String>>>,
}

impl<S> LlmTrace<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

struct Labels {
    operation: &'static str,
    /// The metric label: the requested model, or [`OTHER_MODEL`] outside the label set.
    model: String,
}

impl<S> Service<LlmRequest> for LlmTrace<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let requested = req.model();
        let labels = Labels {
            operation: req.operation().as_str(),
            model: match &self.label_models {
                Some(known) if !known.contains(requested) => OTHER_MODEL.to_owned(),
                _ => requested.to_owned(),
            },
        };
        let span = tracing::info_span!(
            "gen_ai.client",
            gen_ai.operation.name = labels.operation,
            gen_ai.request.model = %requested,
            gen_ai.provider.name = Empty,
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            llm_tower.request_id = %req.ctx.request_id,
            llm_tower.caller = req.ctx.caller.as_ref().map(|c| c.as_str()).unwrap_or(""),
            llm_tower.cost_usd = Empty,
            llm_tower.attempts = Empty,
            llm_tower.outcome = Empty,
            error.type = Empty,
        );
        // The provider is recorded once: the one the request names (a router sets it),
        // else the one that answered.
        let provider_known = req.ctx.provider.is_some();
        if let Some(p) = &req.ctx.provider {
            span.record("gen_ai.provider.name", &**p);
        }
        let clock = self.clock.clone();
        let start = clock.now();
        let fut = self.inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let result = fut.await;
            match result {
                Ok(mut resp) => {
                    if let Some(m) = &resp.meta.model {
                        span.record("gen_ai.response.model", m.as_str());
                    }
                    if !provider_known && let Some(p) = &resp.meta.provider {
                        span.record("gen_ai.provider.name", &**p);
                    }
                    if resp.meta.attempts > 0 {
                        span.record("llm_tower.attempts", resp.meta.attempts);
                    }
                    match std::mem::replace(
                        &mut resp.body,
                        ResponseBody::Stream(Box::pin(futures_util::stream::empty())),
                    ) {
                        ResponseBody::Stream(inner) => {
                            resp.body = ResponseBody::Stream(Box::pin(TraceStream {
                                inner,
                                state: Some(Finish {
                                    span,
                                    labels,
                                    clock,
                                    start,
                                }),
                            }));
                        }
                        body => {
                            resp.body = body;
                            if let Some(c) = resp.cost {
                                span.record("llm_tower.cost_usd", c.to_usd_f64());
                            }
                            Finish {
                                span,
                                labels,
                                clock,
                                start,
                            }
                            .done(
                                resp.usage.as_ref(),
                                Outcome::Success,
                                None,
                            );
                        }
                    }
                    Ok(resp)
                }
                Err(e) => {
                    if e.attempts() > 0 {
                        span.record("llm_tower.attempts", e.attempts());
                    }
                    Finish {
                        span,
                        labels,
                        clock,
                        start,
                    }
                    .done(None, Outcome::of_error(&e), Some(&e));
                    Err(e)
                }
            }
        })
    }
}

struct Finish {
    span: Span,
    labels: Labels,
    clock: SharedClock,
    start: std::time::Instant,
}

impl Finish {
    fn done(self, usage: Option<&Usage>, outcome: Outcome, error: Option<&Error>) {
        let elapsed = self.clock.now().saturating_duration_since(self.start);
        let span = &self.span;
        span.record("llm_tower.outcome", outcome.as_str());
        if let Some(u) = usage {
            span.record("gen_ai.usage.input_tokens", u.prompt_tokens);
            span.record("gen_ai.usage.output_tokens", u.completion_tokens);
            let model = self.labels.model.clone();
            metrics::histogram!("gen_ai.client.token.usage", "gen_ai.token.type" => "input", "gen_ai.request.model" => model.clone())
                .record(u.prompt_tokens as f64);
            metrics::histogram!("gen_ai.client.token.usage", "gen_ai.token.type" => "output", "gen_ai.request.model" => model)
                .record(u.completion_tokens as f64);
        }
        if let Some(e) = error {
            span.record("error.type", e.label());
        }
        metrics::histogram!(
            "gen_ai.client.operation.duration",
            "gen_ai.operation.name" => self.labels.operation,
            "gen_ai.request.model" => self.labels.model.clone(),
            "llm_tower.outcome" => outcome.as_str()
        )
        .record(elapsed.as_secs_f64());
        metrics::counter!("llm_tower_requests_total", "gen_ai.request.model" => self.labels.model, "llm_tower.outcome" => outcome.as_str())
            .increment(1);
        span.in_scope(|| match error {
            None => tracing::info!(elapsed_ms = elapsed.as_secs_f64() * 1e3, "llm request finished"),
            // Our own refusals (limits, budgets, bad requests) are counted in the metrics
            // and logged at debug: under load they come by the thousand per second.
            Some(e) if is_refusal(e) => tracing::debug!(elapsed_ms = elapsed.as_secs_f64() * 1e3, error = %e, "llm request refused"),
            Some(e) => tracing::warn!(elapsed_ms = elapsed.as_secs_f64() * 1e3, error = %e, "llm request failed"),
        });
    }
}

/// A refusal by the stack itself (a local rate limit, a budget, an invalid request), as
/// opposed to a failure of the provider.
fn is_refusal(e: &Error) -> bool {
    match e.kind() {
        ErrorKind::RateLimited => e.origin() != Some(LimitOrigin::Provider),
        ErrorKind::BudgetExceeded | ErrorKind::InvalidRequest => true,
        _ => false,
    }
}

pin_project! {
    struct TraceStream {
        #[pin]
        inner: ChatStream,
        state: Option<Finish>,
    }

    impl PinnedDrop for TraceStream {
        fn drop(this: Pin<&mut Self>) {
            if let Some(f) = this.project().state.take() {
                f.done(None, Outcome::Failure, Some(&Error::internal("stream dropped before its end")));
            }
        }
    }
}

impl Stream for TraceStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = match this.inner.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &item {
            Some(Ok(chunk)) => {
                if let Some(u) = chunk.usage
                    && let Some(f) = this.state.take()
                {
                    if let Some(c) = chunk.cost {
                        f.span.record("llm_tower.cost_usd", c.to_usd_f64());
                    }
                    f.done(Some(&u), Outcome::Success, None);
                }
            }
            Some(Err(e)) => {
                if let Some(f) = this.state.take() {
                    f.done(None, Outcome::of_error(e), Some(e));
                }
            }
            None => {
                if let Some(f) = this.state.take() {
                    f.done(None, Outcome::Success, None);
                }
            }
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use llm_tower_core::{
        ChatChoice, ChatRequest, ChatResponse, Message, ResponseBody, Usage, UsageSource,
    };
    use metrics_util::debugging::DebuggingRecorder;
    use tower::ServiceExt;

    fn answer() -> LlmResponse {
        let chat = ChatResponse {
            extra: Default::default(),
            service_tier: None,
            id: "x".into(),
            model: "m".into(),
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
        let mut r = LlmResponse::new(ResponseBody::Chat(chat));
        r.usage = Some(Usage::new(3, 1, UsageSource::Provider));
        r
    }

    fn model_labels(layer: LlmTraceLayer, models: &[&str]) -> Vec<String> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async {
                let svc = layer.layer(tower::service_fn(|_req: LlmRequest| async {
                    Ok::<_, Error>(answer())
                }));
                for m in models {
                    let req = LlmRequest::chat(ChatRequest::new(*m, vec![Message::user("x")]));
                    svc.clone().oneshot(req).await.unwrap();
                }
            });
        });
        let mut labels: Vec<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == "llm_tower_requests_total")
            .flat_map(|(key, ..)| {
                key.key()
                    .labels()
                    .filter(|l| l.key() == "gen_ai.request.model")
                    .map(|l| l.value().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        labels.sort();
        labels
    }

    #[test]
    fn every_requested_model_is_a_label_without_a_label_set() {
        let labels = model_labels(LlmTraceLayer::new(), &["a", "made-up-1", "made-up-2"]);
        assert_eq!(labels, ["a", "made-up-1", "made-up-2"]);
    }

    #[test]
    fn models_outside_the_label_set_share_one_label() {
        let layer = LlmTraceLayer::new().label_models(["a", "b"]);
        let labels = model_labels(layer, &["a", "made-up-1", "made-up-2", "b", "made-up-3"]);
        assert_eq!(labels, ["a", "b", OTHER_MODEL]);
    }
}
