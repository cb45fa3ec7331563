//! [`Balance`]: one request to one of several targets of a model.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use std::time::Instant;

use futures_util::future::BoxFuture;
use llm_tower_core::{Error, LlmRequest, LlmResponse, RequestBody, SharedClock, TokioClock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tower::{Service, ServiceExt};

use crate::token_count::TokenCounter;

/// How a [`Balance`] picks a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Power of two choices: of two targets drawn at random (by weight), the one with
    /// the lower PeakEWMA load (latency EWMA, peak-sensitive, times requests in flight).
    #[default]
    P2c,
    /// At random in proportion to the weights, ignoring load.
    Weighted,
}

/// Keeps requests that share a prefix on one target.
#[derive(Clone, Default)]
pub enum Affinity {
    /// None: every request is balanced on its own.
    #[default]
    None,
    /// Requests whose cacheable prefix (tools, then messages in order, up to `tokens`
    /// tokens counted with `counter`, whole messages) is the same go to the same target
    /// (rendezvous hashing over the available targets), while it is healthy and its load
    /// is at most twice the least loaded target's; the provider's prompt cache stays warm.
    PromptPrefix {
        /// How much of the prompt makes the prefix.
        tokens: u64,
        /// The counter (the stack's: exact for models with a public tokenizer).
        counter: Arc<dyn TokenCounter>,
    },
}

impl std::fmt::Debug for Affinity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Affinity::None => f.write_str("None"),
            Affinity::PromptPrefix { tokens, .. } => {
                write!(f, "PromptPrefix {{ tokens: {tokens} }}")
            }
        }
    }
}

/// The targets the attempts of one request went to, shared by the attempts (a request
/// extension [`Hedge`](super::Hedge) sets): a [`Balance`] sends a hedged attempt to a
/// target no other attempt of the request is on, when it has one.
#[derive(Debug, Clone, Default)]
pub struct Attempted(Arc<Mutex<Vec<Arc<str>>>>);

impl Attempted {
    fn contains(&self, name: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|n| &**n == name)
    }

    fn push(&self, name: &Arc<str>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.clone());
    }
}

/// Whether a target may be chosen now (`false` while its circuit is open).
type Available = Arc<dyn Fn() -> bool + Send + Sync>;

/// One target of a [`Balance`].
pub struct BalanceTarget<S> {
    name: Arc<str>,
    weight: u32,
    service: S,
    available: Option<Available>,
}

impl<S> BalanceTarget<S> {
    /// A target named `name` (in metrics and logs) with weight 1.
    pub fn new(name: impl Into<Arc<str>>, service: S) -> Self {
        BalanceTarget {
            name: name.into(),
            weight: 1,
            service,
            available: None,
        }
    }

    /// Its weight (at least 1): its share of the draws.
    #[must_use]
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight.max(1);
        self
    }

    /// Asked before each pick: a target answering `false` (its circuit breaker is open)
    /// is left out until it answers `true` again, as a `Discover` would remove and re-add
    /// it.
    #[must_use]
    pub fn available(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.available = Some(Arc::new(f));
        self
    }
}

/// A PeakEWMA load estimate (Finagle's, as `tower::load::PeakEwma` computes it): an
/// exponentially weighted moving average of latencies that jumps to any higher sample
/// (peak-sensitive), times the requests in flight plus one. Kept here rather than
/// wrapping targets in tower's `PeakEwma`: that one's `Cost` is opaque (no number for
/// metrics or for the affinity's overload test) and it needs `&mut` to call.
///
/// One addition: while requests are in flight, the estimate is at least their average
/// age, so a target that stops answering (whose requests hang, giving no latency to
/// learn from) looks slower with every moment rather than as fast as it last was.
#[derive(Debug)]
struct Ewma {
    /// (estimate in ns, when it was last updated, whether a real latency came in yet).
    rtt: Mutex<(f64, Instant, bool)>,
    pending: AtomicU64,
    /// The sum of the in-flight requests' start times, in ns since `base`.
    started: AtomicU64,
    base: Instant,
}

