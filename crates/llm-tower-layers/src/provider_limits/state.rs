//! The per-key state of one target, as a pure core with explicit time.
//!
//! The provider reports, for each dimension (requests, tokens, input tokens, output
//! tokens), what is left and when the window resets. Between two reports the layer counts
//! down itself: every admitted request takes its weight from `remaining`. A report
//! replaces the window, minus what is still in flight (those requests may not have been
//! counted by the provider yet: counting them twice only errs on the safe side).

use std::time::Instant;

use llm_tower_core::{LimitState, ProviderLimits, TokenEstimate};

/// The number of dimensions: requests, tokens, input tokens, output tokens.
pub(crate) const DIMS: usize = 4;

/// What a request weighs in each dimension.
pub(crate) type Weights = [u64; DIMS];

/// The weights of a request: 1 request; tokens from the estimate when there is one (at
/// least 1 token each, so an exhausted token window holds every request back).
pub(crate) fn weights(est: Option<&TokenEstimate>, default_output: u32) -> Weights {
    match est {
        Some(e) => {
            let output = u64::from(e.max_output_tokens.unwrap_or(default_output))
                .saturating_mul(e.output_choices.max(1));
            [
                1,
                e.weight(default_output).max(1),
                e.prompt_tokens.max(1),
                output.max(1),
            ]
        }
        None => [1, 1, 1, 1],
    }
}

/// The provider's limits as an array in [`Weights`] order.
pub(crate) fn dims(l: &ProviderLimits) -> [Option<LimitState>; DIMS] {
    [l.requests, l.tokens, l.input_tokens, l.output_tokens]
}

/// One dimension's window as this instance believes it to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    limit: Option<u64>,
    remaining: u64,
    /// When the window is full again; `None` when unknown.
    reset_at: Option<Instant>,
}

/// What a request may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send it (its weight has been taken).
    Admit,
    /// Nothing is left until this instant.
    WaitUntil(Instant),
    /// Nothing is left and when it comes back is unknown: the next answer of the
    /// provider to a request in flight will tell.
    WaitForAnswer,
    /// Nothing is known about the target yet and a request is on its way to find out:
    /// wait for its answer (and send anyway if it takes too long).
    Probe,
}

/// The state of one (provider, key, model).
#[derive(Debug, Default)]
pub(crate) struct Entry {
    windows: [Option<Window>; DIMS],
    in_flight: Weights,
    /// The provider has answered at least once (with or without limits).
    learned: bool,
    /// Requests waiting for an answer (told by [`Verdict::WaitForAnswer`] or
    /// [`Verdict::Probe`] and not yet done waiting).
    waiting: u32,
}

impl Entry {
    /// Decides for a request of `weights` at `now`, taking its weight when admitted.
    /// With `probe`, while the target has never answered, only one request at a time
    /// goes (the others wait to learn its limits).
    pub(crate) fn acquire(&mut self, now: Instant, weights: &Weights, probe: bool) -> Verdict {
        if probe && !self.learned && self.in_flight[0] > 0 {
            self.waiting = self.waiting.saturating_add(1);
            return Verdict::Probe;
        }
        let mut until: Option<Instant> = None;
        let mut for_answer = false;
        for (d, slot) in self.windows.iter_mut().enumerate() {
            let Some(win) = slot else { continue };
            if win.reset_at.is_some_and(|t| t <= now) {
                // The window is full again; when it next resets is unknown until the
                // provider says.
                match win.limit {
                    Some(limit) => {
                        win.remaining = limit;
                        win.reset_at = None;
                    }
                    None => {
                        *slot = None;
                        continue;
                    }
                }
            }
            let w = weights[d];
            if w <= win.remaining || win.limit.is_some_and(|l| w > l) {
                // Fits, or never could: a request heavier than the whole limit is the
                // provider's to refuse, not ours to hold forever.
                continue;
            }
            match win.reset_at {
                Some(t) => until = Some(until.map_or(t, |u| u.max(t))),
                None if self.in_flight[0] > 0 => for_answer = true,
                // Nothing in flight will tell us more: let this one find out.
                None => {}
            }
        }
        if let Some(t) = until {
            return Verdict::WaitUntil(t);
        }
        if for_answer {
            self.waiting = self.waiting.saturating_add(1);
            return Verdict::WaitForAnswer;
        }
        for (d, slot) in self.windows.iter_mut().enumerate() {
            if let Some(win) = slot {
                win.remaining = win.remaining.saturating_sub(weights[d]);
            }
        }
        for (f, w) in self.in_flight.iter_mut().zip(weights) {
            *f = f.saturating_add(*w);
        }
        Verdict::Admit
    }

    /// A request told to wait for an answer is done waiting.
    pub(crate) fn stop_waiting(&mut self) {
        self.waiting = self.waiting.saturating_sub(1);
    }

    /// Records the end of an admitted request: `answered` when the provider answered
    /// (not when the request was dropped), with what it reported. Returns whether
    /// requests wait for this news.
    pub(crate) fn finish(
        &mut self,
        now: Instant,
        weights: &Weights,
        answered: bool,
        limits: Option<&ProviderLimits>,
    ) -> bool {
        for (f, w) in self.in_flight.iter_mut().zip(weights) {
            *f = f.saturating_sub(*w);
        }
        self.learned |= answered;
        let wake = self.waiting > 0;
        let Some(limits) = limits else { return wake };
        for (d, state) in dims(limits).into_iter().enumerate() {
            let Some(state) = state else { continue };
            let Some(remaining) = state.remaining else {
                continue;
            };
            self.windows[d] = Some(Window {
                limit: state.limit,
                remaining: remaining.saturating_sub(self.in_flight[d]),
                reset_at: state.reset.and_then(|r| now.checked_add(r)),
            });
        }
        wake
    }

