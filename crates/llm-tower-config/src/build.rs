//! [`build`]: the validated config -> the whole stack.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::{
    CallerKey, ChatRequest, ClientHeaders, Error, LlmRequest, SharedClock, TokioClock,
};
use llm_tower_layers::builder::BoxLlmService;
use llm_tower_layers::cache::{
    CacheScope, CacheStore, HitAdmission, MemoryCacheStore, ResponseCacheLayer,
};
use llm_tower_layers::cost::{
    AlertSink, Budget, BudgetAction, BudgetAlert, BudgetScope, BudgetStore, CostTracker,
    ModelPrice, PriceTable, TrackCostLayer,
};
use llm_tower_layers::provider_limits::{
    AdaptiveLimitLayer, AdaptiveLimitStore, AdaptiveMode, MemoryAdaptiveStore,
};
use llm_tower_layers::rate_limit::{
    Algorithm, KeyBy, KeyExtractor, Mode, RateLimitLayer, RateLimitStore, Unit,
};
use llm_tower_layers::retry::RetryLayer;
use llm_tower_layers::route::{
    Affinity, Balance, BalanceTarget, Fallback, Hedge, HedgeDelay, Strategy,
};
use llm_tower_layers::timeout::TimeoutLayer;
use llm_tower_layers::token_count::{CountTokensLayer, TokenCounter};
use llm_tower_layers::trace::LlmTraceLayer;
use llm_tower_providers::azure::{AzureAuth, EntraTokenSource};
use llm_tower_providers::bedrock::{
    AwsCredentials, AwsCredentialsProvider, Bedrock, BedrockConfig,
};
use llm_tower_providers::http::{BufferBudget, HttpClient, HttpConfig};
use llm_tower_providers::mock::MockProvider;
use llm_tower_providers::{
    Anthropic, AnthropicConfig, AzureOpenAi, AzureOpenAiConfig, Gemini, GeminiConfig, OpenAi,
    OpenAiCompatible, OpenAiCompatibleConfig, OpenAiConfig, Vertex, VertexAuth, VertexConfig,
};
#[cfg(feature = "redis")]
use llm_tower_redis::{
    RedisAdaptiveStore, RedisBudgetStore, RedisCacheStore, RedisConnection, RedisRateLimitStore,
};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;
use tower::Layer;
use tower::util::{BoxCloneSyncService, MapRequestLayer};

use crate::cache::CacheStoreSpec;
use crate::catalog::{Catalog, Resolution};
use crate::circuit::{CircuitBreakerLayer, CircuitState};
use crate::config::Config;
use crate::counter::ConfigTokenizers;
use crate::duration::format_duration;
use crate::raw::{ProviderKind, RawScope, RawVertexAuth};
use crate::router::{BoxedLlm, ResolveLayer, Router};
use crate::settings::GatewaySettings;
use crate::validate::{
    AwsSpec, AzureAuthSpec, LimitSpec, ProviderSpec, RouteShape, StoreSpec, Validated, sha256,
};

/// How long one provider's health probe may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of [`build_with`].
#[derive(Clone)]
pub struct BuildOptions {
    clock: SharedClock,
    alerts: Option<Arc<dyn AlertSink>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            clock: TokioClock::shared(),
            alerts: None,
        }
    }
}

impl fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildOptions")
            .field("clock", &self.clock)
            .field("alerts", &self.alerts.is_some())
            .finish()
    }
}

impl BuildOptions {
    /// The defaults: tokio's clock, alerts only logged and broadcast.
    pub fn new() -> Self {
        BuildOptions::default()
    }

    /// Every layer, the mock providers and the circuit breakers read time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Also sends budget alerts to `sink`.
    #[must_use]
    pub fn alerts(mut self, sink: impl AlertSink) -> Self {
        self.alerts = Some(Arc::new(sink));
        self
    }
}

/// An entry of `/v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ModelEntry {
    /// What a request may name: a route alias or `provider/model`.
    pub id: String,
    /// `llm-tower` for routes, the provider's name for its models.
    pub owned_by: String,
}

/// The outcome of one provider's health probe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProviderHealth {
    /// The provider's name.
    pub name: String,
    /// `true` when the probe succeeded.
    pub ok: bool,
    /// Why it failed (never contains secrets).
    pub error: Option<String>,
}

#[derive(Clone)]
enum ProviderHandle {
    Mock(MockProvider),
    Bedrock(Bedrock),
    OpenAi(OpenAi),
    Azure(AzureOpenAi),
    Anthropic(Anthropic),
    Compatible(OpenAiCompatible),
    Gemini(Gemini),
    Vertex(Vertex),
}

impl ProviderHandle {
    async fn health(&self) -> Result<(), Error> {
        match self {
            ProviderHandle::Mock(p) => p.health().await,
            ProviderHandle::Bedrock(p) => p.health().await,
            ProviderHandle::OpenAi(p) => p.health().await,
            ProviderHandle::Azure(p) => p.health().await,
            ProviderHandle::Anthropic(p) => p.health().await,
            ProviderHandle::Compatible(p) => p.health().await,
            ProviderHandle::Gemini(p) => p.health().await,
            ProviderHandle::Vertex(p) => p.health().await,
        }
    }

    fn service(&self) -> BoxedLlm {
        match self {
            ProviderHandle::Mock(p) => BoxCloneSyncService::new(p.clone()),
            ProviderHandle::Bedrock(p) => BoxCloneSyncService::new(p.clone()),
            ProviderHandle::OpenAi(p) => BoxCloneSyncService::new(p.clone()),
            ProviderHandle::Azure(p) => BoxCloneSyncService::new(p.clone()),
            ProviderHandle::Anthropic(p) => BoxCloneSyncService::new(p.clone()),
            ProviderHandle::Compatible(p) => BoxCloneSyncService::new(p.clone()),
            ProviderHandle::Gemini(p) => BoxCloneSyncService::new(p.clone()),
            ProviderHandle::Vertex(p) => BoxCloneSyncService::new(p.clone()),
        }
    }
}

