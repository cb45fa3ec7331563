//! [`HttpRateLimit`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::Request;
use llm_tower_core::{LimitState, ProviderLimits};
use llm_tower_layers::rate_limit::{Acquire, Decision, Mode};
use tower::Service;

use super::layer::Shared;
use crate::key::HttpKeyExtractor;
use crate::openai_error::{OpenAiError, write_limit_headers};

/// The service built by [`HttpRateLimitLayer`](super::HttpRateLimitLayer).
pub struct HttpRateLimit<S, K> {
    inner: S,
    shared: Arc<Shared<K>>,
}

impl<S: Clone, K> Clone for HttpRateLimit<S, K> {
    fn clone(&self) -> Self {
        HttpRateLimit {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, K> fmt::Debug for HttpRateLimit<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRateLimit")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .field("algorithm", &self.shared.algorithm)
            .finish()
    }
}

impl<S, K> HttpRateLimit<S, K> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<K>>) -> Self {
        HttpRateLimit { inner, shared }
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

enum Admission {
    Pass(Option<LimitState>),
    Refuse(Response),
}

impl<S, K, B> Service<Request<B>> for HttpRateLimit<S, K>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    K: HttpKeyExtractor,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The ready inner service serves this request; the clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let key = shared.key.extract(&req).map(|k| k.into_owned());
        Box::pin(async move {
            let state = match key {
                None => None,
                Some(key) => match admit(&shared, &key).await {
                    Admission::Pass(state) => state,
                    Admission::Refuse(resp) => return Ok(resp),
                },
            };
            let mut resp = inner.call(req).await?.into_response();
            if let Some(state) = state {
                let limits = ProviderLimits {
                    requests: Some(state),
                    ..ProviderLimits::default()
                };
                write_limit_headers(resp.headers_mut(), &limits);
            }
            Ok(resp)
        })
    }
}

async fn admit<K>(shared: &Shared<K>, key: &str) -> Admission {
    let max_wait = match shared.mode {
        Mode::Reject => Duration::ZERO,
        Mode::Wait { max_wait } => max_wait,
    };
    let decision = shared
        .store
        .acquire(Acquire {
            scope: &shared.name,
            key,
            algorithm: &shared.algorithm,
            weight: 1,
            max_wait,
        })
        .await;
    let capacity = shared.algorithm.capacity();
    match decision {
        Ok(Decision::Admitted {
            wait,
            remaining,
            reset,
        }) => {
            if !wait.is_zero() {
                shared.clock.sleep(wait).await;
            }
            Admission::Pass(Some(LimitState {
                limit: Some(capacity),
                remaining: Some(remaining),
                reset: Some(reset),
            }))
        }
        Ok(Decision::Denied { retry_after }) => {
            metrics::counter!(
                "llm_tower_rate_limited_total",
                "limiter" => shared.name.to_string(),
                "reason" => "limit"
            )
            .increment(1);
            tracing::info!(
                limiter = &*shared.name,
                key,
                retry_after_ms = retry_after.as_secs_f64() * 1e3,
                "http rate limit: request refused"
            );
            let limits = ProviderLimits {
                requests: Some(LimitState {
                    limit: Some(capacity),
                    remaining: Some(0),
                    reset: Some(retry_after),
                }),
                ..ProviderLimits::default()
            };
            Admission::Refuse(
                OpenAiError::rate_limited(
                    format!("Rate limit {:?} reached; retry later.", &*shared.name),
                    retry_after,
                    Some(limits),
                )
                .into_response(),
            )
        }
        Ok(Decision::TooHeavy { capacity }) => Admission::Refuse(
            OpenAiError::from_error(&llm_tower_core::Error::invalid_request(format!(
                "rate limit admits at most {capacity} at once"
            )))
            .into_response(),
        ),
        Err(e) => {
            tracing::warn!(limiter = &*shared.name, error = %e, "http rate limit: store failed; refusing");
            Admission::Refuse(OpenAiError::from_error(&e).into_response())
        }
    }
}
