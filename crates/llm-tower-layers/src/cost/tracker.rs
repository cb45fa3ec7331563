//! [`CostTracker`]: prices, budgets with reserve -> settle, alerts and analytics.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use llm_tower_core::{
    CallerKey, Error, LlmRequest, Money, ResponseBody, SharedClock, TokioClock, Usage, UsageMeter,
    UsageSource,
};

use super::alert::{AlertKind, AlertSink, BudgetAlert};
use super::analytics::{Analytics, AnalyticsSnapshot, Record};
use super::budget::{Budget, BudgetAction, BudgetScope};
use super::price::{ModelPrice, PriceTable, model_candidates};
use super::store::{BudgetStore, BudgetUsage, MemoryBudgetStore, ReservationId, ReserveOutcome};
use crate::token_count::{TokenCounter, Tokenizers};

struct Inner {
    prices: PriceTable,
    budgets: Vec<Budget>,
    store: Arc<dyn BudgetStore>,
    alerts: Arc<dyn AlertSink>,
    /// Log alerts at WARN (else DEBUG): by default only when no sink was given, so an
    /// alert is neither reported twice nor unseen.
    warn_alerts: bool,
    clock: SharedClock,
    counter: Arc<dyn TokenCounter>,
    analytics: Analytics,
    reservation_ttl: Duration,
    default_max_output: u32,
    estimate_margin_percent: u64,
}

/// Tracks cost, enforces budgets and keeps analytics. Cheap to clone (one `Arc`); all
/// clones share the same counters.
#[derive(Clone)]
pub struct CostTracker {
    inner: Arc<Inner>,
}

impl fmt::Debug for CostTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostTracker")
            .field("models", &self.inner.prices.len())
            .field("budgets", &self.inner.budgets)
            .field("store", &self.inner.store)
            .finish()
    }
}

/// Builds a [`CostTracker`].
pub struct CostTrackerBuilder {
    prices: PriceTable,
    budgets: Vec<Budget>,
    store: Option<Arc<dyn BudgetStore>>,
    alerts: Arc<dyn AlertSink>,
    alerts_subscribed: bool,
    warn_alerts: Option<bool>,
    clock: SharedClock,
    counter: Option<Arc<dyn TokenCounter>>,
    reservation_ttl: Duration,
    default_max_output: u32,
    estimate_margin_percent: u64,
}

impl fmt::Debug for CostTrackerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CostTrackerBuilder")
            .field("budgets", &self.budgets)
            .finish()
    }
}

impl CostTrackerBuilder {
    /// The price table.
    #[must_use]
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Adds a budget.
    #[must_use]
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budgets.push(budget);
        self
    }

    /// Where budget counters live (default: in memory).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn BudgetStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Who receives budget alerts. With a sink, the tracker logs each alert at DEBUG
    /// only; without one, at WARN.
    #[must_use]
    pub fn alerts(mut self, sink: impl AlertSink) -> Self {
        self.alerts = Arc::new(sink);
        self.alerts_subscribed = true;
        self
    }

    /// Whether the tracker logs each alert at WARN (`true`) or at DEBUG. Default: WARN
    /// without a sink, DEBUG with one (the sink is where alerts go; logging them at WARN
    /// too would report each twice).
    #[must_use]
    pub fn warn_on_alerts(mut self, warn: bool) -> Self {
        self.warn_alerts = Some(warn);
        self
    }

    /// The clock (calendar periods).
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The token counter used when neither the provider nor the token-count layer counted.
    #[must_use]
    pub fn counter(mut self, counter: Arc<dyn TokenCounter>) -> Self {
        self.counter = Some(counter);
        self
    }

    /// How long an unsettled reservation is held by a shared store (default 10 minutes).
    #[must_use]
    pub fn reservation_ttl(mut self, ttl: Duration) -> Self {
        self.reservation_ttl = ttl;
        self
    }

    /// The output bound when neither the request nor the price table gives one (default 4096).
    #[must_use]
    pub fn default_max_output(mut self, n: u32) -> Self {
        self.default_max_output = n;
        self
    }

    /// Extra margin on heuristic (non-exact) prompt estimates, in percent (default 20).
    #[must_use]
    pub fn estimate_margin_percent(mut self, p: u64) -> Self {
        self.estimate_margin_percent = p;
        self
    }

    /// Builds the tracker.
    ///
    /// # Errors
    /// `Config` when two budgets share a name.
    pub fn build(self) -> Result<CostTracker, Error> {
        for (i, b) in self.budgets.iter().enumerate() {
            if self.budgets[..i].iter().any(|o| o.name == b.name) {
                return Err(Error::config(format!("duplicate budget name {:?}", b.name)));
            }
        }
        Ok(CostTracker {
            inner: Arc::new(Inner {
                prices: self.prices,
                budgets: self.budgets,
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryBudgetStore::new())),
                alerts: self.alerts,
                warn_alerts: self.warn_alerts.unwrap_or(!self.alerts_subscribed),
                clock: self.clock,
                counter: self.counter.unwrap_or_else(|| Arc::new(Tokenizers::new())),
                analytics: Analytics::default(),
                reservation_ttl: self.reservation_ttl,
                default_max_output: self.default_max_output,
                estimate_margin_percent: self.estimate_margin_percent,
            }),
        })
    }
}

