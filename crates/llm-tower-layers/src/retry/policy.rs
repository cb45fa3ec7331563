//! The retry policy and its layer.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use llm_tower_core::{Error, LlmRequest, LlmResponse, SharedClock, TokioClock, clock::Sleep};
use rand::{Rng, RngCore, SeedableRng, rngs::SmallRng};
use tower::Layer;
use tower::retry::budget::{Budget, TpsBudget};

/// The service built by [`RetryLayer`]: tower's `Retry` with our policy.
pub type Retry<S> = tower::retry::Retry<RetryPolicy, S>;

struct Shared {
    max_retries: u32,
    base: Duration,
    max: Duration,
    retry_after_cap: Duration,
    budget: Option<Arc<TpsBudget>>,
    clock: SharedClock,
    seed: AtomicU64,
}

/// The retry policy: see the [module docs](super).
#[derive(Clone)]
pub struct RetryPolicy {
    shared: Arc<Shared>,
    attempts: u32,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_retries", &self.shared.max_retries)
            .field("base", &self.shared.base)
            .field("max", &self.shared.max)
            .field("retry_after_cap", &self.shared.retry_after_cap)
            .field("budget", &self.shared.budget.is_some())
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1-based), before `retry-after` is applied:
    /// uniform in `[0, min(max, base * 2^(retry-1))]`.
    pub fn jittered_backoff(&self, retry: u32) -> Duration {
        let s = &self.shared;
        let exp = s
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let ceiling = exp.min(s.max);
        let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let mut rng =
            SmallRng::seed_from_u64(s.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
        Duration::from_nanos(rng.random_range(0..=ceiling_ns))
    }

    fn give_up(&self, err: &mut Error, why: &'static str) {
        err.set_attempts(self.attempts);
        if self.attempts > 1 || why != "not retryable" {
            tracing::debug!(attempts = self.attempts, reason = why, error = %err, "retry: giving up");
        }
    }
}

impl tower::retry::Policy<LlmRequest, LlmResponse, Error> for RetryPolicy {
    type Future = Sleep;

    fn retry(
        &mut self,
        req: &mut LlmRequest,
        result: &mut Result<LlmResponse, Error>,
    ) -> Option<Sleep> {
        self.attempts += 1;
        let err = match result {
            Ok(resp) => {
                resp.meta.attempts = self.attempts;
                return None;
            }
            Err(e) => e,
        };
        let s = &self.shared;
        if !err.is_retryable() {
            self.give_up(err, "not retryable");
            return None;
        }
        if err.code() == Some(crate::provider_limits::REFUSAL_CODE) {
            // The adaptive provider limit chose not to wait for this target: a retry here
            // would wait anyway; the router's next target may take it now.
            self.give_up(err, "held back by the provider's limit");
            return None;
        }
        if self.attempts > s.max_retries {
            self.give_up(err, "max retries reached");
            return None;
        }
        let mut delay = self.jittered_backoff(self.attempts);
        if let Some(ra) = err.retry_after() {
            if ra > s.retry_after_cap {
                self.give_up(err, "retry-after exceeds the cap");
                return None;
            }
            delay = delay.max(ra);
        }
        let now = s.clock.now();
        if let Some(deadline) = req.ctx.deadline
            && now.checked_add(delay).is_none_or(|t| t >= deadline)
        {
            self.give_up(err, "deadline would pass");
            return None;
        }
        if let Some(budget) = &s.budget
            && !budget.withdraw()
        {
            metrics::counter!("llm_tower_retry_budget_exhausted_total").increment(1);
            self.give_up(err, "retry budget exhausted");
            return None;
        }
        tracing::info!(
            attempt = self.attempts,
            delay_ms = delay.as_secs_f64() * 1e3,
            cause = err.label(),
            error = %err,
            gen_ai.request.model = req.model(),
            "retry: retrying after a retryable error"
        );
        metrics::counter!("llm_tower_retries_total", "cause" => err.label()).increment(1);
        // `sleep` never completes for a delay past the representable future (no panic).
        Some(s.clock.sleep(delay))
    }

    fn clone_request(&mut self, req: &LlmRequest) -> Option<LlmRequest> {
        if self.attempts == 0
            && let Some(b) = &self.shared.budget
        {
            b.deposit();
        }
        Some(req.clone())
    }
}

/// Builds [`Retry`] services; see the [module docs](super).
#[derive(Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new()
    }
}