/// The stack a config builds: the service, and what the gateway needs around it.
///
/// # Clone
/// Cheap: clones share the service's state (limits, budgets, circuits), the tracker and
/// the providers.
#[derive(Clone)]
pub struct BuiltStack {
    service: BoxedLlm,
    tracker: CostTracker,
    counter: Arc<ConfigTokenizers>,
    models: Arc<[ModelEntry]>,
    keys: Arc<[([u8; 32], CallerKey)]>,
    admins: Arc<[CallerKey]>,
    providers: Arc<[(String, ProviderHandle)]>,
    /// What requests name, and the targets behind.
    catalog: Arc<Catalog>,
    /// Providers whose `count_tokens` goes to the provider (`"count_tokens": "provider"`).
    count_upstream: Arc<[String]>,
    description: Arc<str>,
    gateway_description: Arc<str>,
    gateway: GatewaySettings,
    alerts: broadcast::Sender<BudgetAlert>,
    /// The shared Redis connection, when the store is Redis.
    #[cfg(feature = "redis")]
    redis: Option<RedisConnection>,
}

impl fmt::Debug for BuiltStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltStack")
            .field("models", &self.models)
            .field("keys", &self.keys.len())
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl BuiltStack {
    /// The whole stack as one service (`Clone + Send + Sync`; clones share all state).
    pub fn service(&self) -> BoxLlmService {
        self.service.clone()
    }

    /// Counts the input tokens of `chat` with the provider that serves its model (a
    /// route's first target), when that provider answers `count_tokens` itself
    /// (`"count_tokens": "provider"`, Anthropic); `None` when the gateway's own tokenizer
    /// answers. `client` carries the caller's `anthropic-version`/`anthropic-beta`.
    pub async fn count_tokens_upstream(
        &self,
        chat: &ChatRequest,
        client: Option<&ClientHeaders>,
    ) -> Option<Result<u64, Error>> {
        let Resolution::Targets(targets) = self.catalog.resolve(&chat.model) else {
            return None;
        };
        let target = self.catalog.target(*targets.first()?)?;
        if !self.count_upstream.contains(&target.provider) {
            return None;
        }
        let (_, handle) = self.providers.iter().find(|(n, _)| n == &target.provider)?;
        let ProviderHandle::Anthropic(anthropic) = handle else {
            return None;
        };
        let mut chat = chat.clone();
        chat.model.clone_from(&target.model);
        Some(anthropic.count_tokens(&chat, client).await)
    }

    /// What requests may name, for `/v1/models`: route aliases, then every `provider/model`.
    pub fn models(&self) -> Vec<ModelEntry> {
        self.models.to_vec()
    }

    /// The Redis connection the limits and budgets share, when the store is Redis (the
    /// gateway keeps stored Responses API answers there too).
    #[cfg(feature = "redis")]
    pub fn redis(&self) -> Option<&RedisConnection> {
        self.redis.as_ref()
    }

    /// The cost tracker (analytics and budget status, for `/v1/usage`).
    pub fn tracker(&self) -> &CostTracker {
        &self.tracker
    }

    /// The token counter the stack counts with (the tokenizer configured per model), for
    /// counting outside a request (the gateway's `/v1/messages/count_tokens`).
    pub fn counter(&self) -> Arc<ConfigTokenizers> {
        Arc::clone(&self.counter)
    }

    /// The caller whose gateway key is `bearer_token`, compared by SHA-256 in constant time.
    pub fn authenticate(&self, bearer_token: &str) -> Option<CallerKey> {
        let digest = sha256(bearer_token);
        let mut found = None;
        for (hash, name) in self.keys.iter() {
            if bool::from(hash.ct_eq(&digest)) {
                found = Some(name.clone());
            }
        }
        found
    }

    /// The callers whose keys are marked `admin` (they see everybody's `/v1/usage`).
    pub fn admins(&self) -> &[CallerKey] {
        &self.admins
    }

    /// `true` when gateway keys are configured (requests without a valid key are refused).
    pub fn auth_required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Probes every provider (mock: always ok), concurrently, each within 10 seconds.
    pub async fn health(&self) -> Vec<ProviderHealth> {
        let probes = self.providers.iter().map(|(name, handle)| async move {
            let result = match tokio::time::timeout(HEALTH_TIMEOUT, handle.health()).await {
                Ok(r) => r,
                Err(_) => Err(Error::timeout(format!(
                    "no answer within {}",
                    format_duration(HEALTH_TIMEOUT)
                ))),
            };
            ProviderHealth {
                name: name.clone(),
                ok: result.is_ok(),
                error: result.err().map(|e| e.to_string()),
            }
        });
        futures_util::future::join_all(probes).await
    }

    /// A human-readable listing of the composed stack: the store, the budgets, and the
    /// layers per route and model (`llm-tower check-config`). The gateway's own settings
    /// are in [`describe_gateway`](Self::describe_gateway).
    pub fn describe(&self) -> String {
        self.description.to_string()
    }

    /// One line on the gateway's server settings and keys (listen address, auth, body
    /// limit, request timeout); nothing a library user's stack reads.
    pub fn describe_gateway(&self) -> String {
        self.gateway_description.to_string()
    }

    /// The gateway's server settings.
    pub fn gateway(&self) -> &GatewaySettings {
        &self.gateway
    }

    /// Budget alerts as they happen (each threshold once per period).
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<BudgetAlert> {
        self.alerts.subscribe()
    }
}