/// A budget's current state, for dashboards and `/v1/usage`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BudgetStatus {
    /// The budget's name.
    pub budget: String,
    /// The counter within the budget: the caller or key for per-caller budgets, the model
    /// or provider for those scopes, `global` for a global budget.
    pub key: String,
    /// `true` when the counter holds the spend of several callers (global, model and
    /// provider budgets): a gateway shows a non-admin caller only whether it is exhausted
    /// and when it resets, never the spend.
    pub shared: bool,
    /// When the current period ends (Unix seconds); `None` for a `total` budget.
    pub resets_at: Option<u64>,
    /// The limit.
    pub limit: Money,
    /// Settled spend this period.
    pub spent: Money,
    /// Held by requests in flight.
    pub reserved: Money,
}

struct Hold {
    budget: usize,
    key: String,
    id: ReservationId,
    caller: Option<String>,
    period_start: u64,
}

/// Spend held for one request until it settles. Dropping it unsettled settles it with
/// what was counted (prompt plus the meter's output tokens).
pub struct Reservation {
    tracker: CostTracker,
    holds: Vec<Hold>,
    model: String,
    provider: Option<Arc<str>>,
    caller: Option<CallerKey>,
    price: Option<ModelPrice>,
    prompt_tokens: u64,
    prompt_source: UsageSource,
    worst_case: Money,
    /// The prompt tokens of the worst case (the estimate, with the margin when heuristic).
    bound_prompt: u64,
    /// The output tokens of the worst case (the output bound times the outputs asked for).
    bound_output: u64,
    meter: UsageMeter,
    settled: bool,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("model", &self.model)
            .field("worst_case", &self.worst_case)
            .field("budgets", &self.holds.len())
            .finish()
    }
}

impl CostTracker {
    /// A builder with no prices, no budgets, an in-memory store and the tokio clock.
    pub fn builder() -> CostTrackerBuilder {
        CostTrackerBuilder {
            prices: PriceTable::new(),
            budgets: Vec::new(),
            store: None,
            alerts: Arc::new(()),
            alerts_subscribed: false,
            warn_alerts: None,
            clock: TokioClock::shared(),
            counter: None,
            reservation_ttl: Duration::from_secs(600),
            default_max_output: 4096,
            estimate_margin_percent: 20,
        }
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.inner.prices
    }

    /// The budgets.
    pub fn budgets(&self) -> &[Budget] {
        &self.inner.budgets
    }

    /// The cost of `usage` on `model`, when its price is known.
    pub fn cost_of(&self, model: &str, usage: &Usage) -> Option<Money> {
        self.inner.prices.get(model).map(|p| p.cost(usage))
    }

    /// Records a request that the response cache answered: one request and one cache
    /// hit for `model` (the name the request used), `provider` (the one that answered
    /// the stored response, when known) and the request's caller, with no tokens and no
    /// cost. No budget is touched: a hit spends nothing.
    pub fn record_cache_hit(&self, req: &LlmRequest, provider: Option<&str>) {
        self.inner.analytics.record(&Record {
            model: req.model(),
            provider,
            caller: req.ctx.caller.as_ref().map(CallerKey::as_str),
            prompt_tokens: 0,
            completion_tokens: 0,
            cost: Money::ZERO,
            error: false,
            cache_hit: true,
        });
    }

    /// The analytics so far.
    pub fn snapshot(&self) -> AnalyticsSnapshot {
        self.inner.analytics.snapshot()
    }