impl Ewma {
    fn new(now: Instant) -> Self {
        Ewma {
            rtt: Mutex::new((nanos(DEFAULT_RTT), now, false)),
            pending: AtomicU64::new(0),
            started: AtomicU64::new(0),
            base: now,
        }
    }

    fn since_base(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The average age of the requests in flight, in ns (0 without any).
    fn in_flight_age(&self, now: Instant) -> f64 {
        let pending = self.pending.load(Ordering::Relaxed);
        if pending == 0 {
            return 0.0;
        }
        let mean_start = self.started.load(Ordering::Relaxed) / pending;
        #[allow(clippy::cast_precision_loss)] // nanoseconds within f64's exact range for years
        let age = self.since_base(now).saturating_sub(mean_start) as f64;
        age
    }

    /// The estimate decayed to `now`, times (requests in flight + 1).
    fn load(&self, now: Instant) -> f64 {
        let (estimate, _) = self.estimate(now);
        estimate * self.in_flight_factor()
    }

    /// The estimate decayed to `now`, and whether a real latency came in yet.
    fn estimate(&self, now: Instant) -> (f64, bool) {
        let estimate = self.update(now, None);
        let measured = self.rtt.lock().unwrap_or_else(PoisonError::into_inner).2;
        (estimate.max(self.in_flight_age(now)), measured)
    }

    /// Requests in flight + 1.
    fn in_flight_factor(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)] // in-flight counts are small
        let pending = self.pending.load(Ordering::Relaxed) as f64;
        pending + 1.0
    }

    /// Decays the estimate to `now`, taking in a latency sample when given.
    fn update(&self, now: Instant, sample: Option<Duration>) -> f64 {
        let mut rtt = self.rtt.lock().unwrap_or_else(PoisonError::into_inner);
        let measured = sample.is_some();
        let sample = sample.map_or(0.0, nanos);
        if measured && !rtt.2 {
            // The first latency replaces the assumed one (which would otherwise take
            // many decay periods to fade).
            rtt.0 = sample;
            rtt.2 = true;
        } else if rtt.0 < sample {
            rtt.0 = sample;
        } else {
            let elapsed = nanos(now.saturating_duration_since(rtt.1));
            let decay = (-elapsed / nanos(DECAY)).exp();
            rtt.0 = rtt.0 * decay + sample * (1.0 - decay);
        }
        rtt.1 = now;
        rtt.0
    }
}

fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// A request in flight on a target: counted as pending until dropped; its latency goes
/// into the estimate when it answers (for a stream: at the first token, when providers
/// answer), not when it is cancelled.
struct InFlight<'a> {
    ewma: &'a Ewma,
    start: u64,
}

impl<'a> InFlight<'a> {
    fn start(ewma: &'a Ewma, now: Instant) -> Self {
        let start = ewma.since_base(now);
        ewma.started.fetch_add(start, Ordering::Relaxed);
        ewma.pending.fetch_add(1, Ordering::Relaxed);
        InFlight { ewma, start }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.ewma.pending.fetch_sub(1, Ordering::Relaxed);
        self.ewma.started.fetch_sub(self.start, Ordering::Relaxed);
    }
}

struct Slot<S> {
    name: Arc<str>,
    weight: u32,
    /// `route` and `target`, for metrics (shared strings: no allocation per request).
    labels: Vec<metrics::Label>,
    service: S,
    ewma: Ewma,
    available: Option<Available>,
    chosen: AtomicU64,
}

impl<S> Slot<S> {
    fn is_available(&self) -> bool {
        self.available.as_ref().is_none_or(|f| f())
    }
}

struct Inner<S> {
    route: Arc<str>,
    clock: SharedClock,
    strategy: Strategy,
    affinity: Affinity,
    slots: Vec<Slot<S>>,
    rng: Mutex<SmallRng>,
}

