//! [`Hedge`]: a second attempt when the first is slow.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};
use llm_tower_core::{Error, LlmRequest, LlmResponse, SharedClock, TokioClock};
use tower::{Service, ServiceExt};

/// When a [`Hedge`] sends another attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// After this long without an answer.
    Fixed(Duration),
    /// After this percentile (0 < p < 100) of the latencies of the last answers (for
    /// streams: to the first token); no hedge until 20 answers were seen.
    Percentile(f64),
}

/// Marks a request that must not be sent twice (it has side effects): a request
/// extension a [`Hedge`] honours. The gateway sets it from `x-llm-tower-hedge: off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoHedge;

/// Latencies kept for [`HedgeDelay::Percentile`].
const WINDOW: usize = 256;
/// Answers needed before a percentile is trusted.
const MIN_SAMPLES: usize = 20;

struct Inner<S> {
    route: Arc<str>,
    service: S,
    delay: HedgeDelay,
    max_extra: u32,
    clock: SharedClock,
    /// Recent latencies, and the percentile computed from them (refreshed every 16).
    recent: Mutex<(VecDeque<Duration>, Option<Duration>, u32)>,
}

/// Sends up to `max_extra` more attempts of a request, each after the [`HedgeDelay`]
/// passed without an answer; the first answer wins and the other attempts are dropped
/// (cancelled: a stream's cost layer settles what it consumed). A failed attempt leaves
/// the others running; the last error is returned when all failed. Requests carrying
/// [`NoHedge`] go once. Clones share the latency window.
pub struct Hedge<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Hedge<S> {
    fn clone(&self) -> Self {
        Hedge {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Hedge<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hedge")
            .field("route", &self.inner.route)
            .field("delay", &self.inner.delay)
            .field("max_extra", &self.inner.max_extra)
            .finish()
    }
}

impl<S> Hedge<S> {
    /// Hedges `service` (a route named `route` in metrics).
    pub fn new(route: impl Into<Arc<str>>, delay: HedgeDelay, max_extra: u32, service: S) -> Self {
        Self::with_clock(route, delay, max_extra, service, TokioClock::shared())
    }

    /// The same with a clock (tests: a manual or paused clock).
    pub fn with_clock(
        route: impl Into<Arc<str>>,
        delay: HedgeDelay,
        max_extra: u32,
        service: S,
        clock: SharedClock,
    ) -> Self {
        Hedge {
            inner: Arc::new(Inner {
                route: route.into(),
                service,
                delay,
                max_extra,
                clock,
                recent: Mutex::new((VecDeque::with_capacity(WINDOW), None, 0)),
            }),
        }
    }
}

impl<S> Inner<S> {
    fn delay(&self) -> Option<Duration> {
        match self.delay {
            HedgeDelay::Fixed(d) => Some(d),
            HedgeDelay::Percentile(_) => {
                self.recent.lock().unwrap_or_else(PoisonError::into_inner).1
            }
        }
    }