    /// What this instance believes is left in `dim`, for tests and debugging.
    #[cfg(test)]
    pub(crate) fn remaining(&self, dim: usize) -> Option<u64> {
        self.windows
            .get(dim)
            .copied()
            .flatten()
            .map(|w| w.remaining)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(limit: u64, remaining: u64, reset: Option<Duration>) -> ProviderLimits {
        ProviderLimits {
            requests: Some(LimitState {
                limit: Some(limit),
                remaining: Some(remaining),
                reset,
            }),
            ..Default::default()
        }
    }

    const ONE: Weights = [1, 1, 1, 1];

    #[test]
    fn an_unknown_target_admits_everything() {
        let mut e = Entry::default();
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(e.acquire(now, &ONE, false), Verdict::Admit);
        }
    }

    #[test]
    fn counts_down_between_reports_and_waits_for_the_reset() {
        let mut e = Entry::default();
        let t0 = Instant::now();
        assert_eq!(e.acquire(t0, &ONE, false), Verdict::Admit);
        e.finish(
            t0,
            &ONE,
            true,
            Some(&report(5, 3, Some(Duration::from_secs(2)))),
        );
        assert_eq!(e.acquire(t0, &ONE, false), Verdict::Admit);
        assert_eq!(e.acquire(t0, &ONE, false), Verdict::Admit);
        assert_eq!(e.acquire(t0, &ONE, false), Verdict::Admit);
        let reset = t0 + Duration::from_secs(2);
        assert_eq!(e.acquire(t0, &ONE, false), Verdict::WaitUntil(reset));
        // At the reset the window is full again, with an unknown next reset.
        assert_eq!(e.acquire(reset, &ONE, false), Verdict::Admit);
        assert_eq!(e.remaining(0), Some(4));
    }

    #[test]
    fn a_report_subtracts_what_is_still_in_flight() {
        let mut e = Entry::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(e.acquire(t0, &ONE, false), Verdict::Admit);
        }
        e.finish(t0, &ONE, true, Some(&report(10, 5, None)));
        assert_eq!(e.remaining(0), Some(3), "two requests are still in flight");
    }

    #[test]
    fn exhausted_without_a_reset_waits_for_an_answer_only_while_one_can_come() {
        let mut e = Entry::default();
        let t0 = Instant::now();
        e.acquire(t0, &ONE, false);
        e.finish(t0, &ONE, true, Some(&report(10, 1, None)));
        assert_eq!(e.acquire(t0, &ONE, false), Verdict::Admit);
        assert_eq!(e.acquire(t0, &ONE, false), Verdict::WaitForAnswer);
        e.finish(t0, &ONE, true, None);
        // Nothing in flight: one request goes to find out.
        assert_eq!(e.acquire(t0, &ONE, false), Verdict::Admit);
    }

    #[test]
    fn tokens_wait_when_the_estimate_does_not_fit() {
        let mut e = Entry::default();
        let t0 = Instant::now();
        let limits = ProviderLimits {
            tokens: Some(LimitState {
                limit: Some(10_000),
                remaining: Some(500),
                reset: Some(Duration::from_secs(6)),
            }),
            ..Default::default()
        };
        e.acquire(t0, &ONE, false);
        e.finish(t0, &ONE, true, Some(&limits));
        assert_eq!(e.acquire(t0, &[1, 400, 1, 1], false), Verdict::Admit);
        assert_eq!(
            e.acquire(t0, &[1, 400, 1, 1], false),
            Verdict::WaitUntil(t0 + Duration::from_secs(6))
        );
        // Heavier than the whole limit: never ours to hold.
        assert_eq!(e.acquire(t0, &[1, 20_000, 1, 1], false), Verdict::Admit);
    }

    #[test]
    fn a_target_never_heard_from_is_probed_one_request_at_a_time() {
        let mut e = Entry::default();
        let t0 = Instant::now();
        assert_eq!(e.acquire(t0, &ONE, true), Verdict::Admit);
        assert_eq!(e.acquire(t0, &ONE, true), Verdict::Probe);
        // A dropped probe teaches nothing: the next one goes.
        e.finish(t0, &ONE, false, None);
        assert_eq!(e.acquire(t0, &ONE, true), Verdict::Admit);
        // An answer, even without limits, ends the probing.
        e.finish(t0, &ONE, true, None);
        assert_eq!(e.acquire(t0, &ONE, true), Verdict::Admit);
        assert_eq!(e.acquire(t0, &ONE, true), Verdict::Admit);
    }

    #[test]
    fn weights_follow_the_estimate() {
        let est = TokenEstimate {
            prompt_tokens: 100,
            max_output_tokens: Some(50),
            output_choices: 2,
            source: llm_tower_core::UsageSource::Counted,
        };
        assert_eq!(weights(Some(&est), 0), [1, 200, 100, 100]);
        assert_eq!(weights(None, 0), [1, 1, 1, 1]);
    }
}