/// Builds the whole stack of a config with the defaults ([`BuildOptions::new`]).
///
/// Nothing in the build waits for I/O (providers and Redis connect on first use), so
/// [`build_blocking`] does the same without an async runtime; this `async` form stays for
/// callers that already have one.
///
/// ```text
/// trace -> count_tokens -> resolve -> cache (when configured)
///       -> rate_limit (scope caller, config order)
///       -> rate_limit (per gateway key) -> router
///       -> per provider/model: circuit -> track_cost -> retry -> adaptive_limits
///            -> rate_limit (scope provider) -> timeout -> provider
/// ```
///
/// The router sends a request to its route's targets in order, falling back on
/// retryable errors (an open circuit included). The response cache sits outside the
/// caller's limits and every cost layer: a hit spends no budget and no token quota, and
/// goes through the caller's limits as a request with no tokens (see
/// `llm_tower_layers::cache`). Cost tracking sits in front of each
/// target, inside the router, so it prices the model that actually answers: see the crate
/// docs.
///
/// # Errors
/// `Config` when a provider cannot be built (for example an API key a header cannot carry),
/// or the Redis store configuration is refused.
pub async fn build(config: &Config) -> Result<BuiltStack, Error> {
    build_blocking_with(config, BuildOptions::new())
}

/// [`build`] with options (a manual clock for tests, an alert sink).
///
/// # Errors
/// As [`build`].
pub async fn build_with(config: &Config, options: BuildOptions) -> Result<BuiltStack, Error> {
    build_blocking_with(config, options)
}

/// [`build`] for programs without an async runtime: the same stack, built without one.
///
/// The build makes no connection (providers and Redis connect on first use), so it does
/// not block either; it needs no runtime, and works inside one as well. Calling the
/// service needs a runtime: use `llm_tower::sync::BlockingClient` (facade crate) from
/// plain threads.
///
/// ```
/// use llm_tower_config::{Config, build_blocking};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config: Config = r#"{
///     "providers": { "mock": { "type": "mock", "models": { "gpt-4o-mini": {
///         "price": { "input": "0.15", "output": "0.60" } } } } },
///     "budgets": [ { "name": "daily", "scope": "global", "period": "day", "limit_usd": "5" } ]
/// }"#.parse()?;
/// let stack = build_blocking(&config)?;
/// print!("{}", stack.describe());
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`build`].
pub fn build_blocking(config: &Config) -> Result<BuiltStack, Error> {
    build_blocking_with(config, BuildOptions::new())
}

