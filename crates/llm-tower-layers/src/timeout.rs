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
        let mut until = now + self.timeout;
        let mut what = "timeout";
        if let Some(d) = req.ctx.deadline
            && d < until
        {
            until = d;
            what = "deadline";
        }
        let limit = until.saturating_duration_since(now);
        let sleep = self.clock.sleep_until(until);
        let fut = self.inner.call(req);
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
