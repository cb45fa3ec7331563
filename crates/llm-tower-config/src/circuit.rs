//! A circuit breaker per provider/model: stop sending requests to a target that keeps
//! failing, and try it again after a cooldown.
//!
//! ```text
//! Closed --(N consecutive failures)--> Open --(cooldown)--> HalfOpen --(probe ok)--> Closed
//!                                        ^                       |
//!                                        +----(probe fails)------+
//! ```
//!
//! - **Closed**: requests pass. A failure (transport error, timeout, 5xx, overloaded)
//!   counts; any answer of the provider (a response, or a client error such as 400 or 401)
//!   resets the count. Local refusals (our rate limits, budgets) change nothing.
//! - **Open**: requests fail at once with a retryable `Overloaded` error whose
//!   retry-after is the rest of the cooldown, so a router tries its next target.
//! - **HalfOpen**: after the cooldown exactly one request (the probe) passes; others
//!   are refused while it runs. Its success closes the circuit, its failure opens it
//!   again for another cooldown. A probe that is dropped unanswered frees the slot.
//!
//! Time is read through the [`Clock`](llm_tower_core::Clock), so tests are exact with
//! `ManualClock` or paused tokio time.
//!
//! # Errors
//! `Overloaded` while open (or while a half-open probe runs); the inner service's errors
//! otherwise.
//!
//! # Clone
//! The state lives behind an `Arc` made by the layer: every service it builds and every
//! clone share one circuit.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use llm_tower_core::{Error, ErrorKind, LlmRequest, LlmResponse, SharedClock, TokioClock};
use tower::{Layer, Service};

/// The state of a circuit, as [`CircuitBreakerLayer::state`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests pass; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Requests are refused for `remaining` more.
    Open {
        /// Time until a probe may pass.
        remaining: Duration,
    },
    /// The cooldown is over: the next request is a probe (`probing` while it runs).
    HalfOpen {
        /// A probe is in flight.
        probing: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

struct Shared {
    name: Arc<str>,
    provider: Option<Arc<str>>,
    failure_threshold: u32,
    cooldown: Duration,
    clock: SharedClock,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open_error(&self, retry_after: Option<Duration>) -> Error {
        let mut e = Error::new(
            ErrorKind::Overloaded,
            format!(
                "circuit open for {}: it failed {} times in a row; it is tried again after {:.1}s",
                self.name,
                self.failure_threshold,
                self.cooldown.as_secs_f64()
            ),
        );
        if let Some(r) = retry_after {
            e = e.with_retry_after(r);
        }
        if let Some(p) = &self.provider {
            e = e.with_provider(p.clone());
        }
        e
    }

    /// Admits a request, or refuses it while the circuit is open.
    fn admit(self: &Arc<Self>) -> Result<Permit, Error> {
        let now = self.clock.now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(Permit::new(self, false)),
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { probing: true };
                tracing::info!(target_model = %self.name, "circuit half-open: sending one probe");
                Ok(Permit::new(self, true))
            }
            State::Open { until } => Err(self.open_error(Some(until - now))),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(Permit::new(self, true))
            }
            State::HalfOpen { probing: true } => Err(self.open_error(None)),
        }
    }

    fn record(&self, probe: bool, verdict: Verdict) {
        let now = self.clock.now();
        let mut state = self.lock();
        match (verdict, *state) {
            (Verdict::Answered, State::Closed { .. }) => *state = State::Closed { failures: 0 },
            (Verdict::Answered, State::HalfOpen { .. }) if probe => {
                tracing::info!(target_model = %self.name, "circuit closed: the probe succeeded");
                *state = State::Closed { failures: 0 };
            }
            (Verdict::Failed, State::Closed { failures }) => {
                let failures = failures.saturating_add(1);
                if failures >= self.failure_threshold {
                    tracing::warn!(
                        target_model = %self.name,
                        failures,
                        cooldown_s = self.cooldown.as_secs_f64(),
                        "circuit open: too many consecutive failures"
                    );
                    *state = State::Open {
                        until: now + self.cooldown,
                    };
                } else {
                    *state = State::Closed { failures };
                }
            }
            (Verdict::Failed, State::HalfOpen { .. }) if probe => {
                tracing::warn!(target_model = %self.name, "circuit open again: the probe failed");
                *state = State::Open {
                    until: now + self.cooldown,
                };
            }
            (Verdict::Neutral, State::HalfOpen { .. }) if probe => {
                *state = State::HalfOpen { probing: false };
            }
            // Late answers of requests admitted before the state changed.
            _ => {}
        }
    }

    fn release_probe(&self) {
        let mut state = self.lock();
        if let State::HalfOpen { probing: true } = *state {
            *state = State::HalfOpen { probing: false };
        }
    }
}