/// [`build_blocking`] with options (a manual clock for tests, an alert sink).
///
/// # Errors
/// As [`build`].
pub fn build_blocking_with(config: &Config, options: BuildOptions) -> Result<BuiltStack, Error> {
    let v: &Validated = &config.validated;
    let clock = options.clock.clone();
    let catalog = Arc::new(v.catalog.clone());
    let counter = Arc::new(ConfigTokenizers::new(&v.providers, &v.catalog));
    let counter_dyn: Arc<dyn TokenCounter> = counter.clone();

    // Stores.
    type Stores = (
        Option<Arc<dyn RateLimitStore>>,
        Option<Arc<dyn BudgetStore>>,
        Arc<dyn AdaptiveLimitStore>,
    );
    #[cfg(feature = "redis")]
    let mut redis_conn: Option<RedisConnection> = None;
    let (rl_store, budget_store, adaptive_store): Stores = match &v.store {
        StoreSpec::Memory => (
            None,
            None,
            Arc::new(MemoryAdaptiveStore::with_clock(clock.clone())),
        ),
        #[cfg(feature = "redis")]
        StoreSpec::Redis(spec) => {
            let conn = RedisConnection::new(&spec.config)?;
            redis_conn = Some(conn.clone());
            // Counters expire by their period unless a retention is configured.
            let mut budgets = RedisBudgetStore::with_connection(conn.clone());
            if let Some(retention) = spec.budget_retention {
                budgets = budgets.counter_retention(retention);
            }
            (
                Some(Arc::new(RedisRateLimitStore::with_connection(conn.clone()))),
                Some(Arc::new(budgets)),
                Arc::new(RedisAdaptiveStore::with_connection(conn)),
            )
        }
    };

    // Cost tracker: prices of every provider/model, all budgets.
    let mut prices = PriceTable::new();
    for p in &v.providers {
        for m in &p.models {
            if let Some(price) = m.price {
                prices.insert(format!("{}/{}", p.name, m.name), price);
            }
        }
    }
    let (alerts_tx, _) = broadcast::channel(64);
    let sink = AlertFanout {
        broadcast: alerts_tx.clone(),
        user: options.alerts.clone(),
    };
    let mut tb = CostTracker::builder()
        .prices(prices)
        .clock(clock.clone())
        .counter(counter_dyn.clone())
        .alerts(sink)
        // Only a caller's own sink receives alerts for sure (the broadcast may have no
        // subscriber): without one, the tracker logs them at WARN.
        .warn_on_alerts(options.alerts.is_none());
    for b in &v.budgets {
        tb = tb.budget(b.clone());
    }
    if let Some(store) = &budget_store {
        tb = tb.store(store.clone());
    }
    #[cfg(feature = "redis")]
    if let StoreSpec::Redis(spec) = &v.store
        && let Some(ttl) = spec.reservation_ttl
    {
        tb = tb.reservation_ttl(ttl);
    }
    let tracker = tb.build()?;

    // Rate limit layers, built once so that every target shares their state.
    let limit_layer = |spec: &LimitSpec, name: String| -> RateLimitLayer {
        let mut l = RateLimitLayer::new(spec.algorithm)
            .name(name)
            .unit(spec.unit)
            .mode(spec.mode)
            .key(spec.key)
            .default_output_tokens(spec.default_output_tokens)
            .clock(clock.clone());
        if let Some(s) = &rl_store {
            l = l.store(s.clone());
        }
        l
    };
    struct BuiltLimit {
        layer: RateLimitLayer,
        spec: LimitSpec,
        label: String,
    }
    let mut caller_limits = Vec::new();
    let mut provider_limits = Vec::new();
    for spec in &v.limits {
        let built = BuiltLimit {
            layer: limit_layer(spec, spec.name.clone()),
            spec: spec.clone(),
            label: spec.name.clone(),
        };
        match spec.scope {
            RawScope::Caller => caller_limits.push(built),
            RawScope::Provider => provider_limits.push(built),
        }
    }
    for key in &v.keys {
        for spec in &key.limits {
            let name = format!("key:{}:{}", key.name, spec.name);
            let layer = limit_layer(spec, name).key_with(OnlyCaller {
                caller: key.name.clone(),
                key: spec.key,
            });
            let built = BuiltLimit {
                layer,
                spec: spec.clone(),
                label: format!("key {}/{}", key.name, spec.name),
            };
            match spec.scope {
                RawScope::Caller => caller_limits.push(built),
                RawScope::Provider => provider_limits.push(built),
            }
        }
    }

    // Providers: one bound on bytes buffered from upstream bodies, shared by all.
    let upstream_buffer = BufferBudget::new(v.gateway.max_upstream_buffer_bytes);
    let mut providers = Vec::new();
    for p in &v.providers {
        providers.push((
            p.name.clone(),
            provider(p, &clock, &counter, &upstream_buffer)?,
        ));
    }

    // One service per target.
    let mut targets: Vec<Option<BoxedLlm>> = vec![None; catalog.targets.len()];
    let mut target_desc: Vec<String> = vec![String::new(); catalog.targets.len()];
    // Each target's circuit, for the balance groups to leave open ones out.
    let mut circuits: Vec<Option<CircuitBreakerLayer>> = vec![None; catalog.targets.len()];
    for (spec, (_, handle)) in v.providers.iter().zip(&providers) {
        for m in &spec.models {
            let Some(target) = catalog.target(m.target) else {
                continue;
            };
            let mut desc = Vec::new();
            let provider_name: Arc<str> = Arc::from(spec.name.as_str());

            // Innermost first.
            let bare = m.name.clone();
            let mut svc: BoxedLlm = BoxCloneSyncService::new(
                MapRequestLayer::new(move |mut req: LlmRequest| {
                    req.set_model(bare.clone());
                    req
                })
                .layer(handle.service()),
            );
            desc.push(spec.kind.as_str().to_owned());
            svc = BoxCloneSyncService::new(
                TimeoutLayer::new(spec.request_timeout)
                    .clock(clock.clone())
                    .layer(svc),
            );
            desc.push(format!(
                "timeout[{}]",
                format_duration(spec.request_timeout)
            ));
            for l in provider_limits.iter().rev() {
                if l.spec.providers.is_empty() || l.spec.providers.contains(&spec.name) {
                    svc = BoxCloneSyncService::new(l.layer.layer(svc));
                    desc.push(format!(
                        "rate_limit[{}: {}]",
                        l.label,
                        describe_limit(&l.spec)
                    ));
                }
            }
            // Adaptive provider limits: inside retry, so every attempt's answer (a 429
            // included) updates them and a wait is not an attempt (no retry budget spent,
            // and its refusal is not retried: the router falls back instead); outside the
            // timeout, so a wait does not eat the attempt's time; outside our own
            // provider-scope limits, so a request held back takes no local slot.
            if let Some(mode) = spec.adaptive {
                svc = BoxCloneSyncService::new(
                    AdaptiveLimitLayer::new()
                        .key(target.id.as_str())
                        .mode(mode)
                        .clock(clock.clone())
                        .store(adaptive_store.clone())
                        .layer(svc),
                );
                desc.push(format!(
                    "adaptive_limits[{}]",
                    match mode {
                        AdaptiveMode::Wait { max_wait } =>
                            format!("wait<={}", format_duration(max_wait)),
                        AdaptiveMode::Reject => "reject".to_owned(),
                    }
                ));
            }
            let r = &v.retry;
            let retry = RetryLayer::new()
                .max_retries(r.max_retries)
                .backoff(r.base, r.max)
                .retry_after_cap(r.retry_after_cap)
                .budget(
                    Duration::from_secs(10),
                    r.budget_min_per_second,
                    r.budget_percent as f32 / 100.0,
                )
                .clock(clock.clone());
            svc = BoxCloneSyncService::new(retry.layer(svc));
            desc.push(format!("retry[{}]", r.max_retries));
            svc = BoxCloneSyncService::new(TrackCostLayer::new(tracker.clone()).layer(svc));
            let n_budgets = v
                .budgets
                .iter()
                .filter(|b| budget_applies(b, &catalog, m.target))
                .count();
            desc.push(format!(
                "track_cost[{n_budgets} budget{}{}]",
                if n_budgets == 1 { "" } else { "s" },
                match m.price {
                    Some(p) => format!(", {}", describe_price(&p)),
                    None => ", no price".to_owned(),
                }
            ));
            if let Some(c) = v.circuit {
                let breaker =
                    CircuitBreakerLayer::new(target.id.as_str(), c.failure_threshold, c.cooldown)
                        .provider(provider_name.clone())
                        .clock(clock.clone());
                svc = BoxCloneSyncService::new(breaker.layer(svc));
                if let Some(slot) = circuits.get_mut(m.target) {
                    *slot = Some(breaker);
                }
                desc.push(format!(
                    "circuit[{} failures, {}]",
                    c.failure_threshold,
                    format_duration(c.cooldown)
                ));
            }
            let id = target.id.clone();
            svc = BoxCloneSyncService::new(
                MapRequestLayer::new(move |mut req: LlmRequest| {
                    req.set_model(id.clone());
                    req.ctx.provider = Some(provider_name.clone());
                    req
                })
                .layer(svc),
            );
            desc.reverse();
            if let Some(slot) = target_desc.get_mut(m.target) {
                *slot = format!("[{}: {}]", target.id, desc.join(" -> "));
            }
            if let Some(slot) = targets.get_mut(m.target) {
                *slot = Some(svc);
            }
        }
    }

    // The outer stack, innermost first.
    let mut outer_desc = vec!["router".to_owned()];
    let plans = route_plans(v, &catalog, &targets, &circuits, &counter_dyn, &clock);
    let mut svc: BoxedLlm =
        BoxCloneSyncService::new(Router::new(catalog.clone(), targets).plans(plans));
    for l in caller_limits.iter().rev() {
        svc = BoxCloneSyncService::new(l.layer.layer(svc));
        outer_desc.push(format!(
            "rate_limit[{}: {}]",
            l.label,
            describe_limit(&l.spec)
        ));
    }
    if let Some(spec) = &v.cache {
        // Hits go through the caller's limits too (as requests, with no tokens): the
        // same layers, so the same counters, over an end that answers at once.
        let mut admit: BoxedLlm = BoxCloneSyncService::new(HitAdmission);
        for l in caller_limits.iter().rev() {
            admit = BoxCloneSyncService::new(l.layer.layer(admit));
        }
        let store: Arc<dyn CacheStore> = match spec.store {
            CacheStoreSpec::Memory {
                max_bytes,
                max_entries,
            } => Arc::new(
                MemoryCacheStore::builder()
                    .max_bytes(max_bytes)
                    .max_entries(max_entries)
                    .max_entry_bytes(spec.max_entry_bytes)
                    .clock(clock.clone())
                    .build(),
            ),
            #[cfg(feature = "redis")]
            CacheStoreSpec::Redis => match &redis_conn {
                Some(conn) => Arc::new(
                    RedisCacheStore::with_connection(conn.clone())
                        .max_entry_bytes(spec.max_entry_bytes),
                ),
                None => return Err(Error::config("cache.store: \"redis\" needs a redis store")),
            },
            #[cfg(not(feature = "redis"))]
            CacheStoreSpec::Redis => {
                return Err(Error::config(
                    "cache.store: \"redis\" needs the `redis` cargo feature",
                ));
            }
        };
        let layer = ResponseCacheLayer::from_arc(store)
            .ttl(spec.ttl)
            .max_entry_bytes(spec.max_entry_bytes)
            .cache_nondeterministic(spec.nondeterministic)
            .scope(spec.scope)
            .tracker(tracker.clone())
            .admit_hits(admit)
            .clock(clock.clone());
        // Route objects with `"cache": false`.
        let uncached: std::collections::HashSet<String> = v
            .shapes
            .iter()
            .filter(|s| !s.cache)
            .map(|s| s.alias.clone())
            .collect();
        let layer = if uncached.is_empty() {
            layer
        } else {
            layer.bypass_if(move |req| uncached.contains(req.model()))
        };
        svc = BoxCloneSyncService::new(layer.layer(svc));
        outer_desc.push(format!(
            "cache[{}, ttl {}, {}{}]",
            match spec.store {
                CacheStoreSpec::Memory {
                    max_bytes,
                    max_entries,
                } => format!("memory {max_entries} entries/{max_bytes} bytes"),
                CacheStoreSpec::Redis => "redis".to_owned(),
            },
            format_duration(spec.ttl),
            match spec.scope {
                CacheScope::Caller => "per caller",
                CacheScope::Global => "global",
            },
            if spec.nondeterministic {
                ", sampled too"
            } else {
                ""
            }
        ));
    }
    svc = BoxCloneSyncService::new(ResolveLayer::new(catalog.clone()).layer(svc));
    svc = BoxCloneSyncService::new(CountTokensLayer::from_arc(counter_dyn).layer(svc));
    outer_desc.push("count_tokens".to_owned());
    // Metric labels only for names the config knows: a request naming an invented model
    // (answered 404) must not create a new series.
    let label_models = catalog
        .routes
        .keys()
        .cloned()
        .chain(catalog.targets.iter().map(|t| t.id.clone()))
        .chain(catalog.targets.iter().map(|t| t.model.clone()));
    svc = BoxCloneSyncService::new(
        LlmTraceLayer::new()
            .clock(clock.clone())
            .label_models(label_models)
            .layer(svc),
    );
    outer_desc.push("trace".to_owned());
    outer_desc.reverse();

    let models = models(&catalog);
    let description = describe(v, &catalog, &outer_desc, &target_desc);
    let keys: Vec<([u8; 32], CallerKey)> = v
        .keys
        .iter()
        .map(|k| (k.hash, CallerKey::new(k.name.as_str())))
        .collect();
    let admins: Vec<CallerKey> = v
        .keys
        .iter()
        .filter(|k| k.admin)
        .map(|k| CallerKey::new(k.name.as_str()))
        .collect();

    Ok(BuiltStack {
        service: svc,
        tracker,
        counter,
        models: models.into(),
        keys: keys.into(),
        admins: admins.into(),
        providers: providers.into(),
        catalog: catalog.clone(),
        count_upstream: v
            .providers
            .iter()
            .filter(|p| p.count_tokens_upstream)
            .map(|p| p.name.clone())
            .collect(),
        description: description.into(),
        gateway_description: describe_gateway(v).into(),
        gateway: v.gateway.clone(),
        alerts: alerts_tx,
        #[cfg(feature = "redis")]
        redis: redis_conn,
    })
}