    /// The counter behind the tracker (used to count output nobody else counted).
    pub fn counter(&self) -> &Arc<dyn TokenCounter> {
        &self.inner.counter
    }

    /// `model_target`: the model budget name `req`'s model resolves to (see
    /// [`model_budget_target`]).
    fn scope_key(
        budget: &Budget,
        req: &LlmRequest,
        model_target: Option<&str>,
    ) -> Option<(String, Option<String>)> {
        let caller = req.ctx.caller.as_ref().map(CallerKey::as_str);
        match &budget.scope {
            BudgetScope::Global => Some((String::new(), None)),
            BudgetScope::EachCaller => {
                let c = caller.unwrap_or("anonymous").to_owned();
                Some((c.clone(), Some(c)))
            }
            BudgetScope::Caller(k) => {
                (caller == Some(k.as_str())).then(|| (k.clone(), Some(k.clone())))
            }
            BudgetScope::Model(m) => (model_target == Some(m.as_str())).then(|| (m.clone(), None)),
            BudgetScope::Provider(p) => {
                (req.ctx.provider.as_deref() == Some(p.as_str())).then(|| (p.clone(), None))
            }
        }
    }

    /// The state of every budget counter that applies to `caller` now: the shared ones
    /// (global, model, provider), the caller's own counter of per-caller budgets, and the
    /// budgets of this caller's key. Another caller's key budget is never included.
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn budget_status(&self, caller: Option<&str>) -> Result<Vec<BudgetStatus>, Error> {
        self.status(caller, false).await
    }

    /// Like [`budget_status`](Self::budget_status), plus the budgets of every other
    /// caller's key (for an operator's view).
    ///
    /// # Errors
    /// `Store` when the store fails.
    pub async fn budget_status_all(
        &self,
        caller: Option<&str>,
    ) -> Result<Vec<BudgetStatus>, Error> {
        self.status(caller, true).await
    }

    async fn status(&self, caller: Option<&str>, all: bool) -> Result<Vec<BudgetStatus>, Error> {
        let now = self.inner.clock.unix_secs();
        let mut out = Vec::new();
        for b in &self.inner.budgets {
            let (key, shared) = match &b.scope {
                BudgetScope::Global => (String::new(), true),
                BudgetScope::EachCaller => (caller.unwrap_or("anonymous").to_owned(), false),
                BudgetScope::Caller(k) if all || caller == Some(k.as_str()) => (k.clone(), false),
                BudgetScope::Caller(_) => continue,
                BudgetScope::Model(k) | BudgetScope::Provider(k) => (k.clone(), true),
            };
            let (period_id, _, period_end) = b.period.window(now);
            let store_key = format!("{}:{}:{}:{}", b.name, key, b.period.as_str(), period_id);
            let BudgetUsage { spent, reserved } = self.inner.store.usage(&store_key).await?;
            out.push(BudgetStatus {
                budget: b.name.clone(),
                key: if key.is_empty() {
                    "global".to_owned()
                } else {
                    key
                },
                shared,
                resets_at: (period_end != u64::MAX).then_some(period_end),
                limit: b.limit,
                spent,
                reserved,
            });
        }
        Ok(out)
    }

