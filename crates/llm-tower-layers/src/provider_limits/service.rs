//! [`AdaptiveLimit`]: the service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, Either, select};
use llm_tower_core::{Error, ErrorKind, LimitOrigin, LlmRequest, LlmResponse, ProviderLimits};
use tower::Service;

use super::REFUSAL_CODE;
use super::layer::{AdaptiveMode, KeyState, Shared};
use super::state::{Verdict, Weights, dims, weights};

/// A service that holds requests back while its target's provider limit is exhausted.
/// Built by [`AdaptiveLimitLayer`](super::AdaptiveLimitLayer).
pub struct AdaptiveLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for AdaptiveLimit<S> {
    fn clone(&self) -> Self {
        AdaptiveLimit {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for AdaptiveLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimit")
            .field("inner", &self.inner)
            .field("mode", &self.shared.mode)
            .finish()
    }
}

impl<S> AdaptiveLimit<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        AdaptiveLimit { inner, shared }
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

impl<S> Service<LlmRequest> for AdaptiveLimit<S>
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
            let Some((key, state)) = shared.key_state(&req) else {
                return inner.call(req).await;
            };
            let w = weights(
                req.ctx.token_estimate.as_ref(),
                shared.default_output_tokens,
            );
            let in_flight = admit(&shared, &key, &state, &req, &w).await?;
            let result = inner.call(req).await;
            let limits = match &result {
                Ok(r) => r.meta.provider_limits.as_ref(),
                Err(e) => e.limits(),
            };
            in_flight.finish(shared.clock.now(), limits);
            if let Some((block, cause)) = block_for(&result) {
                learn_block(&shared, &key, block, cause).await;
            }
            result
        })
    }
}

/// An admitted request: its weight is in flight until it ends (or is dropped).
struct InFlight<'a> {
    state: &'a KeyState,
    weights: Weights,
    /// When it was admitted (a dropped request reports no limits, so no later time is
    /// needed).
    admitted: Instant,
    armed: bool,
}

impl InFlight<'_> {
    fn finish(mut self, now: Instant, limits: Option<&ProviderLimits>) {
        self.armed = false;
        let wake = self.state.lock().finish(now, &self.weights, true, limits);
        if wake {
            self.state.answered.notify_waiters();
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            let wake = self
                .state
                .lock()
                .finish(self.admitted, &self.weights, false, None);
            if wake {
                self.state.answered.notify_waiters();
            }
        }
    }
}

/// A request waiting for an answer; done waiting when dropped.
struct Waiting<'a>(&'a KeyState);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().stop_waiting();
    }
}

/// Waits (or refuses) until the request may go, and takes its weight.
async fn admit<'a>(
    shared: &Shared,
    key: &str,
    state: &'a KeyState,
    req: &LlmRequest,
    w: &Weights,
) -> Result<InFlight<'a>, Error> {
    let clock = &shared.clock;
    let start = clock.now();
    let mut first = true;
    let max_wait = match shared.mode {
        AdaptiveMode::Reject => Duration::ZERO,
        AdaptiveMode::Wait { max_wait } => max_wait,
    };
    let latest = start.checked_add(max_wait);
    let deadline = req.ctx.deadline;
    let mut waited = false;
    // Probing a target never heard from is given up once the wait would end.
    let mut probe = shared.mode != AdaptiveMode::Reject;
    loop {
        let now = if first { start } else { clock.now() };
        first = false;
        let blocked = match shared.store.blocked_for_sync(key) {
            Some(b) => b,
            None => shared.store.blocked_for(key).await?,
        };
        // Registered before the state is read, so an answer arriving in between is not
        // missed.
        let answered = state.answered.notified();
        let verdict = match blocked.and_then(|d| now.checked_add(d)) {
            Some(until) => Verdict::WaitUntil(until),
            None => state.lock().acquire(now, w, probe),
        };
        match verdict {
            Verdict::Admit => {
                if waited {
                    let wait = clock.now().saturating_duration_since(start);
                    metrics::histogram!("llm_tower_provider_limit_wait_seconds", "target" => key.to_string())
                        .record(wait.as_secs_f64());
                    tracing::debug!(target_key = %key, wait_ms = wait.as_secs_f64() * 1e3, "provider limit: waited for the reset");
                }
                return Ok(InFlight {
                    state,
                    weights: *w,
                    admitted: now,
                    armed: true,
                });
            }
            Verdict::WaitUntil(until) => {
                let retry_after = until.saturating_duration_since(now);
                let why = if shared.mode == AdaptiveMode::Reject {
                    Some("reject_mode")
                } else if deadline.is_some_and(|d| until >= d) {
                    Some("deadline")
                } else if latest.is_none_or(|l| until > l) {
                    Some("max_wait")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(refusal(req, key, Some(retry_after), why));
                }
                waited = true;
                clock.sleep_until(until).await;
            }
            Verdict::WaitForAnswer | Verdict::Probe => {
                let _waiting = Waiting(state);
                let probing = verdict == Verdict::Probe;
                let give_up = match (latest, deadline) {
                    (Some(l), Some(d)) => Some(l.min(d)),
                    (l, d) => l.or(d),
                };
                if shared.mode == AdaptiveMode::Reject {
                    return Err(refusal(req, key, None, "reject_mode"));
                }
                let out_of_time = |at: Instant| {
                    if deadline.is_some_and(|d| d <= at) {
                        "deadline"
                    } else {
                        "max_wait"
                    }
                };
                if give_up.is_some_and(|g| g <= now) {
                    let why = out_of_time(now);
                    if probing && why == "max_wait" {
                        probe = false;
                        continue;
                    }
                    return Err(refusal(req, key, None, why));
                }
                waited = true;
                let sleep = match give_up {
                    Some(g) => clock.sleep_until(g),
                    None => Box::pin(std::future::pending()),
                };
                if let Either::Right(_) = select(Box::pin(answered), sleep).await {
                    let why = out_of_time(clock.now());
                    if probing && why == "max_wait" {
                        // The first answer is slow: send anyway rather than fail.
                        probe = false;
                        continue;
                    }
                    return Err(refusal(req, key, None, why));
                }
            }
        }
    }
}