/// The services of route objects: a balanced group (leaving out targets whose circuit is
/// open), its fallbacks, and a hedge around them, by alias.
fn route_plans(
    v: &Validated,
    catalog: &Catalog,
    targets: &[Option<BoxedLlm>],
    circuits: &[Option<CircuitBreakerLayer>],
    counter: &Arc<dyn TokenCounter>,
    clock: &SharedClock,
) -> HashMap<String, BoxedLlm> {
    let mut plans = HashMap::new();
    for shape in &v.shapes {
        let member = |t: usize| -> Option<(String, BoxedLlm)> {
            let id = catalog.target(t)?.id.clone();
            Some((id, targets.get(t).cloned().flatten()?))
        };
        let group: Vec<BalanceTarget<BoxedLlm>> = shape
            .group
            .iter()
            .filter_map(|&(t, weight)| {
                let (id, svc) = member(t)?;
                let mut bt = BalanceTarget::new(id, svc).weight(weight);
                if let Some(breaker) = circuits.get(t).cloned().flatten() {
                    bt = bt.available(move || {
                        !matches!(
                            breaker.state(),
                            CircuitState::Open { .. } | CircuitState::HalfOpen { probing: true }
                        )
                    });
                }
                Some(bt)
            })
            .collect();
        let strategy = if shape.weighted {
            Strategy::Weighted
        } else {
            Strategy::P2c
        };
        let mut balance = Balance::new(shape.alias.as_str(), strategy, group).clock(clock.clone());
        if let Some(tokens) = shape.affinity_tokens {
            balance = balance.affinity(Affinity::PromptPrefix {
                tokens,
                counter: counter.clone(),
            });
        }
        let mut steps: Vec<BoxedLlm> = vec![BoxCloneSyncService::new(balance)];
        steps.extend(
            shape
                .fallback
                .iter()
                .filter_map(|&t| member(t).map(|(_, s)| s)),
        );
        let mut plan: BoxedLlm = if steps.len() == 1 {
            steps.remove(0)
        } else {
            BoxCloneSyncService::new(Fallback::new(steps))
        };
        if let Some(h) = shape.hedge {
            let delay = match h.after {
                Ok(d) => HedgeDelay::Fixed(d),
                Err(p) => HedgeDelay::Percentile(p),
            };
            plan = BoxCloneSyncService::new(Hedge::with_clock(
                shape.alias.as_str(),
                delay,
                h.max_extra,
                plan,
                clock.clone(),
            ));
        }
        plans.insert(shape.alias.clone(), plan);
    }
    plans
}