    fn record(&self, latency: Duration) {
        let HedgeDelay::Percentile(p) = self.delay else {
            return;
        };
        let mut r = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if r.0.len() == WINDOW {
            r.0.pop_front();
        }
        r.0.push_back(latency);
        r.2 = r.2.wrapping_add(1);
        if r.0.len() >= MIN_SAMPLES && (r.1.is_none() || r.2.is_multiple_of(16)) {
            let mut sorted: Vec<Duration> = r.0.iter().copied().collect();
            sorted.sort_unstable();
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let at =
                (((p / 100.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            r.1 = sorted.get(at).copied();
        }
    }
}

impl<S> Service<LlmRequest> for Hedge<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let t0 = inner.clock.now();
            let delay = inner.delay();
            if req.extensions.get::<NoHedge>().is_some() || inner.max_extra == 0 || delay.is_none()
            {
                let result = inner.service.clone().oneshot(req).await;
                if result.is_ok() {
                    inner.record(inner.clock.now().saturating_duration_since(t0));
                }
                return result;
            }
            let delay = delay.unwrap_or_default();
            let mut req = req;
            // Shared by the attempts: a balance group sends each to another target.
            req.extensions.insert(super::balance::Attempted::default());
            let attempt = |req: LlmRequest, n: u32| {
                let svc = inner.service.clone();
                async move { (n, svc.oneshot(req).await) }
            };
            let mut running = FuturesUnordered::new();
            running.push(attempt(req.clone(), 0));
            let mut sent = 1u32;
            let mut last_error = None;
            let mut timer = inner.clock.sleep(delay);
            loop {
                let can_hedge = sent <= inner.max_extra;
                let next = if can_hedge {
                    match futures_util::future::select(running.next(), timer.as_mut()).await {
                        Either::Left((done, _)) => done,
                        Either::Right(((), _)) => {
                            metrics::counter!(
                                "llm_tower_hedge_fired_total",
                                "route" => inner.route.to_string(),
                            )
                            .increment(1);
                            tracing::debug!(
                                route = &*inner.route,
                                attempt = sent,
                                "hedge: another attempt"
                            );
                            running.push(attempt(req.clone(), sent));
                            sent += 1;
                            timer = inner.clock.sleep(delay);
                            continue;
                        }
                    }
                } else {
                    running.next().await
                };
                match next {
                    Some((n, Ok(resp))) => {
                        inner.record(inner.clock.now().saturating_duration_since(t0));
                        if n > 0 {
                            metrics::counter!(
                                "llm_tower_hedge_won_total",
                                "route" => inner.route.to_string(),
                            )
                            .increment(1);
                        }
                        // Dropping `running` cancels the other attempts.
                        return Ok(resp);
                    }
                    Some((_, Err(e))) => {
                        // A failure leaves the others running; with none left and no
                        // hedge to come, it is the answer.
                        if running.is_empty() && !(sent <= inner.max_extra && e.is_retryable()) {
                            return Err(e);
                        }
                        if running.is_empty() {
                            // Hedge at once instead of waiting out the timer.
                            running.push(attempt(req.clone(), sent));
                            sent += 1;
                        }
                        last_error = Some(e);
                    }
                    None => {
                        return Err(
                            last_error.unwrap_or_else(|| Error::internal("hedge: no attempt ran"))
                        );
                    }
                }
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use llm_tower_core::{ChatRequest, ErrorKind, Message, ResponseBody};

    fn req() -> LlmRequest {
        LlmRequest::chat(ChatRequest::new("m", vec![Message::user("hi")]))
    }

    /// Attempt n answers after `delays[n]` with id `n`.
    fn slow(
        delays: Vec<Duration>,
        calls: Arc<AtomicU32>,
    ) -> tower::util::BoxCloneSyncService<LlmRequest, LlmResponse, Error> {
        tower::util::BoxCloneSyncService::new(tower::service_fn(move |_req: LlmRequest| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let d = delays.get(n as usize).copied().unwrap_or_default();
            async move {
                tokio::time::sleep(d).await;
                let chat = llm_tower_core::ChatResponse::new(n.to_string(), "m", 0, Vec::new());
                Ok::<_, Error>(LlmResponse::new(ResponseBody::Chat(chat)))
            }
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_first_attempt_is_hedged_and_the_fast_one_wins() {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = slow(
            vec![Duration::from_secs(10), Duration::from_millis(100)],
            calls.clone(),
        );
        let h = Hedge::new("r", HedgeDelay::Fixed(Duration::from_millis(500)), 1, svc);
        let t0 = tokio::time::Instant::now();
        let resp = h.clone().oneshot(req()).await.unwrap();
        assert_eq!(resp.as_chat().unwrap().id, "1", "the hedge won");
        assert_eq!(t0.elapsed(), Duration::from_millis(600));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn fast_answers_and_marked_requests_are_not_hedged() {
        let calls = Arc::new(AtomicU32::new(0));
        let svc = slow(vec![Duration::from_millis(100); 4], calls.clone());
        let h = Hedge::new("r", HedgeDelay::Fixed(Duration::from_millis(500)), 1, svc);
        h.clone().oneshot(req()).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let calls = Arc::new(AtomicU32::new(0));
        let svc = slow(vec![Duration::from_secs(10); 4], calls.clone());
        let h = Hedge::new("r", HedgeDelay::Fixed(Duration::from_millis(500)), 1, svc);
        let mut r = req();
        r.extensions.insert(NoHedge);
        h.oneshot(r).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "never sent twice");
    }

    #[tokio::test(start_paused = true)]
    async fn the_percentile_delay_needs_samples_then_follows_them() {
        let calls = Arc::new(AtomicU32::new(0));
        let mut delays = vec![Duration::from_millis(100); 30];
        delays.push(Duration::from_secs(5));
        delays.push(Duration::from_millis(50));
        let svc = slow(delays, calls.clone());
        let h = Hedge::new("r", HedgeDelay::Percentile(90.0), 1, svc);
        for _ in 0..30 {
            h.clone().oneshot(req()).await.unwrap();
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            30,
            "no hedges while answers are fast"
        );
        let t0 = tokio::time::Instant::now();
        let resp = h.clone().oneshot(req()).await.unwrap();
        assert_eq!(resp.as_chat().unwrap().id, "31");
        // p90 of 100 ms answers, then the hedge's 50 ms.
        assert_eq!(t0.elapsed(), Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_attempt_hedges_at_once_and_all_failing_is_the_last_error() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let svc =
            tower::util::BoxCloneSyncService::new(tower::service_fn(move |_r: LlmRequest| {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    Err::<LlmResponse, _>(Error::new(
                        if n == 0 {
                            ErrorKind::Overloaded
                        } else {
                            ErrorKind::Timeout
                        },
                        "down",
                    ))
                }
            }));
        let h = Hedge::new("r", HedgeDelay::Fixed(Duration::from_secs(1)), 1, svc);
        let t0 = tokio::time::Instant::now();
        let e = h.oneshot(req()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
