//! A per-attempt timeout that also honours the request deadline.
//!
//! Unlike `tower::timeout`, it fails with our `Timeout` error and reads time through the
//! [`Clock`](llm_tower_core::Clock), so paused-time tests are exact. For a streamed
//! response it bounds the time to the response headers; the providers' idle timeout
//! bounds the stream after that.
//!
//! # Errors
//! `Timeout` when the inner service has not answered within the timeout or by the
//! request's deadline, whichever comes first.
//!
//! # Clone
//! Stateless apart from the clock handle.

use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, Either, select};
use llm_tower_core::{Error, LlmRequest, LlmResponse, SharedClock, TokioClock};
use tower::{Layer, Service};

/// Builds [`Timeout`] services.
#[derive(Clone)]
pub struct TimeoutLayer {
    timeout: Duration,
    clock: SharedClock,
}

impl fmt::Debug for TimeoutLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutLayer")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TimeoutLayer {
    /// Each call may take at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        TimeoutLayer {
            timeout,
            clock: TokioClock::shared(),
        }
    }

    /// Uses `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            timeout: self.timeout,
            clock: self.clock.clone(),
        }
    }
}

/// The service built by [`TimeoutLayer`].
#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
    clock: SharedClock,
}

impl<S: fmt::Debug> fmt::Debug for Timeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<S> Timeout<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<LlmRequest> for Timeout<S>
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
        let now = self.clock.now();
        // A timeout too long to be represented as an instant is no timeout.
        let mut until = now.checked_add(self.timeout).map(|t| (t, "timeout"));
        if let Some(d) = req.ctx.deadline
            && until.is_none_or(|(t, _)| d < t)
        {
            until = Some((d, "deadline"));
        }
        let fut = self.inner.call(req);
        let Some((until, what)) = until else {
            return Box::pin(fut);
        };
        let limit = until.saturating_duration_since(now);
        let sleep = self.clock.sleep_until(until);
        Box::pin(async move {
            match select(Box::pin(fut), sleep).await {
                Either::Left((res, _)) => res,
                Either::Right(((), _)) => Err(Error::timeout(format!(
                    "no response within {:.3}s (request {what})",
                    limit.as_secs_f64()
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    use llm_tower_core::{ChatRequest, Clock, ManualClock, Message, ResponseBody};
    use tower::ServiceExt;

    fn ok()
    -> impl Service<LlmRequest, Response = LlmResponse, Error = Error, Future: Send + 'static> + Clone
    {
        tower::service_fn(|_r: LlmRequest| async {
            let chat = llm_tower_core::ChatResponse {
                extra: Default::default(),
                service_tier: None,
                id: "x".into(),
                model: "m".into(),
                created: 0,
                choices: Vec::new(),
                system_fingerprint: None,
                native: None,
            };
            Ok::<_, Error>(LlmResponse::new(ResponseBody::Chat(chat)))
        })
    }

    fn req() -> LlmRequest {
        LlmRequest::chat(ChatRequest::new("m", vec![Message::user("hi")]))
    }

    #[tokio::test]
    async fn a_huge_timeout_is_no_timeout_and_does_not_panic() {
        let clock = ManualClock::new();
        let svc = TimeoutLayer::new(Duration::MAX)
            .clock(Arc::new(clock.clone()))
            .layer(ok());
        svc.clone().oneshot(req()).await.unwrap();
        // The request's deadline still applies.
        let stall = tower::service_fn(|_r: LlmRequest| {
            std::future::pending::<Result<LlmResponse, Error>>()
        });
        let svc = TimeoutLayer::new(Duration::MAX)
            .clock(Arc::new(clock.clone()))
            .layer(stall);
        let deadline: Instant = clock.now() + Duration::from_secs(2);
        let h = tokio::spawn(svc.oneshot(req().with_deadline(deadline)));
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(2));
        let e = h.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::Timeout);
        assert!(e.message().contains("deadline"), "{e}");
    }
}