/// Sends alerts to the broadcast channel and to the user's sink.
struct AlertFanout {
    broadcast: broadcast::Sender<BudgetAlert>,
    user: Option<Arc<dyn AlertSink>>,
}

impl AlertSink for AlertFanout {
    fn on_alert(&self, alert: &BudgetAlert) {
        let _ = self.broadcast.send(alert.clone());
        if let Some(u) = &self.user {
            u.on_alert(alert);
        }
    }
}

/// A key extractor that limits only one caller (a gateway key's own limits).
struct OnlyCaller {
    caller: String,
    key: KeyBy,
}

impl KeyExtractor for OnlyCaller {
    fn extract<'a>(&self, req: &'a LlmRequest) -> Option<Cow<'a, str>> {
        let caller = req.ctx.caller.as_ref()?;
        if caller.as_str() != self.caller {
            return None;
        }
        self.key.extract(req)
    }
}

fn provider(
    p: &ProviderSpec,
    clock: &SharedClock,
    counter: &Arc<ConfigTokenizers>,
    upstream_buffer: &BufferBudget,
) -> Result<ProviderHandle, Error> {
    let http = || {
        HttpClient::with_config(
            HttpConfig::default()
                .connect_timeout(p.connect_timeout)
                .request_timeout(p.request_timeout)
                .stream_idle_timeout(p.stream_idle_timeout)
                .max_body_bytes(p.max_response_bytes)
                .buffer_budget(upstream_buffer.clone()),
        )
    };
    let key = || {
        p.api_key
            .clone()
            .ok_or_else(|| Error::config(format!("provider {:?}: api_key is required", p.name)))
    };
    let in_context = |e: Error| Error::config(format!("provider {:?}: {}", p.name, e.message()));
    Ok(match p.kind {
        ProviderKind::Mock => {
            let m = p.mock.clone().unwrap_or(crate::validate::MockSpec {
                latency: Duration::ZERO,
                chunk_interval: Duration::ZERO,
                reply: llm_tower_providers::mock::Reply::Lorem { words: 24 },
                failures: llm_tower_providers::mock::FailurePlan::Never,
                report_usage: true,
            });
            ProviderHandle::Mock(
                MockProvider::builder()
                    .name(p.name.as_str())
                    .latency(m.latency)
                    .chunk_interval(m.chunk_interval)
                    .reply(m.reply)
                    .failures(m.failures)
                    .report_usage(m.report_usage)
                    .clock(clock.clone())
                    .counter(Arc::new(counter.for_provider(&p.name)))
                    .build(),
            )
        }
        ProviderKind::Openai => {
            let mut c = OpenAiConfig::new(key()?)
                .name(p.name.as_str())
                .timeout(p.request_timeout)
                .clock(clock.clone());
            if let Some(u) = &p.base_url {
                c = c.base_url(u.as_str());
            }
            if let Some(o) = &p.organization {
                c = c.organization(o.as_str());
            }
            if let Some(pr) = &p.project {
                c = c.project(pr.as_str());
            }
            if let Some(f) = p.max_tokens_field {
                c = c.max_tokens_field(f);
            }
            ProviderHandle::OpenAi(OpenAi::new(c, http()?).map_err(in_context)?)
        }
        ProviderKind::Azure => {
            let endpoint = p.base_url.clone().unwrap_or_default();
            let auth = match &p.azure_auth {
                None => AzureAuth::api_key(key()?),
                Some(AzureAuthSpec::ClientCredentials {
                    token_url,
                    client_id,
                    client_secret,
                }) => AzureAuth::entra(EntraTokenSource::client_credentials_at(
                    token_url.as_str(),
                    client_id.as_str(),
                    client_secret.clone(),
                )),
                Some(AzureAuthSpec::Command(argv)) => {
                    AzureAuth::entra(EntraTokenSource::command(argv.clone()))
                }
            };
            let mut c = AzureOpenAiConfig::new(endpoint, auth)
                .name(p.name.as_str())
                .timeout(p.request_timeout)
                .clock(clock.clone());
            if p.azure_v1 {
                c = c.v1();
            }
            if let Some(v) = &p.api_version {
                c = c.api_version(v.as_str());
            }
            for (model, dep) in &p.deployments {
                c = c.deployment(model.as_str(), dep.as_str());
            }
            if let Some(f) = p.max_tokens_field {
                c = c.max_tokens_field(f);
            }
            ProviderHandle::Azure(AzureOpenAi::new(c, http()?).map_err(in_context)?)
        }
        ProviderKind::Bedrock => {
            let credentials: AwsCredentialsProvider = match p.aws.clone().unwrap_or(AwsSpec::Env) {
                AwsSpec::Env => AwsCredentials::from_env().map_err(in_context)?.into(),
                // Re-read when the file changes (rotated temporary credentials).
                AwsSpec::Profile(name) => {
                    AwsCredentialsProvider::profile(Some(&name)).map_err(in_context)?
                }
                AwsSpec::Keys {
                    access_key_id,
                    secret_access_key,
                    session_token,
                } => {
                    let mut c = AwsCredentials::new(access_key_id, secret_access_key);
                    if let Some(t) = session_token {
                        c = c.session_token(t);
                    }
                    c.into()
                }
            };
            let mut c = BedrockConfig::new(p.region.clone().unwrap_or_default(), credentials)
                .name(p.name.as_str())
                .timeout(p.request_timeout)
                .clock(clock.clone());
            if let Some(u) = &p.base_url {
                c = c.base_url(u.as_str());
            }
            ProviderHandle::Bedrock(Bedrock::new(c, http()?).map_err(in_context)?)
        }
        ProviderKind::Anthropic => {
            let mut c = AnthropicConfig::new(key()?)
                .name(p.name.as_str())
                .timeout(p.request_timeout)
                .clock(clock.clone());
            if let Some(u) = &p.base_url {
                c = c.base_url(u.as_str());
            }
            if let Some(v) = &p.anthropic_version {
                c = c.version(v.as_str());
            }
            for b in &p.anthropic_beta {
                c = c.beta(b.as_str());
            }
            if let Some(n) = p.default_max_tokens {
                c = c.default_max_tokens(n);
            }
            ProviderHandle::Anthropic(Anthropic::new(c, http()?).map_err(in_context)?)
        }
        ProviderKind::Gemini => {
            let mut c = GeminiConfig::new(key()?)
                .name(p.name.as_str())
                .timeout(p.request_timeout)
                .clock(clock.clone());
            if let Some(u) = &p.base_url {
                c = c.base_url(u.as_str());
            }
            ProviderHandle::Gemini(Gemini::new(c, http()?).map_err(in_context)?)
        }
        ProviderKind::Vertex => {
            let auth = match &p.vertex_auth {
                Some(RawVertexAuth::ServiceAccountFile(f)) => {
                    VertexAuth::service_account_file(f).map_err(in_context)?
                }
                Some(RawVertexAuth::TokenEnv(v)) => VertexAuth::token_env(v.as_str()),
                Some(RawVertexAuth::TokenCommand(argv)) => VertexAuth::token_command(argv.clone()),
                Some(RawVertexAuth::AccessToken(t)) => VertexAuth::access_token(t.expose()),
                None => {
                    return Err(Error::config(format!(
                        "provider {:?}: auth is required",
                        p.name
                    )));
                }
            };
            let mut c = VertexConfig::new(
                p.project.clone().unwrap_or_default(),
                p.location.clone().unwrap_or_default(),
                auth,
            )
            .name(p.name.as_str())
            .timeout(p.request_timeout)
            .clock(clock.clone());
            if let Some(u) = &p.base_url {
                c = c.base_url(u.as_str());
            }
            if let Some(u) = &p.token_url {
                c = c.token_url(u.as_str());
            }
            if let Some(n) = p.default_max_tokens {
                c = c.default_max_tokens(n);
            }
            ProviderHandle::Vertex(Vertex::new(c, http()?).map_err(in_context)?)
        }
        ProviderKind::OpenaiCompatible => {
            let mut c = OpenAiCompatibleConfig::new(p.base_url.clone().unwrap_or_default())
                .name(p.name.as_str())
                .timeout(p.request_timeout)
                .clock(clock.clone());
            if let Some(k) = &p.api_key {
                c = c.api_key(k.clone());
            }
            for h in &p.headers {
                c = if h.secret {
                    c.secret_header(h.name.as_str(), h.value.clone())
                } else {
                    c.header(h.name.as_str(), h.value.expose())
                };
            }
            if let Some(f) = p.max_tokens_field {
                c = c.max_tokens_field(f);
            }
            if let Some(s) = p.stream_usage {
                c = c.stream_usage(s);
            }
            ProviderHandle::Compatible(OpenAiCompatible::new(c, http()?).map_err(in_context)?)
        }
    })
}