/// What an outcome says about the target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The provider answered (a response or a client error).
    Answered,
    /// The provider failed (transport, timeout, 5xx, overloaded).
    Failed,
    /// Nothing is known about the provider (refused locally, or its own rate limit).
    Neutral,
}

fn verdict(result: &Result<LlmResponse, Error>) -> Verdict {
    let Err(e) = result else {
        return Verdict::Answered;
    };
    match e.kind() {
        ErrorKind::Transport | ErrorKind::Timeout | ErrorKind::Overloaded => Verdict::Failed,
        ErrorKind::Provider { status } if status >= 500 => Verdict::Failed,
        ErrorKind::Provider { .. }
        | ErrorKind::InvalidRequest
        | ErrorKind::Unauthorized
        | ErrorKind::ContextLengthExceeded => Verdict::Answered,
        // Rate limits (the provider's or ours), budgets, store and config errors say
        // nothing about whether the target works.
        _ => Verdict::Neutral,
    }
}

/// Admission to call the inner service; a dropped probe frees its slot.
struct Permit {
    shared: Arc<Shared>,
    probe: bool,
    done: bool,
}

impl Permit {
    fn new(shared: &Arc<Shared>, probe: bool) -> Self {
        Permit {
            shared: Arc::clone(shared),
            probe,
            done: false,
        }
    }

    fn record(mut self, result: &Result<LlmResponse, Error>) {
        self.done = true;
        self.shared.record(self.probe, verdict(result));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            self.shared.release_probe();
        }
    }
}

