//! [`RateLimit`]: the service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use llm_tower_core::{Error, LimitState, LlmRequest, LlmResponse, ProviderLimits};
use tower::Service;

use super::algorithm::Decision;
use super::layer::{Mode, Shared, Unit};
use super::store::Acquire;

/// A service that admits requests within a rate limit. Built by
/// [`RateLimitLayer`](super::RateLimitLayer).
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        RateLimit {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .field("algorithm", &self.shared.algorithm)
            .finish()
    }
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        RateLimit { inner, shared }
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
}

impl<S> Service<LlmRequest> for RateLimit<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            admit(&shared, &req).await?;
            inner.call(req).await
        })
    }
}

async fn admit(shared: &Shared, req: &LlmRequest) -> Result<(), Error> {
    if let Some(e) = &shared.invalid {
        return Err(e.clone());
    }
    let Some(key) = shared.key.extract(req) else {
        return Ok(());
    };
    let weight = match shared.unit {
        Unit::Requests => 1,
        Unit::Tokens => match req.ctx.token_estimate {
            Some(est) => est.weight(shared.default_output_tokens),
            None => {
                return Err(Error::config(format!(
                    "rate limit {:?} counts tokens but the request has no token estimate: \
                     put the count_tokens layer outside it",
                    shared.name
                )));
            }
        },
    };
    let now = shared.clock.now();
    let mut max_wait = match shared.mode {
        Mode::Reject => Duration::ZERO,
        Mode::Wait { max_wait } => max_wait,
    };
    if let Some(deadline) = req.ctx.deadline {
        max_wait = max_wait.min(deadline.saturating_duration_since(now));
    }
    let decision = shared
        .store
        .acquire(Acquire {
            scope: &shared.name,
            key: &key,
            algorithm: &shared.algorithm,
            weight,
            max_wait,
        })
        .await?;
    let limiter = &*shared.name;
    match decision {
        Decision::Admitted { wait, .. } if wait.is_zero() => Ok(()),
        Decision::Admitted { wait, .. } => {
            tracing::debug!(
                limiter,
                key = %key,
                weight,
                wait_ms = wait.as_secs_f64() * 1e3,
                "rate limit: waiting for a slot"
            );
            metrics::histogram!("llm_tower_rate_limit_wait_seconds", "limiter" => shared.name.to_string())
                .record(wait.as_secs_f64());
            shared.clock.sleep(wait).await;
            Ok(())
        }
        Decision::Denied { retry_after } => {
            // Counted in `llm_tower_rate_limited_total`; at debug, since under load
            // refusals come by the thousand per second.
            tracing::debug!(
                limiter,
                key = %key,
                weight,
                retry_after_ms = retry_after.as_secs_f64() * 1e3,
                "rate limit: request refused"
            );
            metrics::counter!("llm_tower_rate_limited_total", "limiter" => shared.name.to_string(), "reason" => "limit")
                .increment(1);
            let state = LimitState {
                limit: Some(shared.algorithm.capacity()),
                remaining: Some(0),
                reset: Some(retry_after),
            };
            let limits = match shared.unit {
                Unit::Requests => ProviderLimits {
                    requests: Some(state),
                    ..Default::default()
                },
                Unit::Tokens => ProviderLimits {
                    tokens: Some(state),
                    ..Default::default()
                },
            };
            Err(Error::rate_limited(
                if key.is_empty() {
                    format!("rate limit {limiter:?} reached (global: shared by every caller)")
                } else {
                    format!("rate limit {limiter:?} reached for key {key:?}")
                },
                Some(retry_after),
            )
            .with_limits(limits))
        }
        Decision::TooHeavy { capacity } => {
            metrics::counter!("llm_tower_rate_limited_total", "limiter" => shared.name.to_string(), "reason" => "too_heavy")
                .increment(1);
            Err(Error::invalid_request(format!(
                "request weighs {weight} but rate limit {limiter:?} admits at most {capacity} at once"
            )))
        }
    }
}