    /// Holds the worst-case cost of `req` in every budget that applies to it.
    ///
    /// The worst case is the prompt estimate (from the token-count layer, or counted here;
    /// heuristic estimates get the configured margin) times the input price, plus the
    /// output bound (`max_tokens`, else the model's maximum output from the price table,
    /// else the default) times the number of outputs asked for
    /// ([`LlmRequest::output_choices`]: `n`, times the prompts of a legacy completion)
    /// times the output price.
    ///
    /// # Errors
    /// `BudgetExceeded` when a blocking budget has no room (nothing stays held), `Config`
    /// when a blocking budget applies to a model without a price, `Store` on store failure.
    pub async fn reserve(&self, req: &LlmRequest) -> Result<Reservation, Error> {
        let inner = &self.inner;
        let model = req.model();
        let price = inner.prices.get(model).copied();
        let (prompt_tokens, prompt_source) = match req.ctx.token_estimate {
            Some(e) => (e.prompt_tokens, e.source),
            None => {
                let c = inner.counter.count_prompt(&req.body);
                (c.tokens, c.source)
            }
        };
        let margin_prompt = if prompt_source == UsageSource::Counted {
            prompt_tokens
        } else {
            let margin = u128::from(prompt_tokens) * u128::from(inner.estimate_margin_percent);
            let margin = u64::try_from(margin.div_ceil(100)).unwrap_or(u64::MAX);
            prompt_tokens.saturating_add(margin)
        };
        let model_max = price.and_then(|p| p.max_output_tokens);
        if let (Some(asked), Some(cap)) = (req.max_output_tokens(), model_max)
            && asked > cap
        {
            return Err(Error::invalid_request(format!(
                "max_tokens: {asked} is above the largest output of model {model:?} ({cap} tokens)"
            ))
            .with_code("invalid_value")
            .with_param("max_tokens"));
        }
        let max_out = req
            .max_output_tokens()
            .or(model_max)
            .unwrap_or(inner.default_max_output);
        // `max_tokens` bounds each output: `n` choices (times the prompts of a legacy
        // completion) may each produce that much.
        let max_out = u64::from(max_out).saturating_mul(req.output_choices());
        let worst_case = price.map_or(Money::ZERO, |p| p.worst_case(margin_prompt, max_out));
        let mut reservation = Reservation {
            tracker: self.clone(),
            holds: Vec::new(),
            model: model.to_owned(),
            provider: req.ctx.provider.clone(),
            caller: req.ctx.caller.clone(),
            price,
            prompt_tokens,
            prompt_source,
            worst_case,
            bound_prompt: margin_prompt,
            bound_output: max_out,
            meter: req.ctx.meter.clone().unwrap_or_default(),
            settled: false,
        };
        let now = inner.clock.unix_secs();
        let model_target = model_budget_target(&inner.budgets, model);
        for (i, b) in inner.budgets.iter().enumerate() {
            let Some((scope_value, caller)) = Self::scope_key(b, req, model_target) else {
                continue;
            };
            if price.is_none() && b.action == BudgetAction::Block {
                reservation.release().await;
                return Err(Error::config(format!(
                    "model {model:?} has no price, so budget {:?} cannot be enforced: add it to the price table",
                    b.name
                )));
            }
            let (period_id, period_start, period_end) = b.period.window(now);
            let key = format!(
                "{}:{}:{}:{}",
                b.name,
                scope_value,
                b.period.as_str(),
                period_id
            );
            let limit = if b.action == BudgetAction::Block {
                b.limit
            } else {
                Money::MAX
            };
            let scope_name = describe_scope(&b.scope, &scope_value);
            if worst_case > limit {
                // No amount of waiting makes room: a client error, not a 402 to retry.
                reservation.release().await;
                return Err(Error::invalid_request(format!(
                    "this request may cost up to ${worst_case}, more than the whole limit \
                     (${}) of budget {:?} ({} {scope_name}), so it can never fit; \
                     lower max_tokens (or n)",
                    b.limit,
                    b.name,
                    b.period.as_str(),
                ))
                .with_code("budget_too_small"));
            }
            match inner
                .store
                .reserve(&key, worst_case, limit, inner.reservation_ttl)
                .await
            {
                Ok(ReserveOutcome::Reserved(id)) => {
                    reservation.holds.push(Hold {
                        budget: i,
                        key,
                        id,
                        caller,
                        period_start,
                    });
                }
                Ok(ReserveOutcome::Exceeded { spent, reserved }) => {
                    reservation.release().await;
                    // A refusal is a failed request in the analytics.
                    inner.analytics.record(&Record {
                        model,
                        provider: req.ctx.provider.as_deref(),
                        caller: req.ctx.caller.as_ref().map(CallerKey::as_str),
                        prompt_tokens: 0,
                        completion_tokens: 0,
                        cost: Money::ZERO,
                        error: true,
                        cache_hit: false,
                    });
                    let left = b.limit.saturating_sub(spent).saturating_sub(reserved);
                    tracing::debug!(
                        budget = %b.name,
                        gen_ai.request.model = model,
                        worst_case = %worst_case,
                        left = %left,
                        "budget: request refused"
                    );
                    metrics::counter!("llm_tower_budget_refusals_total", "budget" => b.name.clone()).increment(1);
                    // A counter shared by several callers (global, model, provider) never
                    // tells one caller what the others spent.
                    let shared = matches!(
                        b.scope,
                        BudgetScope::Global | BudgetScope::Model(_) | BudgetScope::Provider(_)
                    );
                    let msg = if shared {
                        format!(
                            "budget {:?} ({} {scope_name}) has no room for this request \
                             (it may cost up to ${worst_case})",
                            b.name,
                            b.period.as_str(),
                        )
                    } else {
                        format!(
                            "budget {:?} ({} {scope_name}) has ${left} left of ${} (${spent} spent, \
                             ${reserved} held by requests in flight); this request may cost up to ${worst_case}",
                            b.name,
                            b.period.as_str(),
                            b.limit,
                        )
                    };
                    let mut err = Error::budget_exceeded(msg);
                    if period_end != u64::MAX {
                        err = err
                            .with_retry_after(Duration::from_secs(period_end.saturating_sub(now)));
                    }
                    alert_exhausted(inner, b, &key, caller, period_start, spent).await;
                    return Err(err);
                }
                Err(e) => {
                    reservation.release().await;
                    return Err(e);
                }
            }
        }
        Ok(reservation)
    }
}