/// Spreads requests over a group of targets (see the [module docs](super)); a retryable
/// failure of the chosen target moves the request to the group's others, least loaded
/// first. Clones share the targets and their load estimates.
pub struct Balance<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Balance<S> {
    fn clone(&self) -> Self {
        Balance {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Balance<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balance")
            .field("route", &self.inner.route)
            .field("strategy", &self.inner.strategy)
            .field("affinity", &self.inner.affinity)
            .field(
                "targets",
                &self
                    .inner
                    .slots
                    .iter()
                    .map(|s| (&*s.name, s.weight))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The latency a target is assumed to have before it answered once.
const DEFAULT_RTT: Duration = Duration::from_millis(500);
/// How fast old latencies fade out of the estimate.
const DECAY: Duration = Duration::from_secs(10);

impl<S> Balance<S> {
    /// A group named `route` (in metrics) over `targets`, with the randomness seeded from
    /// the OS.
    pub fn new(
        route: impl Into<Arc<str>>,
        strategy: Strategy,
        targets: Vec<BalanceTarget<S>>,
    ) -> Self {
        Self::with_rng(route, strategy, targets, SmallRng::from_os_rng())
    }

    fn with_rng(
        route: impl Into<Arc<str>>,
        strategy: Strategy,
        targets: Vec<BalanceTarget<S>>,
        rng: SmallRng,
    ) -> Self {
        let clock = TokioClock::shared();
        let now = clock.now();
        let route: Arc<str> = route.into();
        let slots = targets
            .into_iter()
            .map(|t| Slot {
                labels: vec![
                    metrics::Label::new("route", metrics::SharedString::from_shared(route.clone())),
                    metrics::Label::new(
                        "target",
                        metrics::SharedString::from_shared(t.name.clone()),
                    ),
                ],
                name: t.name,
                weight: t.weight,
                service: t.service,
                ewma: Ewma::new(now),
                available: t.available,
                chosen: AtomicU64::new(0),
            })
            .collect();
        Balance {
            inner: Arc::new(Inner {
                route,
                clock,
                strategy,
                affinity: Affinity::None,
                slots,
                rng: Mutex::new(rng),
            }),
        }
    }

    /// Uses `clock` for latencies (default: tokio's).
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.rebuild(|inner| {
            let now = clock.now();
            for s in &mut inner.slots {
                s.ewma = Ewma::new(now);
            }
            inner.clock = clock;
        })
    }

    /// The same with a fixed seed (tests, reproducible simulations).
    #[must_use]
    pub fn seeded(self, seed: u64) -> Self {
        self.rebuild(|inner| inner.rng = Mutex::new(SmallRng::seed_from_u64(seed)))
    }

    /// Keeps requests sharing a prefix on one target (see [`Affinity`]).
    #[must_use]
    pub fn affinity(self, affinity: Affinity) -> Self {
        self.rebuild(|inner| inner.affinity = affinity)
    }

    fn rebuild(self, f: impl FnOnce(&mut Inner<S>)) -> Self {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => {
                f(&mut inner);
                Balance {
                    inner: Arc::new(inner),
                }
            }
            // Shared already: settings apply to fresh groups only.
            Err(inner) => Balance { inner },
        }
    }

    /// How many requests each target was given, by name.
    pub fn chosen(&self) -> Vec<(Arc<str>, u64)> {
        self.inner
            .slots
            .iter()
            .map(|s| (s.name.clone(), s.chosen.load(Ordering::Relaxed)))
            .collect()
    }

    /// Each target's load estimate now (nanoseconds of expected latency times requests in
    /// flight plus one), by name.
    pub fn loads(&self) -> Vec<(Arc<str>, f64)> {
        let now = self.inner.clock.now();
        self.inner
            .slots
            .iter()
            .map(|s| (s.name.clone(), s.ewma.load(now)))
            .collect()
    }
}

impl<S> Inner<S> {
    /// Draws an available target by weight, not `except`.
    fn draw(&self, rng: &mut SmallRng, avail: &[usize], except: Option<usize>) -> Option<usize> {
        let total: u64 = avail
            .iter()
            .filter(|&&i| Some(i) != except)
            .map(|&i| u64::from(self.slots[i].weight))
            .sum();
        if total == 0 {
            return None;
        }
        let mut x = rng.random_range(0..total);
        for &i in avail.iter().filter(|&&i| Some(i) != except) {
            let w = u64::from(self.slots[i].weight);
            if x < w {
                return Some(i);
            }
            x -= w;
        }
        None
    }

    /// The prefix hash of a request, for affinity.
    fn prefix_hash(&self, req: &LlmRequest) -> Option<u64> {
        let Affinity::PromptPrefix { tokens, counter } = &self.affinity else {
            return None;
        };
        let RequestBody::Chat(chat) = &req.body else {
            return None;
        };
        let mut h = DefaultHasher::new();
        let mut counted = 0u64;
        if !chat.tools.is_empty() {
            let tools = serde_json::to_string(&chat.tools).ok()?;
            counted += counter.count_text(&chat.model, &tools).tokens;
            tools.hash(&mut h);
        }
        for m in &chat.messages {
            if counted >= *tokens {
                break;
            }
            let text = serde_json::to_string(m).ok()?;
            counted += counter.count_text(&chat.model, &text).tokens;
            text.hash(&mut h);
        }
        Some(h.finish())
    }

    /// The targets to try, in order, each with its load when the order was made.
    fn order(&self, req: &LlmRequest) -> Vec<(usize, f64)> {
        let avail: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_available())
            .collect();
        if avail.is_empty() {
            // Every circuit is open: let the least recently failed decide (each answers
            // for itself, fast).
            let now = self.clock.now();
            return (0..self.slots.len())
                .map(|i| (i, self.slots[i].ewma.load(now)))
                .collect();
        }
        let now = self.clock.now();
        // A target that never answered yet is assumed as fast as the measured ones on
        // average (not starved behind a pessimistic guess; it is measured at once).
        let estimates: Vec<(usize, f64, bool)> = avail
            .iter()
            .map(|&i| {
                let (e, measured) = self.slots[i].ewma.estimate(now);
                (i, e, measured)
            })
            .collect();
        let measured: Vec<f64> = estimates.iter().filter(|e| e.2).map(|e| e.1).collect();
        #[allow(clippy::cast_precision_loss)] // a handful of targets
        let prior = if measured.is_empty() {
            nanos(DEFAULT_RTT)
        } else {
            measured.iter().sum::<f64>() / measured.len() as f64
        };
        let loads: Vec<(usize, f64)> = estimates
            .iter()
            .map(|&(i, e, m)| {
                (
                    i,
                    if m { e } else { prior } * self.slots[i].ewma.in_flight_factor(),
                )
            })
            .collect();
        let load_of = |i: usize| loads.iter().find(|(j, _)| *j == i).map(|(_, c)| *c);
        let first = self
            .prefix_hash(req)
            .and_then(|prefix| {
                let pick = *avail.iter().max_by_key(|&&i| {
                    let mut h = DefaultHasher::new();
                    prefix.hash(&mut h);
                    self.slots[i].name.hash(&mut h);
                    h.finish()
                })?;
                // Not when it is overloaded: requests queue on it and its load is over
                // twice the least loaded target's (an idle target keeps its prefixes even
                // when slower: a warm prompt cache is worth more).
                let least = loads.iter().map(|(_, c)| *c).fold(f64::INFINITY, f64::min);
                let busy = self.slots[pick].ewma.pending.load(Ordering::Relaxed) > 0;
                let overloaded = busy && load_of(pick)? > 2.0 * least;
                if overloaded {
                    metrics::counter!(
                        "llm_tower_balance_affinity_overloaded_total",
                        "route" => self.route.to_string(),
                    )
                    .increment(1);
                }
                (!overloaded).then_some(pick)
            })
            .or_else(|| {
                let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
                let a = self.draw(&mut rng, &avail, None)?;
                if self.strategy == Strategy::Weighted || avail.len() < 2 {
                    return Some(a);
                }
                let b = self.draw(&mut rng, &avail, Some(a))?;
                drop(rng);
                match (load_of(a), load_of(b)) {
                    (Some(la), Some(lb)) if lb < la => Some(b),
                    _ => Some(a),
                }
            });
        let first = first.and_then(|i| Some((i, load_of(i)?)));
        let mut rest: Vec<(usize, f64)> = loads
            .into_iter()
            .filter(|(i, _)| first.is_none_or(|(f, _)| f != *i))
            .collect();
        rest.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut order: Vec<(usize, f64)> = first.into_iter().chain(rest).collect();
        // Another attempt of the same request (a hedge) goes elsewhere first.
        if let Some(tried) = req.extensions.get::<Attempted>() {
            order.sort_by_key(|&(i, _)| tried.contains(&self.slots[i].name));
        }
        order
    }
}

impl<S> Service<LlmRequest> for Balance<S>
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
            let order = inner.order(&req);
            let name = |n: usize| {
                order
                    .get(n)
                    .map_or_else(String::new, |&(i, _)| inner.slots[i].name.to_string())
            };
            super::in_order(order.len(), req, "balance", name, |n, attempt| {
                let inner = &inner;
                let (i, load) = order[n];
                async move {
                    let slot = &inner.slots[i];
                    if let Some(tried) = attempt.extensions.get::<Attempted>() {
                        tried.push(&slot.name);
                    }
                    slot.chosen.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("llm_tower_balance_chosen_total", slot.labels.clone())
                        .increment(1);
                    let load_ms = load / 1e6;
                    metrics::gauge!("llm_tower_balance_load_ms", slot.labels.clone()).set(load_ms);
                    tracing::debug!(
                        route = &*inner.route,
                        target = &*slot.name,
                        load_ms,
                        "balance: target chosen"
                    );
                    let sent = inner.clock.now();
                    let _in_flight = InFlight::start(&slot.ewma, sent);
                    let result = slot.service.clone().oneshot(attempt).await;
                    let now = inner.clock.now();
                    slot.ewma
                        .update(now, Some(now.saturating_duration_since(sent)));
                    result
                }
            })
            .await
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::token_count::Tokenizers;
    use llm_tower_core::{ChatRequest, ErrorKind, Message, ResponseBody};
    use tower::util::BoxCloneSyncService;