fn budget_applies(b: &Budget, catalog: &Catalog, target: usize) -> bool {
    match b.scope() {
        BudgetScope::Global | BudgetScope::EachCaller | BudgetScope::Caller(_) => true,
        BudgetScope::Model(id) => catalog.target(target).is_some_and(|t| &t.id == id),
        BudgetScope::Provider(p) => catalog.target(target).is_some_and(|t| &t.provider == p),
    }
}

fn models(catalog: &Catalog) -> Vec<ModelEntry> {
    let mut out: Vec<ModelEntry> = catalog
        .routes
        .keys()
        .map(|alias| ModelEntry {
            id: alias.clone(),
            owned_by: "llm-tower".to_owned(),
        })
        .collect();
    out.extend(catalog.targets.iter().map(|t| ModelEntry {
        id: t.id.clone(),
        owned_by: t.provider.clone(),
    }));
    out
}

fn describe_limit(l: &LimitSpec) -> String {
    let algo = match l.algorithm {
        Algorithm::SlidingWindow { limit, window } => {
            format!("sliding_window {limit}/{}", format_duration(window))
        }
        Algorithm::LeakyBucket { rate, per, burst } => {
            format!("leaky_bucket {rate}/{} burst {burst}", format_duration(per))
        }
    };
    let unit = match l.unit {
        Unit::Requests => "requests",
        Unit::Tokens => "tokens",
    };
    let key = match l.key {
        KeyBy::Global => "global",
        KeyBy::Model => "by model",
        KeyBy::Provider => "by provider",
        KeyBy::Caller => "by caller",
    };
    let mode = match l.mode {
        Mode::Reject => "reject".to_owned(),
        Mode::Wait { max_wait } => format!("wait<={}", format_duration(max_wait)),
    };
    format!("{algo}, {unit} {key}, {mode}")
}