impl Reservation {
    /// The worst-case cost held.
    pub fn worst_case(&self) -> Money {
        self.worst_case
    }

    /// Names the provider that answered, for the analytics, when the request context did
    /// not name one (no router in front).
    pub fn observe_provider(&mut self, provider: Option<&Arc<str>>) {
        if self.provider.is_none() {
            self.provider = provider.cloned();
        }
    }

    /// `usage` if it can be real for this request, else `usage` clamped to the worst case
    /// the reservation held (logged and counted in `llm_tower_implausible_usage_total`).
    ///
    /// Usage cannot be real when a count is above `u32::MAX`, or far above the worst case:
    /// more than [`IMPLAUSIBLE_FACTOR`] times the prompt estimate (or the output bound) plus
    /// [`IMPLAUSIBLE_SLACK`] tokens. The slack and factor leave room for a heuristic prompt
    /// estimate that is off (images, unknown tokenizers); a hostile or broken upstream that
    /// reports 2^63 tokens cannot poison a budget or wrap the analytics.
    pub fn plausible_usage(&self, usage: Usage) -> Usage {
        let Some(clamped) = self.clamp_usage(usage) else {
            return usage;
        };
        let provider = self.provider.as_deref().unwrap_or("unknown");
        tracing::warn!(
            gen_ai.request.model = %self.model,
            gen_ai.provider.name = provider,
            reported_prompt_tokens = usage.prompt_tokens,
            reported_completion_tokens = usage.completion_tokens,
            worst_case_prompt_tokens = self.bound_prompt,
            worst_case_completion_tokens = self.bound_output,
            "cost: the provider reported usage that cannot be real; settled at the reserved worst case"
        );
        metrics::counter!("llm_tower_implausible_usage_total", "gen_ai.provider.name" => provider.to_owned())
            .increment(1);
        clamped
    }

    /// `None` when `usage` can be real for this request, else `usage` clamped to the
    /// worst case (no log, no metric: see [`plausible_usage`](Self::plausible_usage)).
    fn clamp_usage(&self, usage: Usage) -> Option<Usage> {
        let bound = |worst: u64| {
            worst
                .saturating_mul(IMPLAUSIBLE_FACTOR)
                .saturating_add(IMPLAUSIBLE_SLACK)
                .min(u64::from(u32::MAX))
        };
        if usage.prompt_tokens <= bound(self.bound_prompt)
            && usage.completion_tokens <= bound(self.bound_output)
            && usage.cached_prompt_tokens <= usage.prompt_tokens
        {
            return None;
        }
        let prompt = usage.prompt_tokens.min(self.bound_prompt);
        Some(
            Usage::new(
                prompt,
                usage.completion_tokens.min(self.bound_output),
                usage.source,
            )
            .with_cached(usage.cached_prompt_tokens.min(prompt)),
        )
    }

    /// The meter whose output tokens settle the reservation if it is dropped.
    pub fn meter(&self) -> &UsageMeter {
        &self.meter
    }

    /// The usage counted so far: the prompt estimate plus the meter's output tokens.
    pub fn counted_usage(&self) -> Usage {
        let source = if self.prompt_source == UsageSource::Counted {
            UsageSource::Counted
        } else {
            UsageSource::Estimated
        };
        Usage::new(self.prompt_tokens, self.meter.completion_tokens(), source)
    }