    type Svc = BoxCloneSyncService<LlmRequest, LlmResponse, Error>;

    /// Answers with its name after `delay`, or fails with `fail`.
    fn target(name: &'static str, delay: Duration, fail: Option<ErrorKind>) -> Svc {
        BoxCloneSyncService::new(tower::service_fn(move |_req: LlmRequest| async move {
            tokio::time::sleep(delay).await;
            match fail {
                Some(k) => Err(Error::new(k, name)),
                None => {
                    let chat = llm_tower_core::ChatResponse::new(name, name, 0, Vec::new());
                    Ok(LlmResponse::new(ResponseBody::Chat(chat)))
                }
            }
        }))
    }

    fn req(text: &str) -> LlmRequest {
        LlmRequest::chat(ChatRequest::new("m", vec![Message::user(text)]))
    }

    fn count(b: &Balance<Svc>, name: &str) -> u64 {
        b.chosen()
            .iter()
            .find(|(n, _)| &**n == name)
            .map_or(0, |(_, c)| *c)
    }

    #[tokio::test(start_paused = true)]
    async fn p2c_sends_most_requests_to_the_faster_target() {
        let b = Balance::new(
            "r",
            Strategy::P2c,
            vec![
                BalanceTarget::new("fast", target("fast", Duration::from_millis(10), None)),
                BalanceTarget::new("slow", target("slow", Duration::from_millis(400), None)),
            ],
        )
        .seeded(7);
        // Concurrent waves, so load (latency x in flight) matters.
        for _ in 0..20 {
            let wave: Vec<_> = (0..5).map(|_| b.clone().oneshot(req("hi"))).collect();
            for r in futures_util::future::join_all(wave).await {
                r.unwrap();
            }
        }
        let (fast, slow) = (count(&b, "fast"), count(&b, "slow"));
        assert_eq!(fast + slow, 100);
        assert!(fast >= 75, "fast {fast}, slow {slow}");
        let loads = b.loads();
        assert!(loads[0].1 < loads[1].1, "{loads:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn weighted_follows_the_weights() {
        let b = Balance::new(
            "r",
            Strategy::Weighted,
            vec![
                BalanceTarget::new("a", target("a", Duration::ZERO, None)),
                BalanceTarget::new("b", target("b", Duration::ZERO, None)).weight(3),
            ],
        )
        .seeded(1);
        for _ in 0..400 {
            b.clone().oneshot(req("x")).await.unwrap();
        }
        let a = count(&b, "a");
        assert!((70..=130).contains(&a), "a got {a} of 400 (expected ~100)");
    }

    #[tokio::test(start_paused = true)]
    async fn unavailable_targets_are_skipped_and_failures_move_on() {
        let open = Arc::new(AtomicBool::new(true));
        let o = open.clone();
        let b = Balance::new(
            "r",
            Strategy::Weighted,
            vec![
                BalanceTarget::new("open", target("open", Duration::ZERO, None))
                    .available(move || !o.load(Ordering::SeqCst)),
                BalanceTarget::new("ok", target("ok", Duration::ZERO, None)),
            ],
        )
        .seeded(3);
        for _ in 0..20 {
            let r = b.clone().oneshot(req("x")).await.unwrap();
            assert_eq!(r.as_chat().unwrap().id, "ok");
        }
        open.store(false, Ordering::SeqCst);
        for _ in 0..40 {
            b.clone().oneshot(req("x")).await.unwrap();
        }
        assert!(count(&b, "open") > 5, "back in the draw once closed");

        let b = Balance::new(
            "r",
            Strategy::P2c,
            vec![
                BalanceTarget::new(
                    "down",
                    target("down", Duration::ZERO, Some(ErrorKind::Overloaded)),
                ),
                BalanceTarget::new("up", target("up", Duration::ZERO, None)),
            ],
        );
        for _ in 0..10 {
            let r = b.clone().oneshot(req("x")).await.unwrap();
            assert_eq!(r.as_chat().unwrap().id, "up");
        }
        let b = Balance::new(
            "r",
            Strategy::P2c,
            vec![
                BalanceTarget::new(
                    "bad",
                    target("bad", Duration::ZERO, Some(ErrorKind::InvalidRequest)),
                ),
                BalanceTarget::new(
                    "bad2",
                    target("bad2", Duration::ZERO, Some(ErrorKind::InvalidRequest)),
                ),
            ],
        );
        let e = b.oneshot(req("x")).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidRequest,
            "client errors do not move on"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn affinity_keeps_a_prefix_on_one_target_until_it_is_overloaded() {
        let names = ["a", "b", "c", "d"];
        let targets = names
            .iter()
            .map(|&n| BalanceTarget::new(n, target(n, Duration::from_millis(20), None)))
            .collect();
        let b = Balance::new("r", Strategy::P2c, targets)
            .seeded(5)
            .affinity(Affinity::PromptPrefix {
                tokens: 1024,
                counter: Arc::new(Tokenizers::new()),
            });
        let mut by_prefix: std::collections::HashMap<String, std::collections::HashSet<String>> =
            Default::default();
        for i in 0..40 {
            let prompt = format!("system prompt number {}", i % 4);
            let r = b.clone().oneshot(req(&prompt)).await.unwrap();
            by_prefix
                .entry(prompt)
                .or_default()
                .insert(r.as_chat().unwrap().id.clone());
        }
        for (p, t) in &by_prefix {
            assert_eq!(t.len(), 1, "{p} went to {t:?}");
        }
        // Many concurrent requests with one prefix: the sticky target's load passes twice
        // the least loaded's, and some go elsewhere.
        let wave: Vec<_> = (0..12)
            .map(|_| b.clone().oneshot(req("system prompt number 0")))
            .collect();
        let ids: std::collections::HashSet<String> = futures_util::future::join_all(wave)
            .await
            .into_iter()
            .map(|r| r.unwrap().as_chat().unwrap().id.clone())
            .collect();
        assert!(ids.len() > 1, "{ids:?}");
    }
}