fn describe_price(p: &ModelPrice) -> String {
    let mut s = format!("${}/${}", p.input, p.output);
    if let Some(c) = p.cached_input {
        let _ = write!(s, " cached ${c}");
    }
    s.push_str(" per Mtok");
    s
}

fn describe_scope(s: &BudgetScope) -> String {
    match s {
        BudgetScope::Global => "global".to_owned(),
        BudgetScope::EachCaller => "each caller".to_owned(),
        BudgetScope::Caller(c) => format!("caller {c}"),
        BudgetScope::Model(m) => format!("model {m}"),
        BudgetScope::Provider(p) => format!("provider {p}"),
    }
}

/// The gateway's server settings and keys, one line (`llm-tower check-config`).
fn describe_gateway(v: &Validated) -> String {
    let g = &v.gateway;
    let auth = if v.keys.is_empty() {
        "open (no keys)".to_owned()
    } else {
        let names: Vec<&str> = v.keys.iter().map(|k| k.name.as_str()).collect();
        format!("{} key(s): {}", names.len(), names.join(", "))
    };
    format!(
        "gateway: listen {}, {auth}, max body {} bytes, request timeout {}\n",
        g.listen,
        g.max_body_bytes,
        format_duration(g.request_timeout)
    )
}

/// A route object in `describe`: its hedge, its balanced group, its fallbacks.
fn describe_shape(shape: &RouteShape, outer: &[String], targets: &[String]) -> String {
    let name = |t: usize| targets.get(t).map_or("?", String::as_str);
    let group: Vec<String> = shape
        .group
        .iter()
        .map(|&(t, w)| {
            if w == 1 {
                name(t).to_owned()
            } else {
                format!("{} x{w}", name(t))
            }
        })
        .collect();
    let mut kind = if shape.weighted { "weighted" } else { "p2c" }.to_owned();
    if let Some(n) = shape.affinity_tokens {
        kind.push_str(&format!(", affinity {n} prefix tokens"));
    }
    let mut s = outer.join(" -> ");
    if let Some(h) = shape.hedge {
        let after = match h.after {
            Ok(d) => format_duration(d),
            Err(p) => format!("p{p}"),
        };
        s.push_str(&format!(" -> hedge[after {after}, +{}]", h.max_extra));
    }
    s.push_str(&format!(" -> balance[{kind}: {}]", group.join(", ")));
    for &t in &shape.fallback {
        s.push_str(&format!(", fallback {}", name(t)));
    }
    if !shape.cache {
        s.push_str(" (no response cache)");
    }
    s
}

fn describe(v: &Validated, catalog: &Catalog, outer: &[String], targets: &[String]) -> String {
    let mut out = String::new();
    let store = match &v.store {
        StoreSpec::Memory => "memory".to_owned(),
        #[cfg(feature = "redis")]
        StoreSpec::Redis(spec) => format!(
            "redis {} (prefix {}, on error {})",
            spec.config.redacted_url(),
            spec.config.prefix,
            spec.config.failure_policy
        ),
    };
    let _ = writeln!(out, "store: {store}");
    if v.budgets.is_empty() {
        let _ = writeln!(out, "budgets: none");
    }
    for b in &v.budgets {
        let alerts: Vec<String> = b
            .get_thresholds()
            .iter()
            .map(|t| format!("{}%", f64::from(t.as_per_mille()) / 10.0))
            .collect();
        let _ = writeln!(
            out,
            "budget {:?}: {}, {}, ${}, {}, alerts at {}",
            b.name(),
            describe_scope(b.scope()),
            b.period().as_str(),
            b.limit(),
            match b.get_action() {
                BudgetAction::Block => "block",
                BudgetAction::Alert => "alert only",
            },
            if alerts.is_empty() {
                "none".to_owned()
            } else {
                alerts.join("/")
            }
        );
    }
    let chain = |route: &[usize]| -> String {
        let parts: Vec<&str> = route
            .iter()
            .filter_map(|&t| targets.get(t).map(String::as_str))
            .collect();
        format!("{} -> {}", outer.join(" -> "), parts.join(", fallback "))
    };
    for (alias, route) in &catalog.routes {
        match v.shapes.iter().find(|s| &s.alias == alias) {
            Some(shape) => {
                let _ = writeln!(
                    out,
                    "route {alias:?}: {}",
                    describe_shape(shape, outer, targets)
                );
            }
            None => {
                let _ = writeln!(out, "route {alias:?}: {}", chain(route));
            }
        }
    }
    for (i, t) in catalog.targets.iter().enumerate() {
        let _ = writeln!(out, "model {:?}: {}", t.id, chain(&[i]));
    }
    out
}