    /// What `usage` costs on the reserved model, when it has a price: the amount
    /// [`settle`](Self::settle) would record for it.
    pub fn cost_of(&self, usage: &Usage) -> Option<Money> {
        let usage = self.clamp_usage(*usage).unwrap_or(*usage);
        self.price.map(|p| p.cost(&usage))
    }

    /// Counts the output of a non-streamed body (when the provider reported no usage).
    pub fn count_body(&self, body: &ResponseBody) -> Usage {
        let out = self.tracker.inner.counter.count_output(&self.model, body);
        let exact = self.prompt_source == UsageSource::Counted && out.is_exact();
        let source = if exact {
            UsageSource::Counted
        } else {
            UsageSource::Estimated
        };
        Usage::new(self.prompt_tokens, out.tokens, source)
    }

    /// Counts a streamed chunk's output into the meter (used when no token-count layer
    /// is outside the cost layer).
    pub fn count_chunk(&self, chunk: &llm_tower_core::ChatChunk) {
        let n = self
            .tracker
            .inner
            .counter
            .count_chunk(&self.model, chunk)
            .tokens;
        self.meter.add_completion(n);
    }

    /// Replaces the held worst case with the real cost of `usage` (zero when `None`), fires
    /// the alerts this crosses, and records the analytics. Returns the cost, when priced.
    pub async fn settle(mut self, usage: Option<Usage>, error: bool) -> Option<Money> {
        self.settled = true;
        let holds = std::mem::take(&mut self.holds);
        settle_holds(&self, holds, usage, error).await
    }

    async fn release(&mut self) {
        let holds = std::mem::take(&mut self.holds);
        let store = &self.tracker.inner.store;
        for h in holds {
            if let Err(e) = store.settle(&h.key, &h.id, Money::ZERO).await {
                tracing::warn!(error = %e, "budget: could not release a reservation");
            }
        }
        self.settled = true;
    }
}

/// The model budget name `model` resolves to, matched like a price lookup: the exact
/// name, then without a `provider/` prefix, then the longest prefix ending at a `-` that
/// names a model budget (so a budget on `gpt-4o` covers `gpt-4o-2024-08-06`, unless a
/// budget on that exact snapshot exists).
fn model_budget_target<'a>(budgets: &'a [Budget], model: &str) -> Option<&'a str> {
    model_candidates(model).find_map(|name| {
        budgets.iter().find_map(|b| match &b.scope {
            BudgetScope::Model(m) if m == name => Some(m.as_str()),
            _ => None,
        })
    })
}

/// Reported usage above this many times the reservation's worst case (plus
/// [`IMPLAUSIBLE_SLACK`]) is treated as impossible; see [`Reservation::plausible_usage`].
pub const IMPLAUSIBLE_FACTOR: u64 = 4;
/// Tokens of slack above [`IMPLAUSIBLE_FACTOR`] times the worst case.
pub const IMPLAUSIBLE_SLACK: u64 = 65_536;

/// How a budget counter is named in messages: `global`, `caller "alice"`,
/// `model "gpt-4o"`, `provider "openai"`.
fn describe_scope(scope: &BudgetScope, value: &str) -> String {
    match scope {
        BudgetScope::Global => "global".to_owned(),
        BudgetScope::EachCaller | BudgetScope::Caller(_) => format!("caller {value:?}"),
        BudgetScope::Model(_) => format!("model {value:?}"),
        BudgetScope::Provider(_) => format!("provider {value:?}"),
    }
}

/// The per-mille of a budget's "exhausted" alert.
const EXHAUSTED: u16 = 1000;

/// `true` when this caller delivers the 100 % alert of counter `key` this period: the
/// first claim of its marker in the store (shared stores included). When the store cannot
/// answer, the alert is delivered (twice is better than never).
async fn claim_exhausted(inner: &Inner, key: &str) -> bool {
    let marker = format!("{key}:alert:{EXHAUSTED}");
    match inner.store.claim_once(&marker, inner.reservation_ttl).await {
        Ok(first) => first,
        Err(e) => {
            tracing::warn!(error = %e, "budget: could not mark the 100 % alert as delivered");
            true
        }
    }
}

/// A refused reservation finds the budget exhausted: delivers its 100 % threshold, once
/// per period (settled spend rarely reaches the limit itself, since reservations keep
/// it below).
async fn alert_exhausted(
    inner: &Inner,
    b: &Budget,
    key: &str,
    caller: Option<String>,
    period_start: u64,
    spent: Money,
) {
    if !b.thresholds.iter().any(|t| t.as_per_mille() == EXHAUSTED)
        || !claim_exhausted(inner, key).await
    {
        return;
    }
    deliver_alert(inner, b, caller, period_start, EXHAUSTED, spent, true);
}