/// The error of a request held back: retryable, origin provider, with the code
/// [`REFUSAL_CODE`] (the retry layer does not retry it: a router tries its next target).
fn refusal(req: &LlmRequest, key: &str, retry_after: Option<Duration>, why: &'static str) -> Error {
    metrics::counter!("llm_tower_provider_limit_rejected_total", "target" => key.to_owned(), "reason" => why)
        .increment(1);
    let when = match retry_after {
        Some(r) => format!("resets in {:.3}s", r.as_secs_f64()),
        None => "reset unknown".to_owned(),
    };
    let how = match why {
        "deadline" => "the reset is past the request's deadline",
        "max_wait" => "the reset is further away than the longest wait",
        _ => "refusing instead of waiting (reject mode)",
    };
    tracing::debug!(target_key = %key, reason = why, "provider limit: request held back");
    let mut e = Error::new(
        ErrorKind::RateLimited,
        format!("{key}: the provider's rate limit is exhausted ({when}); {how}; not sent"),
    )
    .with_origin(LimitOrigin::Provider)
    .with_code(REFUSAL_CODE);
    if let Some(r) = retry_after {
        e = e.with_retry_after(r);
    }
    if let Some(p) = &req.ctx.provider {
        e = e.with_provider(p.clone());
    }
    e
}

/// How long the provider said it refuses requests: the longest reset of an exhausted
/// dimension, or a 429's retry-after.
fn block_for(result: &Result<LlmResponse, Error>) -> Option<(Duration, &'static str)> {
    let limits = match result {
        Ok(r) => r.meta.provider_limits.as_ref(),
        Err(e) => e.limits(),
    };
    let exhausted = limits.and_then(|l| {
        dims(l)
            .into_iter()
            .flatten()
            .filter(|s| s.remaining == Some(0))
            .filter_map(|s| s.reset)
            .max()
    });
    let retry = match result {
        Err(e)
            if e.kind() == ErrorKind::RateLimited
                && e.origin() == Some(LimitOrigin::Provider)
                && e.code() != Some(REFUSAL_CODE) =>
        {
            e.retry_after()
        }
        _ => None,
    };
    match (exhausted, retry) {
        (Some(a), Some(b)) if b > a => Some((b, "retry_after")),
        (Some(a), _) => Some((a, "exhausted")),
        (None, Some(b)) => Some((b, "retry_after")),
        (None, None) => None,
    }
    .filter(|(d, _)| !d.is_zero())
}

/// Writes a block the provider announced to the store (where other instances see it).
async fn learn_block(shared: &Shared, key: &str, block: Duration, cause: &'static str) {
    metrics::counter!("llm_tower_provider_limit_blocks_total", "target" => key.to_owned(), "cause" => cause)
        .increment(1);
    if let Some(until) = shared.clock.system_now().checked_add(block)
        && let Ok(since_epoch) = until.duration_since(std::time::UNIX_EPOCH)
    {
        metrics::gauge!("llm_tower_provider_limit_blocked_until_seconds", "target" => key.to_owned())
            .set(since_epoch.as_secs_f64());
    }
    tracing::debug!(
        target_key = %key,
        block_ms = block.as_secs_f64() * 1e3,
        cause,
        "provider limit: target blocked until its reset"
    );
    if let Err(e) = shared.store.block(key, block).await {
        // The response itself is fine; this instance still holds back through its own
        // count-down, only other instances do not learn of the block.
        tracing::warn!(target_key = %key, error = %e, "provider limit: could not share a block");
    }
}