/// Builds [`CircuitBreaker`] services sharing one circuit.
#[derive(Clone)]
pub struct CircuitBreakerLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for CircuitBreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("name", &self.shared.name)
            .field("failure_threshold", &self.shared.failure_threshold)
            .field("cooldown", &self.shared.cooldown)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreakerLayer {
    /// A circuit named `name` (e.g. `openai/gpt-4o`) that opens after `failure_threshold`
    /// consecutive failures (at least 1) and probes again after `cooldown`.
    pub fn new(name: impl Into<Arc<str>>, failure_threshold: u32, cooldown: Duration) -> Self {
        CircuitBreakerLayer {
            shared: Arc::new(Shared {
                name: name.into(),
                provider: None,
                failure_threshold: failure_threshold.max(1),
                cooldown,
                clock: TokioClock::shared(),
                state: Mutex::new(State::Closed { failures: 0 }),
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Shared)) -> Self {
        let s = &self.shared;
        let mut shared = Shared {
            name: s.name.clone(),
            provider: s.provider.clone(),
            failure_threshold: s.failure_threshold,
            cooldown: s.cooldown,
            clock: s.clock.clone(),
            state: Mutex::new(State::Closed { failures: 0 }),
        };
        f(&mut shared);
        CircuitBreakerLayer {
            shared: Arc::new(shared),
        }
    }

    /// Names the provider in the errors of an open circuit.
    #[must_use]
    pub fn provider(self, provider: impl Into<Arc<str>>) -> Self {
        let provider = provider.into();
        self.map(|s| s.provider = Some(provider))
    }

    /// Reads time from `clock` (a fresh, closed circuit).
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.map(|s| s.clock = clock)
    }

    /// The circuit's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Consecutive failures that open the circuit.
    pub fn failure_threshold(&self) -> u32 {
        self.shared.failure_threshold
    }

    /// How long the circuit stays open.
    pub fn cooldown(&self) -> Duration {
        self.shared.cooldown
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        let now = self.shared.clock.now();
        match *self.shared.lock() {
            State::Closed { failures } => CircuitState::Closed { failures },
            State::Open { until } if now >= until => CircuitState::HalfOpen { probing: false },
            State::Open { until } => CircuitState::Open {
                remaining: until - now,
            },
            State::HalfOpen { probing } => CircuitState::HalfOpen { probing },
        }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service built by [`CircuitBreakerLayer`].
#[derive(Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("name", &self.shared.name)
            .finish()
    }
}

impl<S> CircuitBreaker<S> {
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

impl<S> Service<LlmRequest> for CircuitBreaker<S>
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
        let permit = match self.shared.admit() {
            Ok(p) => p,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            permit.record(&result);
            result
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, Ordering};

    use llm_tower_core::{ChatRequest, ChatResponse, ManualClock, ResponseBody};
    use tower::ServiceExt;

    #[derive(Clone)]
    struct Scripted {
        script: Arc<Mutex<VecDeque<Result<(), ErrorKind>>>>,
        calls: Arc<AtomicU32>,
    }

    impl Scripted {
        fn new(script: Vec<Result<(), ErrorKind>>) -> Self {
            Scripted {
                script: Arc::new(Mutex::new(script.into())),
                calls: Arc::new(AtomicU32::new(0)),
            }
        }
    }

    impl Service<LlmRequest> for Scripted {
        type Response = LlmResponse;
        type Error = Error;
        type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: LlmRequest) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let next = self.script.lock().unwrap().pop_front().unwrap_or(Ok(()));
            Box::pin(async move {
                match next {
                    Ok(()) => Ok(LlmResponse::new(ResponseBody::Chat(ChatResponse {
                        extra: Default::default(),
                        service_tier: None,
                        id: String::new(),
                        model: String::new(),
                        created: 0,
                        choices: Vec::new(),
                        system_fingerprint: None,
                        native: None,
                    }))),
                    Err(kind) => Err(Error::new(kind, "scripted")),
                }
            })
        }
    }

    fn req() -> LlmRequest {
        LlmRequest::chat(ChatRequest::new("m", vec![]))
    }

    const FAIL: Result<(), ErrorKind> = Err(ErrorKind::Provider { status: 503 });

    #[tokio::test]
    async fn opens_after_consecutive_failures_and_fails_fast() {
        let clock = ManualClock::new();
        let layer = CircuitBreakerLayer::new("p/m", 3, Duration::from_secs(30))
            .clock(Arc::new(clock.clone()));
        let inner = Scripted::new(vec![FAIL, FAIL, Ok(()), FAIL, FAIL, FAIL]);
        let svc = layer.layer(inner.clone());
        // Two failures, then a success resets the count.
        for _ in 0..2 {
            assert!(svc.clone().oneshot(req()).await.is_err());
        }
        assert_eq!(layer.state(), CircuitState::Closed { failures: 2 });
        svc.clone().oneshot(req()).await.unwrap();
        assert_eq!(layer.state(), CircuitState::Closed { failures: 0 });
        for _ in 0..3 {
            assert!(svc.clone().oneshot(req()).await.is_err());
        }
        assert_eq!(
            layer.state(),
            CircuitState::Open {
                remaining: Duration::from_secs(30)
            }
        );
        // Open: refused without calling the provider, retryable, with the retry-after.
        let calls = inner.calls.load(Ordering::SeqCst);
        clock.advance(Duration::from_secs(10));
        let e = svc.clone().oneshot(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(20)));
        assert!(e.message().starts_with("circuit open for p/m"), "{e}");
        assert_eq!(inner.calls.load(Ordering::SeqCst), calls);
    }

    #[tokio::test]
    async fn half_open_probe_success_closes() {
        let clock = ManualClock::new();
        let layer = CircuitBreakerLayer::new("p/m", 1, Duration::from_secs(5))
            .clock(Arc::new(clock.clone()));
        let inner = Scripted::new(vec![FAIL, Ok(())]);
        let svc = layer.layer(inner.clone());
        assert!(svc.clone().oneshot(req()).await.is_err());
        assert!(matches!(layer.state(), CircuitState::Open { .. }));
        clock.advance(Duration::from_secs(5));
        assert_eq!(layer.state(), CircuitState::HalfOpen { probing: false });
        svc.clone().oneshot(req()).await.unwrap();
        assert_eq!(layer.state(), CircuitState::Closed { failures: 0 });
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn half_open_probe_failure_reopens_for_another_cooldown() {
        let clock = ManualClock::new();
        let layer = CircuitBreakerLayer::new("p/m", 1, Duration::from_secs(5))
            .clock(Arc::new(clock.clone()));
        let svc = layer.layer(Scripted::new(vec![FAIL, Err(ErrorKind::Transport)]));
        assert!(svc.clone().oneshot(req()).await.is_err());
        clock.advance(Duration::from_secs(6));
        let e = svc.clone().oneshot(req()).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::Transport,
            "the probe reached the provider"
        );
        assert_eq!(
            layer.state(),
            CircuitState::Open {
                remaining: Duration::from_secs(5)
            }
        );
    }

    #[tokio::test]
    async fn only_one_probe_at_a_time_and_a_dropped_probe_frees_the_slot() {
        let clock = ManualClock::new();
        let layer = CircuitBreakerLayer::new("p/m", 1, Duration::from_secs(5))
            .clock(Arc::new(clock.clone()));
        let svc = layer.layer(Scripted::new(vec![FAIL]));
        assert!(svc.clone().oneshot(req()).await.is_err());
        clock.advance(Duration::from_secs(5));
        // The probe is admitted at call time; hold its future without polling it.
        let mut s1 = svc.clone();
        let probe = s1.call(req());
        assert_eq!(layer.state(), CircuitState::HalfOpen { probing: true });
        let e = svc.clone().oneshot(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        drop(probe);
        assert_eq!(layer.state(), CircuitState::HalfOpen { probing: false });
        svc.clone().oneshot(req()).await.unwrap();
        assert_eq!(layer.state(), CircuitState::Closed { failures: 0 });
    }

    #[tokio::test]
    async fn client_errors_and_local_refusals_do_not_open() {
        let layer = CircuitBreakerLayer::new("p/m", 1, Duration::from_secs(5));
        let svc = layer.layer(Scripted::new(vec![
            Err(ErrorKind::InvalidRequest),
            Err(ErrorKind::BudgetExceeded),
            Err(ErrorKind::Unauthorized),
        ]));
        for _ in 0..3 {
            assert!(svc.clone().oneshot(req()).await.is_err());
        }
        assert_eq!(layer.state(), CircuitState::Closed { failures: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn works_with_paused_tokio_time() {
        let layer = CircuitBreakerLayer::new("p/m", 2, Duration::from_secs(30));
        let svc = layer.layer(Scripted::new(vec![FAIL, FAIL, Ok(())]));
        for _ in 0..2 {
            assert!(svc.clone().oneshot(req()).await.is_err());
        }
        assert!(matches!(layer.state(), CircuitState::Open { .. }));
        tokio::time::advance(Duration::from_secs(30)).await;
        svc.clone().oneshot(req()).await.unwrap();
        assert_eq!(layer.state(), CircuitState::Closed { failures: 0 });
    }
}