/// Logs, counts and hands one alert of budget `b` to the subscriber. `refused`: the
/// threshold was found reached by a refused reservation rather than crossed by spend.
fn deliver_alert(
    inner: &Inner,
    b: &Budget,
    caller: Option<String>,
    period_start: u64,
    threshold_per_mille: u16,
    spent: Money,
    refused: bool,
) {
    let alert = BudgetAlert {
        kind: if refused {
            AlertKind::Refused
        } else {
            AlertKind::Crossed
        },
        budget: b.name.clone(),
        scope: b.scope.clone(),
        caller,
        period: b.period,
        period_start,
        threshold_per_mille,
        spent,
        limit: b.limit,
    };
    let threshold_percent = f64::from(threshold_per_mille) / 10.0;
    let message = if refused {
        "budget: refused: a request would exceed the limit"
    } else {
        "budget: alert threshold crossed"
    };
    if !inner.warn_alerts {
        tracing::debug!(
            budget = %alert.budget, threshold_percent, spent = %alert.spent, limit = %alert.limit,
            "{message}"
        );
    } else {
        tracing::warn!(
            budget = %alert.budget, threshold_percent, spent = %alert.spent, limit = %alert.limit,
            "{message}"
        );
    }
    metrics::counter!("llm_tower_budget_alerts_total", "budget" => b.name.clone()).increment(1);
    inner.alerts.on_alert(&alert);
}

async fn settle_holds(
    r: &Reservation,
    holds: Vec<Hold>,
    usage: Option<Usage>,
    error: bool,
) -> Option<Money> {
    let inner = &r.tracker.inner;
    let usage = usage.map(|u| r.plausible_usage(u));
    let cost = match (r.price, &usage) {
        (Some(p), Some(u)) => Some(p.cost(u)),
        (Some(_), None) => Some(Money::ZERO),
        (None, _) => None,
    };
    let amount = cost.unwrap_or(Money::ZERO);
    for h in holds {
        let Some(b) = inner.budgets.get(h.budget) else {
            continue;
        };
        match inner.store.settle(&h.key, &h.id, amount).await {
            Ok(s) => {
                for t in &b.thresholds {
                    let at = t.amount(b.limit);
                    if s.before < at && s.after >= at {
                        if t.as_per_mille() == EXHAUSTED && !claim_exhausted(inner, &h.key).await {
                            continue;
                        }
                        deliver_alert(
                            inner,
                            b,
                            h.caller.clone(),
                            h.period_start,
                            t.as_per_mille(),
                            s.after,
                            false,
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, budget = %b.name, "budget: settlement failed"),
        }
    }
    let (prompt, completion) = usage.map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
    inner.analytics.record(&Record {
        model: &r.model,
        provider: r.provider.as_deref(),
        caller: r.caller.as_ref().map(CallerKey::as_str),
        prompt_tokens: prompt,
        completion_tokens: completion,
        cost: amount,
        error,
        cache_hit: false,
    });
    if amount > Money::ZERO {
        metrics::counter!("llm_tower_cost_nano_usd_total", "gen_ai.request.model" => r.model.clone())
            .increment(u64::try_from(amount.as_nanos()).unwrap_or(0));
    }
    cost
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        let holds = std::mem::take(&mut self.holds);
        let usage = self.counted_usage();
        let snapshot = Reservation {
            tracker: self.tracker.clone(),
            holds: Vec::new(),
            model: std::mem::take(&mut self.model),
            provider: self.provider.take(),
            caller: self.caller.take(),
            price: self.price,
            prompt_tokens: self.prompt_tokens,
            prompt_source: self.prompt_source,
            worst_case: self.worst_case,
            bound_prompt: self.bound_prompt,
            bound_output: self.bound_output,
            meter: self.meter.clone(),
            settled: true,
        };
        let mut fut =
            Box::pin(async move { settle_holds(&snapshot, holds, Some(usage), false).await });
        if (&mut fut).now_or_never().is_none() {
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn(fut);
                }
                Err(_) => tracing::warn!(
                    "budget: dropped reservation could not be settled (no runtime); a shared store releases it after its TTL"
                ),
            }
        }
    }
}