impl RetryLayer {
    /// 3 retries, backoff base 250 ms up to 8 s, `retry-after` honoured up to 60 s, a
    /// budget of 20 % extra retries (at least 10 per second), the tokio clock, and a
    /// randomly seeded jitter.
    pub fn new() -> Self {
        let seed = SmallRng::from_os_rng().next_u64();
        RetryLayer {
            policy: RetryPolicy {
                shared: Arc::new(Shared {
                    max_retries: 3,
                    base: Duration::from_millis(250),
                    max: Duration::from_secs(8),
                    retry_after_cap: Duration::from_secs(60),
                    budget: Some(Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2))),
                    clock: TokioClock::shared(),
                    seed: AtomicU64::new(seed),
                }),
                attempts: 0,
            },
        }
    }

    fn map(self, f: impl FnOnce(&mut Shared)) -> Self {
        let old = &self.policy.shared;
        let mut s = Shared {
            max_retries: old.max_retries,
            base: old.base,
            max: old.max,
            retry_after_cap: old.retry_after_cap,
            budget: old.budget.clone(),
            clock: old.clock.clone(),
            seed: AtomicU64::new(old.seed.load(Ordering::Relaxed)),
        };
        f(&mut s);
        RetryLayer {
            policy: RetryPolicy {
                shared: Arc::new(s),
                attempts: 0,
            },
        }
    }

    /// Retries after the first attempt (0 disables retrying).
    #[must_use]
    pub fn max_retries(self, n: u32) -> Self {
        self.map(|s| s.max_retries = n)
    }

    /// Exponential backoff: the n-th retry waits up to `min(max, base * 2^(n-1))`.
    #[must_use]
    pub fn backoff(self, base: Duration, max: Duration) -> Self {
        self.map(|s| {
            s.base = base;
            s.max = max.max(base);
        })
    }

    /// The longest `retry-after` honoured; a longer one ends the retries.
    #[must_use]
    pub fn retry_after_cap(self, cap: Duration) -> Self {
        self.map(|s| s.retry_after_cap = cap)
    }

    /// A retry budget: retries may add `percent` (a fraction: 0.2 is 20 %) of the recent
    /// request rate, plus `min_per_sec`, over a window of `ttl`.
    ///
    /// Never panics: out-of-range values are clamped to what tower's `TpsBudget`
    /// accepts — `ttl` to 1..=60 s, `percent` to 0.0..=1000.0 (NaN counts as 0.0: no
    /// extra retries beyond `min_per_sec`), `min_per_sec` to below `i32::MAX`.
    #[must_use]
    pub fn budget(self, ttl: Duration, min_per_sec: u32, percent: f32) -> Self {
        let (ttl, min_per_sec, percent) = budget_params(ttl, min_per_sec, percent);
        self.map(|s| s.budget = Some(Arc::new(TpsBudget::new(ttl, min_per_sec, percent))))
    }

    /// No retry budget (every retryable error may be retried).
    #[must_use]
    pub fn no_budget(self) -> Self {
        self.map(|s| s.budget = None)
    }

    /// The clock used for backoff sleeps and deadlines.
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.map(|s| s.clock = clock)
    }

    /// Seeds the jitter (tests).
    #[must_use]
    pub fn seed(self, seed: u64) -> Self {
        self.map(|s| s.seed = AtomicU64::new(seed))
    }

    /// The policy (one prototype; each request gets a clone).
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

/// Clamps retry-budget parameters into the ranges `TpsBudget::new` asserts.
fn budget_params(ttl: Duration, min_per_sec: u32, percent: f32) -> (Duration, u32, f32) {
    let ttl = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
    let percent = if percent.is_nan() {
        0.0
    } else {
        percent.clamp(0.0, 1000.0)
    };
    let min_per_sec = min_per_sec.min(i32::MAX.unsigned_abs() - 1);
    (ttl, min_per_sec, percent)
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        tower::retry::Retry::new(self.policy.clone(), inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_tower_core::{ChatRequest, Clock, ManualClock, Message};
    use tower::retry::Policy;

    #[test]
    fn out_of_range_budgets_are_clamped_not_panics() {
        for (ttl, min, pct) in [
            (Duration::ZERO, 0, f32::NAN),
            (Duration::MAX, u32::MAX, f32::INFINITY),
            (Duration::from_secs(10), i32::MAX.unsigned_abs(), -1.0),
            (Duration::from_secs(10), 10, f32::NEG_INFINITY),
            (Duration::from_secs(10), 10, 1e30),
        ] {
            let layer = RetryLayer::new().budget(ttl, min, pct);
            assert!(layer.policy().shared.budget.is_some());
        }
        assert_eq!(
            budget_params(Duration::ZERO, u32::MAX, f32::NAN),
            (Duration::from_secs(1), i32::MAX.unsigned_abs() - 1, 0.0)
        );
    }

    #[test]
    fn a_huge_retry_after_with_a_deadline_gives_up_instead_of_overflowing() {
        let clock = ManualClock::new();
        let layer = RetryLayer::new()
            .retry_after_cap(Duration::MAX)
            .no_budget()
            .clock(Arc::new(clock.clone()));
        let mut policy = layer.policy().clone();
        let mut req = LlmRequest::chat(ChatRequest::new("m", vec![Message::user("hi")]))
            .with_deadline(clock.now() + Duration::from_secs(60));
        let mut res = Err(Error::rate_limited("429", Some(Duration::MAX)));
        assert!(policy.retry(&mut req, &mut res).is_none());
    }
}
