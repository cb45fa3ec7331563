//! Validation: the resolved raw config -> the validated model, reporting every problem
//! with its JSON path.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use llm_tower_core::{Money, Price};
use llm_tower_layers::cost::{Budget, BudgetAction, BudgetScope, ModelPrice, Period, Threshold};
use llm_tower_layers::provider_limits::{AdaptiveMode, DEFAULT_MAX_WAIT};
use llm_tower_layers::rate_limit::{Algorithm, KeyBy, Mode, Unit};
use llm_tower_layers::token_count::Encoding;
use llm_tower_providers::Secret;
use llm_tower_providers::mock::{Failure, FailurePlan, Reply};
use llm_tower_providers::openai::MaxTokensField;
#[cfg(feature = "redis")]
use llm_tower_redis::{FailurePolicy, RedisConfig};
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, Resolution};
#[cfg(feature = "redis")]
use crate::duration::format_duration;
use crate::duration::parse_duration;
use crate::env::{has_reference, single_reference};
use crate::error::{ConfigError, Problems, index, join};
#[cfg(feature = "redis")]
use crate::raw::RawOnError;
use crate::raw::{
    ProviderKind, RawAction, RawAdaptiveLimits, RawAdaptiveMode, RawAlgorithm, RawAwsCredentials,
    RawAzureApi, RawAzureAuth, RawBudget, RawConfig, RawGatewayKey, RawKey, RawKeyBudget,
    RawLogFormat, RawMaxTokensField, RawMockFailureKind, RawMode, RawModel, RawPeriod, RawProvider,
    RawRateLimit, RawReply, RawScope, RawStoreKind, RawUnit, RawVertexAuth,
};
use crate::raw::{RawAffinity, RawBalance, RawRoute, RawRouteObject, RawRouteTarget};
use crate::settings::{GatewaySettings, LogFormat};

/// How a model's tokens are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TokenizerKind {
    /// `o200k_base`, exact.
    O200k,
    /// `cl100k_base`, exact.
    Cl100k,
    /// The fast estimate.
    Heuristic,
}

impl TokenizerKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            TokenizerKind::O200k => "o200k_base",
            TokenizerKind::Cl100k => "cl100k_base",
            TokenizerKind::Heuristic => "heuristic",
        }
    }
}

/// A validated model of a provider.
#[derive(Debug, Clone)]
pub(crate) struct ModelSpec {
    pub(crate) name: String,
    pub(crate) price: Option<ModelPrice>,
    pub(crate) tokenizer: TokenizerKind,
    pub(crate) target: usize,
}

/// The mock's settings.
#[derive(Debug, Clone)]
pub(crate) struct MockSpec {
    pub(crate) latency: Duration,
    pub(crate) chunk_interval: Duration,
    pub(crate) reply: Reply,
    pub(crate) failures: FailurePlan,
    pub(crate) report_usage: bool,
}

/// An extra header of an OpenAI-compatible provider.
#[derive(Debug, Clone)]
pub(crate) struct HeaderSpec {
    pub(crate) name: String,
    pub(crate) value: Secret,
    /// The value came from the environment: sent as a sensitive header.
    pub(crate) secret: bool,
}

/// A validated provider.
#[derive(Debug, Clone)]
pub(crate) struct ProviderSpec {
    pub(crate) name: String,
    /// anthropic: `count_tokens` asks the provider.
    pub(crate) count_tokens_upstream: bool,
    pub(crate) kind: ProviderKind,
    pub(crate) api_key: Option<Secret>,
    pub(crate) base_url: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) organization: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) vertex_auth: Option<RawVertexAuth>,
    pub(crate) token_url: Option<String>,
    pub(crate) api_version: Option<String>,
    pub(crate) deployments: Vec<(String, String)>,
    pub(crate) anthropic_version: Option<String>,
    pub(crate) anthropic_beta: Vec<String>,
    pub(crate) default_max_tokens: Option<u32>,
    pub(crate) headers: Vec<HeaderSpec>,
    pub(crate) max_tokens_field: Option<MaxTokensField>,
    pub(crate) stream_usage: Option<bool>,
    /// azure: the v1 API.
    pub(crate) azure_v1: bool,
    /// azure: Entra ID authentication.
    pub(crate) azure_auth: Option<AzureAuthSpec>,
    /// bedrock: the region.
    pub(crate) region: Option<String>,
    /// bedrock: the credentials.
    pub(crate) aws: Option<AwsSpec>,
    pub(crate) mock: Option<MockSpec>,
    /// Adaptive provider limits, when on.
    pub(crate) adaptive: Option<AdaptiveMode>,
    pub(crate) models: Vec<ModelSpec>,
}

/// Validated Azure Entra ID authentication.
#[derive(Debug, Clone)]
pub(crate) enum AzureAuthSpec {
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
    },
    Command(Vec<String>),
}

/// Validated AWS credentials.
#[derive(Debug, Clone)]
pub(crate) enum AwsSpec {
    Env,
    Profile(String),
    Keys {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
}

/// A validated rate limit.
#[derive(Debug, Clone)]
pub(crate) struct LimitSpec {
    pub(crate) name: String,
    pub(crate) algorithm: Algorithm,
    pub(crate) unit: Unit,
    pub(crate) key: KeyBy,
    pub(crate) mode: Mode,
    pub(crate) scope: RawScope,
    /// Provider scope: only these providers (empty: all).
    pub(crate) providers: Vec<String>,
    pub(crate) default_output_tokens: u32,
}

/// Retry settings.
#[derive(Debug, Clone)]
pub(crate) struct RetrySpec {
    pub(crate) max_retries: u32,
    pub(crate) base: Duration,
    pub(crate) max: Duration,
    pub(crate) retry_after_cap: Duration,
    pub(crate) budget_percent: u32,
    pub(crate) budget_min_per_second: u32,
}

/// Circuit-breaker settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CircuitSpec {
    pub(crate) failure_threshold: u32,
    pub(crate) cooldown: Duration,
}

/// A gateway key.
#[derive(Clone)]
pub(crate) struct KeySpec {
    pub(crate) name: String,
    pub(crate) hash: [u8; 32],
    pub(crate) limits: Vec<LimitSpec>,
    pub(crate) admin: bool,
}

impl std::fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySpec")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// Where state lives.
#[derive(Debug, Clone)]
pub(crate) enum StoreSpec {
    Memory,
    #[cfg(feature = "redis")]
    Redis(RedisStoreSpec),
}

/// A Redis store: the connection, and how budgets use it.
#[cfg(feature = "redis")]
#[derive(Debug, Clone)]
pub(crate) struct RedisStoreSpec {
    pub(crate) config: RedisConfig,
    /// `None`: each counter by its period (the store's default).
    pub(crate) budget_retention: Option<Duration>,
    /// `None`: the tracker's default.
    pub(crate) reservation_ttl: Option<Duration>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Validated {
    pub(crate) providers: Vec<ProviderSpec>,
    pub(crate) catalog: Catalog,
    pub(crate) limits: Vec<LimitSpec>,
    pub(crate) retry: RetrySpec,
    pub(crate) circuit: Option<CircuitSpec>,
    pub(crate) budgets: Vec<Budget>,
    pub(crate) keys: Vec<KeySpec>,
    pub(crate) store: StoreSpec,
    pub(crate) cache: Option<crate::cache::CacheSpec>,
    pub(crate) gateway: GatewaySettings,
    /// Route objects: their groups, balance, hedging and cache settings.
    pub(crate) shapes: Vec<RouteShape>,
}

/// A route object, validated: its group's targets are balanced, then the fallbacks are
/// tried in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RouteShape {
    pub(crate) alias: String,
    /// (target, weight) of the balanced group.
    pub(crate) group: Vec<(usize, u32)>,
    pub(crate) weighted: bool,
    pub(crate) fallback: Vec<usize>,
    /// Prefix tokens for prompt-cache affinity, when on.
    pub(crate) affinity_tokens: Option<u64>,
    pub(crate) hedge: Option<HedgeSpec>,
    /// `false`: the response cache leaves this route alone.
    pub(crate) cache: bool,
}

/// When a route hedges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HedgeSpec {
    /// A fixed delay, or a percentile (0-100) of recent latencies.
    pub(crate) after: Result<Duration, f64>,
    pub(crate) max_extra: u32,
}

/// Resolves one `provider/model` of a route into `targets`, reporting problems at `path`.
fn route_target(
    p: &mut Problems,
    catalog: &Catalog,
    entry: &str,
    path: &str,
    targets: &mut Vec<usize>,
) -> Option<usize> {
    match catalog.resolve_model(entry) {
        Resolution::Targets(t) => {
            let mut first = None;
            for &ti in t.iter() {
                if targets.contains(&ti) {
                    p.push(path, format!("{entry:?} is already in this route"));
                } else {
                    targets.push(ti);
                    first = first.or(Some(ti));
                }
            }
            first
        }
        Resolution::Ambiguous(ids) => {
            p.push(
                path,
                format!(
                    "model {entry:?} is served by several providers: write one of {}",
                    ids.join(", ")
                ),
            );
            None
        }
        Resolution::Unknown => {
            p.push(path, format!("unknown model {entry:?}"));
            None
        }
    }
}

/// The `hedge.after` of a route: a duration or a percentile.
fn hedge_after(p: &mut Problems, path: &str, after: &str) -> Option<Result<Duration, f64>> {
    match after.strip_prefix('p').map(str::parse::<f64>) {
        Some(Ok(q)) if q > 0.0 && q < 100.0 => Some(Err(q)),
        Some(_) => {
            p.push(path, "a percentile is written p1 to p99.9, e.g. \"p90\"");
            None
        }
        None => match parse_duration(after) {
            Ok(d) if !d.is_zero() => Some(Ok(d)),
            Ok(_) => {
                p.push(path, "must be > 0");
                None
            }
            Err(e) => {
                p.push(path, format!("{e} (or a percentile such as \"p90\")"));
                None
            }
        },
    }
}

/// Validates a route object; its targets (group, then fallbacks) go into `targets`.
fn route_shape(
    p: &mut Problems,
    catalog: &Catalog,
    alias: &str,
    path: &str,
    o: &RawRouteObject,
    targets: &mut Vec<usize>,
) -> RouteShape {
    let tpath = join(path, "targets");
    if o.targets.is_empty() {
        p.push(&tpath, "a route object needs at least one target");
    }
    let mut group = Vec::new();
    for (i, t) in o.targets.iter().enumerate() {
        let epath = index(&tpath, i);
        let (model, weight) = match t {
            RawRouteTarget::Name(m) => (m, 1),
            RawRouteTarget::Weighted { model, weight } => (model, weight.unwrap_or(1)),
        };
        if weight == 0 {
            p.push(join(&epath, "weight"), "must be >= 1");
        }
        if let Some(ti) = route_target(p, catalog, model, &epath, targets) {
            group.push((ti, weight.max(1)));
        }
    }
    let mut fallback = Vec::new();
    let fpath = join(path, "fallback");
    for (i, entry) in o.fallback.iter().enumerate() {
        if let Some(ti) = route_target(p, catalog, entry, &index(&fpath, i), targets) {
            fallback.push(ti);
        }
    }
    let affinity_tokens = match (o.affinity, o.affinity_tokens) {
        (Some(RawAffinity::PromptPrefix), n) => {
            let n = n.unwrap_or(1024);
            if n == 0 {
                p.push(join(path, "affinity_tokens"), "must be >= 1");
            }
            Some(n)
        }
        (None, Some(_)) => {
            p.push(
                join(path, "affinity_tokens"),
                "only applies with \"affinity\": \"prompt_prefix\"",
            );
            None
        }
        (None, None) => None,
    };
    if o.balance == Some(RawBalance::Weighted) && affinity_tokens.is_some() {
        p.push(
            join(path, "affinity"),
            "prompt_prefix affinity needs \"balance\": \"p2c\" (it falls back on load)",
        );
    }
    let hedge = o.hedge.as_ref().and_then(|h| {
        let hpath = join(path, "hedge");
        let max_extra = h.max_extra.unwrap_or(1);
        if !(1..=3).contains(&max_extra) {
            p.push(join(&hpath, "max_extra"), "must be 1, 2 or 3");
        }
        hedge_after(p, &join(&hpath, "after"), &h.after).map(|after| HedgeSpec { after, max_extra })
    });
    RouteShape {
        alias: alias.to_owned(),
        group,
        weighted: o.balance == Some(RawBalance::Weighted),
        fallback,
        affinity_tokens,
        hedge,
        cache: o.cache.unwrap_or(true),
    }
}

const DEFAULT_CONNECT: Duration = Duration::from_secs(10);
const DEFAULT_REQUEST: Duration = Duration::from_secs(600);
const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(120);

/// Validates `resolved` (env references replaced); `unresolved` is the same config as
/// written, for the checks that look at references themselves.
pub(crate) fn validate(
    unresolved: &RawConfig,
    resolved: &RawConfig,
) -> Result<Validated, ConfigError> {
    let mut p = Problems::default();
    let mut catalog = Catalog::default();

    // Targets first, so everything else can refer to them.
    for (pname, prov) in &resolved.providers {
        for mname in prov.models.keys() {
            catalog.add_target(pname, mname);
        }
    }

    let mut providers = Vec::new();
    if resolved.providers.is_empty() {
        p.push("providers", "at least one provider is required");
    }
    for (pname, prov) in &resolved.providers {
        let unresolved_prov = unresolved.providers.get(pname);
        if let Some(spec) = provider(&mut p, &catalog, pname, prov, unresolved_prov) {
            providers.push(spec);
        }
    }

    // Routes.
    let mut routes = Vec::new();
    let mut shapes = Vec::new();
    for (alias, route) in &resolved.routes {
        let path = join("routes", alias);
        if alias.trim().is_empty() {
            p.push(&path, "route names must not be empty");
        } else if alias.contains('/') {
            p.push(
                &path,
                "route names must not contain '/' (that is how provider/model is written)",
            );
        }
        let mut targets = Vec::new();
        match route {
            RawRoute::List(entries) => {
                if entries.is_empty() {
                    p.push(&path, "a route needs at least one provider/model");
                }
                for (i, entry) in entries.iter().enumerate() {
                    route_target(&mut p, &catalog, entry, &index(&path, i), &mut targets);
                }
            }
            RawRoute::Object(o) => {
                shapes.push(route_shape(&mut p, &catalog, alias, &path, o, &mut targets));
            }
        }
        routes.push((alias.clone(), targets));
    }
    for (alias, targets) in routes {
        catalog.add_route(&alias, targets);
    }

    // Rate limits.
    let mut limits = Vec::new();
    let mut names = HashSet::new();
    for (i, rl) in resolved.rate_limits.iter().enumerate() {
        let path = index("rate_limits", i);
        if !names.insert(rl.name.clone()) {
            p.push(
                join(&path, "name"),
                format!("duplicate rate limit name {:?}", rl.name),
            );
        }
        if let Some(l) = rate_limit(&mut p, &path, rl, &resolved.providers) {
            limits.push(l);
        }
    }

    let retry = retry(&mut p, resolved);
    let circuit = circuit(&mut p, resolved);

    // Budgets.
    let mut budgets = Vec::new();
    let mut budget_names: HashMap<String, String> = HashMap::new();
    for (i, b) in resolved.budgets.iter().enumerate() {
        let path = index("budgets", i);
        if b.name.trim().is_empty() {
            p.push(join(&path, "name"), "must not be empty");
        } else if let Some(first) = budget_names.insert(b.name.clone(), path.clone()) {
            p.push(
                join(&path, "name"),
                format!("duplicate budget name {:?} (also {first})", b.name),
            );
        }
        if let Some(budget) = budget(&mut p, &path, b, &catalog, &providers) {
            budgets.push(budget);
        }
    }

    // Store (its budget retention is checked against every budget, keys' included, below).
    let store = store(&mut p, resolved);
    let cache = crate::cache::cache(&mut p, resolved);

    // Gateway.
    let (gateway, keys, key_budgets) = gateway(
        &mut p,
        unresolved,
        resolved,
        &catalog,
        &providers,
        &mut budget_names,
    );
    budgets.extend(key_budgets);
    #[cfg(feature = "redis")]
    check_budget_retention(&mut p, &store, &budgets);

    p.into_result(Validated {
        providers,
        catalog,
        limits,
        retry,
        circuit,
        budgets,
        keys,
        store,
        cache,
        gateway,
        shapes,
    })
}

fn duration_field(
    p: &mut Problems,
    path: &str,
    value: Option<&String>,
    default: Duration,
    allow_zero: bool,
) -> Duration {
    match value {
        None => default,
        Some(s) => match parse_duration(s) {
            Ok(d) if d.is_zero() && !allow_zero => {
                p.push(path, "must be > 0");
                default
            }
            Ok(d) => d,
            Err(e) => {
                p.push(path, e);
                default
            }
        },
    }
}

fn only_for(
    p: &mut Problems,
    path: &str,
    present: bool,
    kind: ProviderKind,
    allowed: &[ProviderKind],
) {
    if present && !allowed.contains(&kind) {
        let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
        p.push(
            path,
            format!(
                "not used by type {} (only by {})",
                kind.as_str(),
                names.join(", ")
            ),
        );
    }
}

fn check_url(p: &mut Problems, path: &str, url: &str) {
    let ok = !url.chars().any(char::is_whitespace)
        && http::Uri::from_str(url).is_ok_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
    if !ok {
        p.push(
            path,
            "not a valid http(s) URL (e.g. \"https://api.example.com/v1\")",
        );
    }
}

fn check_secret(p: &mut Problems, path: &str, value: &str) {
    if value.is_empty() {
        p.push(path, "must not be empty");
    } else if http::HeaderValue::from_str(value).is_err() {
        p.push(
            path,
            "contains characters that cannot be sent in an HTTP header",
        );
    }
}

fn provider(
    p: &mut Problems,
    catalog: &Catalog,
    name: &str,
    raw: &RawProvider,
    unresolved: Option<&RawProvider>,
) -> Option<ProviderSpec> {
    use ProviderKind::{Anthropic, Azure, Bedrock, Gemini, Mock, Openai, OpenaiCompatible, Vertex};
    let path = join("providers", name);
    let start = p.list.len();
    let kind = raw.kind;
    if name.trim().is_empty() {
        p.push(&path, "provider names must not be empty");
    } else if name.contains('/') || name.chars().any(char::is_whitespace) {
        p.push(&path, "provider names must not contain '/' or whitespace");
    }

    // Fields that belong to other types.
    only_for(
        p,
        &join(&path, "api_key"),
        raw.api_key.is_some(),
        kind,
        &[Openai, Azure, Anthropic, OpenaiCompatible, Gemini],
    );
    only_for(
        p,
        &join(&path, "base_url"),
        raw.base_url.is_some(),
        kind,
        &[
            Openai,
            Azure,
            Anthropic,
            Bedrock,
            OpenaiCompatible,
            Gemini,
            Vertex,
        ],
    );
    only_for(p, &join(&path, "api"), raw.api.is_some(), kind, &[Azure]);
    only_for(
        p,
        &join(&path, "auth"),
        raw.auth.is_some(),
        kind,
        &[Azure, Vertex],
    );
    only_for(
        p,
        &join(&path, "region"),
        raw.region.is_some(),
        kind,
        &[Bedrock],
    );
    only_for(
        p,
        &join(&path, "credentials"),
        raw.credentials.is_some(),
        kind,
        &[Bedrock],
    );
    only_for(
        p,
        &join(&path, "organization"),
        raw.organization.is_some(),
        kind,
        &[Openai],
    );
    only_for(
        p,
        &join(&path, "project"),
        raw.project.is_some(),
        kind,
        &[Openai, Vertex],
    );
    only_for(
        p,
        &join(&path, "location"),
        raw.location.is_some(),
        kind,
        &[Vertex],
    );
    only_for(
        p,
        &join(&path, "token_url"),
        raw.token_url.is_some(),
        kind,
        &[Vertex],
    );
    only_for(
        p,
        &join(&path, "api_version"),
        raw.api_version.is_some(),
        kind,
        &[Azure],
    );
    only_for(
        p,
        &join(&path, "deployments"),
        !raw.deployments.is_empty(),
        kind,
        &[Azure],
    );
    only_for(
        p,
        &join(&path, "anthropic_version"),
        raw.anthropic_version.is_some(),
        kind,
        &[Anthropic],
    );
    only_for(
        p,
        &join(&path, "anthropic_beta"),
        !raw.anthropic_beta.is_empty(),
        kind,
        &[Anthropic],
    );
    only_for(
        p,
        &join(&path, "count_tokens"),
        raw.count_tokens.is_some(),
        kind,
        &[Anthropic],
    );
    only_for(
        p,
        &join(&path, "default_max_tokens"),
        raw.default_max_tokens.is_some(),
        kind,
        &[Anthropic, Vertex],
    );
    only_for(
        p,
        &join(&path, "headers"),
        !raw.headers.is_empty(),
        kind,
        &[OpenaiCompatible],
    );
    only_for(
        p,
        &join(&path, "max_tokens_field"),
        raw.max_tokens_field.is_some(),
        kind,
        &[Openai, Azure, OpenaiCompatible],
    );
    only_for(
        p,
        &join(&path, "stream_usage"),
        raw.stream_usage.is_some(),
        kind,
        &[OpenaiCompatible],
    );
    only_for(
        p,
        &join(&path, "latency"),
        raw.latency.is_some(),
        kind,
        &[Mock],
    );
    only_for(
        p,
        &join(&path, "chunk_interval"),
        raw.chunk_interval.is_some(),
        kind,
        &[Mock],
    );
    only_for(p, &join(&path, "reply"), raw.reply.is_some(), kind, &[Mock]);
    only_for(
        p,
        &join(&path, "failures"),
        raw.failures.is_some(),
        kind,
        &[Mock],
    );
    only_for(
        p,
        &join(&path, "adaptive_limits"),
        raw.adaptive_limits
            .as_ref()
            .is_some_and(|a| *a != RawAdaptiveLimits::Enabled(false)),
        kind,
        &[Openai, Azure, Anthropic, OpenaiCompatible, Bedrock],
    );
    only_for(
        p,
        &join(&path, "report_usage"),
        raw.report_usage.is_some(),
        kind,
        &[Mock],
    );

    // Required fields.
    let key_required =
        matches!(kind, Openai | Anthropic | Gemini) || (kind == Azure && raw.auth.is_none());
    if kind == Azure && raw.auth.is_some() && raw.api_key.is_some() {
        p.push(join(&path, "auth"), "set either api_key or auth, not both");
    }
    match &raw.api_key {
        None if key_required => p.push(
            join(&path, "api_key"),
            format!(
                "required for type {} (e.g. \"${{{}}}\")",
                kind.as_str(),
                if kind == Gemini {
                    "GEMINI_API_KEY"
                } else {
                    "OPENAI_API_KEY"
                }
            ),
        ),
        Some(k) if kind != Mock => check_secret(p, &join(&path, "api_key"), k.expose()),
        _ => {}
    }
    match &raw.base_url {
        None if matches!(kind, Azure | OpenaiCompatible) => p.push(
            join(&path, "base_url"),
            format!("required for type {}", kind.as_str()),
        ),
        Some(u) if kind != Mock => check_url(p, &join(&path, "base_url"), u),
        _ => {}
    }

    let azure_v1 = kind == Azure && raw.api == Some(RawAzureApi::V1);
    if azure_v1 {
        if raw.api_version.is_some() {
            p.push(
                join(&path, "api_version"),
                "the v1 API takes no api-version (remove it or set \"api\": \"deployments\")",
            );
        }
        if !raw.deployments.is_empty() {
            p.push(
                join(&path, "deployments"),
                "the v1 API sends the model name as the deployment: name the models after their deployments",
            );
        }
    }
    let azure_auth = match (&raw.auth, kind) {
        (Some(a), Azure) => azure_auth(p, &join(&path, "auth"), a),
        _ => None,
    };
    let region = if kind == Bedrock {
        match raw.region.as_deref().map(str::trim) {
            None => {
                p.push(
                    join(&path, "region"),
                    "required for type bedrock (e.g. \"us-east-1\")",
                );
                None
            }
            Some(r)
                if r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                p.push(
                    join(&path, "region"),
                    "expected an AWS region such as us-east-1",
                );
                None
            }
            Some(r) => Some(r.to_owned()),
        }
    } else {
        None
    };
    let aws = (kind == Bedrock)
        .then(|| aws_credentials(p, &join(&path, "credentials"), raw.credentials.as_ref()))
        .flatten();

    // Timeouts.
    let tpath = join(&path, "timeouts");
    let t = raw.timeouts.clone().unwrap_or_default();
    if kind == Mock {
        only_for(
            p,
            &join(&tpath, "connect"),
            t.connect.is_some(),
            kind,
            &[
                Openai,
                Azure,
                Anthropic,
                Bedrock,
                OpenaiCompatible,
                Gemini,
                Vertex,
            ],
        );
        only_for(
            p,
            &join(&tpath, "stream_idle"),
            t.stream_idle.is_some(),
            kind,
            &[Openai, Azure, Anthropic, OpenaiCompatible, Gemini, Vertex],
        );
    }
    let connect_timeout = duration_field(
        p,
        &join(&tpath, "connect"),
        t.connect.as_ref(),
        DEFAULT_CONNECT,
        false,
    );
    let request_timeout = duration_field(
        p,
        &join(&tpath, "request"),
        t.request.as_ref(),
        DEFAULT_REQUEST,
        false,
    );
    let stream_idle_timeout = duration_field(
        p,
        &join(&tpath, "stream_idle"),
        t.stream_idle.as_ref(),
        DEFAULT_STREAM_IDLE,
        false,
    );

    let max_response_bytes = match raw.max_response_bytes.map(usize::try_from) {
        None => llm_tower_providers::http::DEFAULT_MAX_BODY_BYTES,
        Some(Ok(n)) if n >= 1024 => n,
        Some(Ok(_)) => {
            p.push(join(&path, "max_response_bytes"), "must be >= 1024");
            0
        }
        Some(Err(_)) => {
            p.push(
                join(&path, "max_response_bytes"),
                "too large for this platform",
            );
            0
        }
    };
    if kind == Mock {
        only_for(
            p,
            &join(&path, "max_response_bytes"),
            raw.max_response_bytes.is_some(),
            kind,
            &[Openai, Azure, Anthropic, OpenaiCompatible, Gemini, Vertex],
        );
    }

    if kind == Vertex {
        vertex(p, &path, raw);
    }
    for (field, value) in [
        ("organization", &raw.organization),
        ("project", &raw.project),
        ("api_version", &raw.api_version),
        ("anthropic_version", &raw.anthropic_version),
    ] {
        if let Some(v) = value
            && (v.trim().is_empty() || http::HeaderValue::from_str(v).is_err())
        {
            p.push(join(&path, field), "must be a non-empty header-safe string");
        }
    }
    for (i, beta) in raw.anthropic_beta.iter().enumerate() {
        if beta.trim().is_empty() || http::HeaderValue::from_str(beta).is_err() {
            p.push(
                index(&join(&path, "anthropic_beta"), i),
                "must be a non-empty header-safe string",
            );
        }
    }
    if raw.default_max_tokens == Some(0) {
        p.push(join(&path, "default_max_tokens"), "must be > 0");
    }
    let mut deployments = Vec::new();
    for (model, dep) in &raw.deployments {
        let dpath = join(&join(&path, "deployments"), model);
        if !raw.models.contains_key(model) {
            p.push(&dpath, format!("no model {model:?} in {path}.models"));
        }
        if dep.trim().is_empty()
            || dep.contains(['/', '?', '#'])
            || dep.chars().any(char::is_whitespace)
        {
            p.push(
                &dpath,
                "a deployment name must be non-empty, without '/', '?', '#' or whitespace",
            );
        }
        deployments.push((model.clone(), dep.clone()));
    }
    let mut headers = Vec::new();
    for (hname, value) in &raw.headers {
        let hpath = join(&join(&path, "headers"), hname);
        if http::HeaderName::from_str(hname).is_err() {
            p.push(&hpath, "not a valid header name");
        }
        if http::HeaderValue::from_str(value.expose()).is_err() {
            p.push(
                &hpath,
                "the value contains characters that cannot be sent in an HTTP header",
            );
        }
        let secret = unresolved
            .and_then(|u| u.headers.get(hname))
            .is_some_and(|v| has_reference(v.expose()));
        headers.push(HeaderSpec {
            name: hname.clone(),
            value: Secret::new(value.expose()),
            secret,
        });
    }
    let max_tokens_field = raw.max_tokens_field.map(|f| match f {
        RawMaxTokensField::MaxTokens => MaxTokensField::MaxTokens,
        RawMaxTokensField::MaxCompletionTokens => MaxTokensField::MaxCompletionTokens,
    });

    let mock = (kind == Mock).then(|| mock(p, &path, raw));

    // Models.
    let mut models = Vec::new();
    if raw.models.is_empty() {
        p.push(join(&path, "models"), "at least one model is required");
    }
    for (mname, m) in &raw.models {
        let mpath = join(&join(&path, "models"), mname);
        if mname.trim().is_empty() || mname.chars().any(char::is_whitespace) {
            p.push(&mpath, "model names must be non-empty, without whitespace");
        }
        let Resolution::Targets(t) = catalog.resolve_model(&format!("{name}/{mname}")) else {
            continue;
        };
        let Some(&target) = t.first() else { continue };
        models.push(ModelSpec {
            name: mname.clone(),
            price: model_price(p, &mpath, m),
            tokenizer: tokenizer(p, &mpath, mname, m),
            target,
        });
    }

    if p.list.len() > start {
        return None;
    }
    Some(ProviderSpec {
        name: name.to_owned(),
        kind,
        api_key: raw
            .api_key
            .as_ref()
            .filter(|_| kind != Mock)
            .map(|k| Secret::new(k.expose())),
        base_url: raw.base_url.clone(),
        connect_timeout,
        request_timeout,
        stream_idle_timeout,
        max_response_bytes,
        organization: raw.organization.clone(),
        project: raw.project.clone(),
        location: raw.location.clone(),
        vertex_auth: raw.auth.as_ref().and_then(|a| a.vertex().ok()),
        token_url: raw.token_url.clone(),
        api_version: raw.api_version.clone(),
        deployments,
        anthropic_version: raw.anthropic_version.clone(),
        anthropic_beta: raw.anthropic_beta.clone(),
        default_max_tokens: raw.default_max_tokens,
        count_tokens_upstream: raw.count_tokens == Some(crate::raw::RawCountTokens::Provider),
        headers,
        max_tokens_field,
        stream_usage: raw.stream_usage,
        azure_v1,
        azure_auth,
        region,
        aws,
        mock,
        adaptive: adaptive_limits(p, &join(&path, "adaptive_limits"), kind, raw),
        models,
    })
}

fn azure_auth(p: &mut Problems, path: &str, a: &RawAzureAuth) -> Option<AzureAuthSpec> {
    for (field, set) in [
        ("service_account_file", a.service_account_file.is_some()),
        ("token_env", a.token_env.is_some()),
        ("access_token", a.access_token.is_some()),
    ] {
        if set {
            p.push(
                join(path, field),
                "is for vertex; azure takes entra or token_command",
            );
        }
    }
    match (&a.entra, &a.token_command) {
        (Some(e), None) => {
            let epath = join(path, "entra");
            for (field, v) in [("tenant_id", &e.tenant_id), ("client_id", &e.client_id)] {
                if v.trim().is_empty() || v.contains(['/', '?', '#']) {
                    p.push(join(&epath, field), "must be a non-empty id");
                }
            }
            check_secret(p, &join(&epath, "client_secret"), e.client_secret.expose());
            let token_url = match &e.token_url {
                Some(u) => {
                    check_url(p, &join(&epath, "token_url"), u);
                    u.clone()
                }
                None => llm_tower_providers::azure::token_url_for_tenant(e.tenant_id.trim()),
            };
            Some(AzureAuthSpec::ClientCredentials {
                token_url,
                client_id: e.client_id.trim().to_owned(),
                client_secret: Secret::new(e.client_secret.expose()),
            })
        }
        (None, Some(argv)) => {
            if argv.first().is_none_or(|a| a.trim().is_empty()) {
                p.push(
                    join(path, "token_command"),
                    "a command is a non-empty list: the program, then its arguments",
                );
                return None;
            }
            Some(AzureAuthSpec::Command(argv.clone()))
        }
        _ => {
            p.push(
                path,
                "expected exactly one of \"entra\" and \"token_command\"",
            );
            None
        }
    }
}

fn aws_credentials(p: &mut Problems, path: &str, c: Option<&RawAwsCredentials>) -> Option<AwsSpec> {
    let Some(c) = c else {
        return Some(AwsSpec::Env);
    };
    let keys =
        c.access_key_id.is_some() || c.secret_access_key.is_some() || c.session_token.is_some();
    let forms = usize::from(c.env.is_some()) + usize::from(c.profile.is_some()) + usize::from(keys);
    if forms != 1 {
        p.push(
            path,
            "expected exactly one of {\"env\": true}, {\"profile\": NAME} or {\"access_key_id\", \"secret_access_key\"}",
        );
        return None;
    }
    if let Some(env) = c.env {
        if !env {
            p.push(
                join(path, "env"),
                "must be true (or name a profile or the keys)",
            );
            return None;
        }
        return Some(AwsSpec::Env);
    }
    if let Some(profile) = &c.profile {
        if profile.trim().is_empty() || profile.contains([']', '[']) {
            p.push(join(path, "profile"), "must be a profile name");
            return None;
        }
        return Some(AwsSpec::Profile(profile.trim().to_owned()));
    }
    let (Some(id), Some(secret)) = (&c.access_key_id, &c.secret_access_key) else {
        p.push(
            path,
            "access_key_id and secret_access_key are both required (session_token is optional)",
        );
        return None;
    };
    let start = p.list.len();
    if id.expose().trim().is_empty() {
        p.push(join(path, "access_key_id"), "must not be empty");
    }
    check_secret(p, &join(path, "secret_access_key"), secret.expose());
    if let Some(t) = &c.session_token {
        check_secret(p, &join(path, "session_token"), t.expose());
    }
    if p.list.len() > start {
        return None;
    }
    Some(AwsSpec::Keys {
        access_key_id: id.expose().trim().to_owned(),
        secret_access_key: Secret::new(secret.expose()),
        session_token: c
            .session_token
            .as_ref()
            .filter(|t| !t.expose().is_empty())
            .map(|t| Secret::new(t.expose())),
    })
}

/// A Vertex AI project or location: a URL path segment.
fn check_segment(p: &mut Problems, path: &str, value: &str) {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        p.push(
            path,
            "must be non-empty: letters, digits, '-', '_' and '.' only",
        );
    }
}

/// The fields only `vertex` has: project, location and auth are required.
fn vertex(p: &mut Problems, path: &str, raw: &RawProvider) {
    match &raw.project {
        None => p.push(
            join(path, "project"),
            "required for type vertex (the Google Cloud project id)",
        ),
        Some(v) => check_segment(p, &join(path, "project"), v),
    }
    match &raw.location {
        None => p.push(
            join(path, "location"),
            "required for type vertex (e.g. \"us-central1\" or \"global\")",
        ),
        Some(v) => check_segment(p, &join(path, "location"), v),
    }
    let apath = join(path, "auth");
    let auth = match raw.auth.as_ref().map(RawAzureAuth::vertex) {
        None => {
            p.push(
                &apath,
                "required for type vertex: {\"service_account_file\": \"${GOOGLE_APPLICATION_CREDENTIALS}\"}, {\"token_env\": \"VAR\"}, {\"token_command\": [...]} or {\"access_token\": \"${VAR}\"}",
            );
            None
        }
        Some(Err(why)) => {
            p.push(&apath, why);
            None
        }
        Some(Ok(a)) => Some(a),
    };
    match &auth {
        Some(RawVertexAuth::ServiceAccountFile(f)) if f.trim().is_empty() => {
            p.push(join(&apath, "service_account_file"), "must not be empty");
        }
        Some(RawVertexAuth::TokenEnv(v)) if v.is_empty() || v.contains(['=', '\0']) => {
            p.push(
                join(&apath, "token_env"),
                "must be an environment variable name",
            );
        }
        Some(RawVertexAuth::TokenCommand(argv))
            if argv.first().is_none_or(|c| c.trim().is_empty()) =>
        {
            p.push(
                join(&apath, "token_command"),
                "must name a program (e.g. [\"gcloud\", \"auth\", \"print-access-token\"])",
            );
        }
        Some(RawVertexAuth::AccessToken(t)) => {
            check_secret(p, &join(&apath, "access_token"), t.expose());
        }
        _ => {}
    }
    if let Some(u) = &raw.token_url {
        check_url(p, &join(path, "token_url"), u);
    }
}

/// `adaptive_limits`: on by default for the providers that always send rate-limit headers.
fn adaptive_limits(
    p: &mut Problems,
    path: &str,
    kind: ProviderKind,
    raw: &RawProvider,
) -> Option<AdaptiveMode> {
    let default_on = matches!(
        kind,
        ProviderKind::Openai | ProviderKind::Azure | ProviderKind::Anthropic
    );
    match &raw.adaptive_limits {
        None if default_on => Some(AdaptiveMode::default()),
        None | Some(RawAdaptiveLimits::Enabled(false)) => None,
        Some(RawAdaptiveLimits::Enabled(true)) => Some(AdaptiveMode::default()),
        Some(RawAdaptiveLimits::Options(o)) => match o.mode {
            Some(RawAdaptiveMode::Reject) => {
                if o.max_wait.is_some() {
                    p.push(
                        join(path, "max_wait"),
                        "only for mode \"wait\" (reject never waits)",
                    );
                }
                Some(AdaptiveMode::Reject)
            }
            None | Some(RawAdaptiveMode::Wait) => Some(AdaptiveMode::Wait {
                max_wait: duration_field(
                    p,
                    &join(path, "max_wait"),
                    o.max_wait.as_ref(),
                    DEFAULT_MAX_WAIT,
                    false,
                ),
            }),
        },
    }
}

fn mock(p: &mut Problems, path: &str, raw: &RawProvider) -> MockSpec {
    let latency = duration_field(
        p,
        &join(path, "latency"),
        raw.latency.as_ref(),
        Duration::ZERO,
        true,
    );
    let chunk_interval = duration_field(
        p,
        &join(path, "chunk_interval"),
        raw.chunk_interval.as_ref(),
        Duration::ZERO,
        true,
    );
    let reply = match &raw.reply {
        None => Reply::Lorem { words: 24 },
        Some(RawReply::Echo) => Reply::Echo,
        Some(RawReply::Fixed(t)) => Reply::Fixed(t.clone()),
        Some(RawReply::Lorem(n)) => {
            if *n == 0 || *n > 10_000 {
                p.push(join(&join(path, "reply"), "lorem"), "must be in 1..=10000");
            }
            Reply::Lorem {
                words: usize::try_from(*n).unwrap_or(24),
            }
        }
    };
    let failures = match &raw.failures {
        None => FailurePlan::Never,
        Some(f) => {
            let fpath = join(path, "failures");
            if !(0.0..=1.0).contains(&f.rate) {
                p.push(join(&fpath, "rate"), "must be in [0, 1]");
            }
            if f.status.is_some() && f.kind != RawMockFailureKind::HttpError {
                p.push(join(&fpath, "status"), "only for kind http_error");
            }
            if f.retry_after.is_some() && f.kind != RawMockFailureKind::RateLimited {
                p.push(join(&fpath, "retry_after"), "only for kind rate_limited");
            }
            let failure = match f.kind {
                RawMockFailureKind::RateLimited => Failure::RateLimited {
                    retry_after: duration_field(
                        p,
                        &join(&fpath, "retry_after"),
                        f.retry_after.as_ref(),
                        Duration::from_secs(1),
                        true,
                    ),
                },
                RawMockFailureKind::HttpError => {
                    let status = f.status.unwrap_or(500);
                    if !(400..=599).contains(&status) {
                        p.push(
                            join(&fpath, "status"),
                            "must be an HTTP error status (400..=599)",
                        );
                    }
                    Failure::ServerError { status }
                }
                RawMockFailureKind::Overloaded => Failure::Overloaded,
                RawMockFailureKind::Timeout => Failure::Timeout,
                RawMockFailureKind::Stall => Failure::Stall,
            };
            if f.rate <= 0.0 {
                FailurePlan::Never
            } else {
                FailurePlan::Rate {
                    probability: f.rate,
                    failure,
                    seed: f.seed.unwrap_or(0),
                }
            }
        }
    };
    MockSpec {
        latency,
        chunk_interval,
        reply,
        failures,
        report_usage: raw.report_usage.unwrap_or(true),
    }
}

fn price_field(p: &mut Problems, path: &str, s: &str) -> Option<Price> {
    match Money::parse_usd(s) {
        Ok(m) if m.is_negative() => {
            p.push(path, "must be >= 0");
            None
        }
        Ok(m) => Price::per_million(m).ok(),
        Err(e) => {
            p.push(path, e.to_string());
            None
        }
    }
}

fn model_price(p: &mut Problems, mpath: &str, m: &RawModel) -> Option<ModelPrice> {
    if m.context_window == Some(0) {
        p.push(join(mpath, "context_window"), "must be > 0");
    }
    if m.max_output_tokens == Some(0) {
        p.push(join(mpath, "max_output_tokens"), "must be > 0");
    }
    if let (Some(out), Some(ctx)) = (m.max_output_tokens, m.context_window)
        && out > ctx
    {
        p.push(
            join(mpath, "max_output_tokens"),
            format!("must be <= context_window ({ctx})"),
        );
    }
    let raw = m.price.as_ref()?;
    let ppath = join(mpath, "price");
    let input = price_field(p, &join(&ppath, "input"), &raw.input);
    let output = price_field(p, &join(&ppath, "output"), &raw.output);
    let mut optional = |field: &str, v: &Option<String>| {
        v.as_ref().map(|c| price_field(p, &join(&ppath, field), c))
    };
    let cached = optional("cached_input", &raw.cached_input);
    let write_5m = optional("cache_write_5m", &raw.cache_write_5m);
    let write_1h = optional("cache_write_1h", &raw.cache_write_1h);
    let reasoning = optional("reasoning", &raw.reasoning);
    let mut price = ModelPrice::new(input?, output?);
    if let Some(c) = cached {
        price = price.cached_input(c?);
    }
    if let Some(c) = write_5m {
        price = price.cache_write_5m(c?);
    }
    if let Some(c) = write_1h {
        price = price.cache_write_1h(c?);
    }
    if let Some(c) = reasoning {
        price = price.reasoning(c?);
    }
    if let Some(n) = m.max_output_tokens {
        price = price.max_output_tokens(n);
    }
    if let Some(n) = m.context_window {
        price = price.context_window(n);
    }
    Some(price)
}

fn tokenizer(p: &mut Problems, mpath: &str, model: &str, m: &RawModel) -> TokenizerKind {
    match m.tokenizer.as_deref() {
        Some("o200k_base") => TokenizerKind::O200k,
        Some("cl100k_base") => TokenizerKind::Cl100k,
        Some("heuristic") => TokenizerKind::Heuristic,
        Some(other) => {
            p.push(
                join(mpath, "tokenizer"),
                format!(
                    "unknown tokenizer {other:?} (expected o200k_base, cl100k_base or heuristic)"
                ),
            );
            TokenizerKind::Heuristic
        }
        None => match Encoding::for_model(model) {
            Some(Encoding::O200kBase) => TokenizerKind::O200k,
            Some(Encoding::Cl100kBase) => TokenizerKind::Cl100k,
            _ => TokenizerKind::Heuristic,
        },
    }
}

fn rate_limit(
    p: &mut Problems,
    path: &str,
    rl: &RawRateLimit,
    providers: &indexmap::IndexMap<String, RawProvider>,
) -> Option<LimitSpec> {
    let start = p.list.len();
    if rl.name.trim().is_empty() {
        p.push(join(path, "name"), "must not be empty");
    }
    let positive = |p: &mut Problems, field: &str, v: Option<u64>, algo: &str| -> u64 {
        match v {
            None => {
                p.push(join(path, field), format!("required for {algo}"));
                0
            }
            Some(0) => {
                p.push(join(path, field), "must be > 0");
                0
            }
            Some(n) => n,
        }
    };
    let not_for = |p: &mut Problems, field: &str, present: bool, algo: &str| {
        if present {
            p.push(join(path, field), format!("not used by {algo}"));
        }
    };
    let algorithm = match rl.algorithm {
        RawAlgorithm::SlidingWindow => {
            let algo = "sliding_window";
            not_for(p, "rate", rl.rate.is_some(), algo);
            not_for(p, "per", rl.per.is_some(), algo);
            not_for(p, "burst", rl.burst.is_some(), algo);
            let limit = positive(p, "limit", rl.limit, algo);
            let window = match &rl.window {
                None => {
                    p.push(join(path, "window"), "required for sliding_window");
                    Duration::ZERO
                }
                Some(w) => duration_field(p, &join(path, "window"), Some(w), Duration::ZERO, false),
            };
            Algorithm::sliding_window(limit, window).ok()
        }
        RawAlgorithm::LeakyBucket => {
            let algo = "leaky_bucket";
            not_for(p, "limit", rl.limit.is_some(), algo);
            not_for(p, "window", rl.window.is_some(), algo);
            let rate = positive(p, "rate", rl.rate, algo);
            let per = match &rl.per {
                None => {
                    p.push(join(path, "per"), "required for leaky_bucket");
                    Duration::ZERO
                }
                Some(w) => duration_field(p, &join(path, "per"), Some(w), Duration::ZERO, false),
            };
            let burst = match rl.burst {
                None => rate,
                Some(0) => {
                    p.push(join(path, "burst"), "must be > 0");
                    0
                }
                Some(b) => b,
            };
            Algorithm::leaky_bucket(rate, per, burst).ok()
        }
    };
    let scope = rl.scope.unwrap_or_default();
    let mode = match rl.mode.unwrap_or_default() {
        RawMode::Reject => {
            if rl.max_wait.is_some() {
                p.push(join(path, "max_wait"), "only for mode wait");
            }
            Mode::Reject
        }
        RawMode::Wait => Mode::Wait {
            max_wait: duration_field(
                p,
                &join(path, "max_wait"),
                rl.max_wait.as_ref(),
                Duration::from_secs(10),
                false,
            ),
        },
    };
    let key = match rl.key.unwrap_or_default() {
        RawKey::Global => KeyBy::Global,
        RawKey::Model => KeyBy::Model,
        RawKey::Caller => KeyBy::Caller,
        RawKey::Provider => {
            if scope == RawScope::Caller {
                p.push(
                    join(path, "key"),
                    "the provider is chosen by the router, inside caller-scope limits: use scope \"provider\"",
                );
            }
            KeyBy::Provider
        }
    };
    if !rl.providers.is_empty() && scope != RawScope::Provider {
        p.push(join(path, "providers"), "only for scope provider");
    }
    for (i, name) in rl.providers.iter().enumerate() {
        if !providers.contains_key(name) {
            p.push(
                index(&join(path, "providers"), i),
                format!("unknown provider {name:?}"),
            );
        }
    }
    let unit = match rl.unit.unwrap_or_default() {
        RawUnit::Requests => {
            if rl.default_output_tokens.is_some() {
                p.push(join(path, "default_output_tokens"), "only for unit tokens");
            }
            Unit::Requests
        }
        RawUnit::Tokens => Unit::Tokens,
    };
    if rl.default_output_tokens == Some(0) {
        p.push(join(path, "default_output_tokens"), "must be > 0");
    }
    if p.list.len() > start {
        return None;
    }
    Some(LimitSpec {
        name: rl.name.clone(),
        algorithm: algorithm?,
        unit,
        key,
        mode,
        scope,
        providers: rl.providers.clone(),
        default_output_tokens: rl.default_output_tokens.unwrap_or(1024),
    })
}

fn retry(p: &mut Problems, raw: &RawConfig) -> RetrySpec {
    let r = raw.retry.clone().unwrap_or_default();
    let base = duration_field(
        p,
        "retry.base",
        r.base.as_ref(),
        Duration::from_millis(250),
        true,
    );
    let max = duration_field(p, "retry.max", r.max.as_ref(), Duration::from_secs(8), true);
    if max < base {
        p.push("retry.max", "must be >= retry.base");
    }
    let retry_after_cap = duration_field(
        p,
        "retry.retry_after_cap",
        r.retry_after_cap.as_ref(),
        Duration::from_secs(60),
        true,
    );
    let budget_percent = r.budget_percent.unwrap_or(20);
    if budget_percent > 1000 {
        p.push("retry.budget_percent", "must be <= 1000");
    }
    RetrySpec {
        max_retries: r.max_retries.unwrap_or(3),
        base,
        max,
        retry_after_cap,
        budget_percent,
        budget_min_per_second: r.budget_min_per_second.unwrap_or(10),
    }
}

fn circuit(p: &mut Problems, raw: &RawConfig) -> Option<CircuitSpec> {
    let c = raw.circuit_breaker.clone().unwrap_or_default();
    let failure_threshold = c.failure_threshold.unwrap_or(5);
    if failure_threshold == 0 {
        p.push("circuit_breaker.failure_threshold", "must be > 0");
    }
    let cooldown = duration_field(
        p,
        "circuit_breaker.cooldown",
        c.cooldown.as_ref(),
        Duration::from_secs(30),
        false,
    );
    c.enabled.unwrap_or(true).then_some(CircuitSpec {
        failure_threshold,
        cooldown,
    })
}

fn thresholds(p: &mut Problems, path: &str, alerts: Option<&Vec<f64>>) -> Option<Vec<Threshold>> {
    let alerts = alerts?;
    let mut out = Vec::new();
    for (i, a) in alerts.iter().enumerate() {
        let apath = index(&join(path, "alerts"), i);
        if !(*a > 0.0 && *a <= 1.0) {
            p.push(apath, "must be in (0, 1]");
            continue;
        }
        let per_mille = (a * 1000.0).round();
        if per_mille < 1.0 {
            p.push(apath, "must be at least 0.001");
            continue;
        }
        // In 1..=1000 by the checks above.
        if let Ok(t) = Threshold::per_mille(per_mille as u16) {
            out.push(t);
        }
    }
    Some(out)
}

fn limit_usd(p: &mut Problems, path: &str, s: &str) -> Option<Money> {
    match Money::parse_usd(s) {
        Ok(m) if m <= Money::ZERO => {
            p.push(path, "must be > 0");
            None
        }
        Ok(m) => Some(m),
        Err(e) => {
            p.push(path, e.to_string());
            None
        }
    }
}

fn period(p: RawPeriod) -> Period {
    match p {
        RawPeriod::Hour => Period::Hour,
        RawPeriod::Day => Period::Day,
        RawPeriod::Month => Period::Month,
        RawPeriod::Total => Period::Total,
    }
}

fn action(a: Option<RawAction>) -> BudgetAction {
    match a.unwrap_or_default() {
        RawAction::Block => BudgetAction::Block,
        RawAction::Alert => BudgetAction::Alert,
    }
}

/// Every target a budget scope can apply to.
fn reach(scope: &BudgetScope, catalog: &Catalog) -> Vec<usize> {
    match scope {
        BudgetScope::Global | BudgetScope::EachCaller | BudgetScope::Caller(_) => {
            (0..catalog.targets.len()).collect()
        }
        BudgetScope::Model(id) => match catalog.resolve_model(id) {
            Resolution::Targets(t) => t.to_vec(),
            _ => Vec::new(),
        },
        BudgetScope::Provider(name) => catalog.targets_of(name),
    }
}

fn require_prices(
    p: &mut Problems,
    path: &str,
    scope: &BudgetScope,
    catalog: &Catalog,
    providers: &[ProviderSpec],
) {
    let priced: HashSet<usize> = providers
        .iter()
        .flat_map(|pr| pr.models.iter())
        .filter(|m| m.price.is_some())
        .map(|m| m.target)
        .collect();
    let known: HashSet<usize> = providers
        .iter()
        .flat_map(|pr| pr.models.iter())
        .map(|m| m.target)
        .collect();
    for t in reach(scope, catalog) {
        // Models of providers with problems of their own are reported there.
        if known.contains(&t)
            && !priced.contains(&t)
            && let Some(target) = catalog.target(t)
        {
            p.push(path, format!("model {:?} has no price", target.id));
        }
    }
}

fn budget(
    p: &mut Problems,
    path: &str,
    b: &RawBudget,
    catalog: &Catalog,
    providers: &[ProviderSpec],
) -> Option<Budget> {
    let start = p.list.len();
    let spath = join(path, "scope");
    let scope = match b.scope.split_once(':') {
        None if b.scope == "global" => Some(BudgetScope::Global),
        None if b.scope == "each_caller" => Some(BudgetScope::EachCaller),
        Some(("caller", name)) if !name.is_empty() => Some(BudgetScope::Caller(name.to_owned())),
        Some(("model", name)) if !name.is_empty() => match catalog.resolve_model(name) {
            Resolution::Targets(t) => t
                .first()
                .and_then(|&i| catalog.target(i))
                .map(|t| BudgetScope::Model(t.id.clone())),
            Resolution::Ambiguous(ids) => {
                p.push(
                    &spath,
                    format!(
                        "model {name:?} is served by several providers: write one of {}",
                        ids.iter()
                            .map(|id| format!("\"model:{id}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                None
            }
            Resolution::Unknown => {
                let hint = if catalog.routes.contains_key(name) {
                    " (budgets apply to provider models, not to routes)"
                } else {
                    ""
                };
                p.push(&spath, format!("unknown model {name:?}{hint}"));
                None
            }
        },
        Some(("provider", name)) if !name.is_empty() => {
            if catalog.targets.iter().any(|t| t.provider == name) {
                Some(BudgetScope::Provider(name.to_owned()))
            } else {
                p.push(&spath, format!("unknown provider {name:?}"));
                None
            }
        }
        _ => {
            p.push(
                &spath,
                "expected global, each_caller, caller:<name>, model:<provider/model> or provider:<name>",
            );
            None
        }
    };
    let limit = limit_usd(p, &join(path, "limit_usd"), &b.limit_usd);
    let thresholds = thresholds(p, path, b.alerts.as_ref());
    if let Some(scope) = &scope {
        require_prices(p, path, scope, catalog, providers);
    }
    if p.list.len() > start {
        return None;
    }
    let mut budget = Budget::new(b.name.clone(), scope?, period(b.period), limit?).ok()?;
    if let Some(t) = thresholds {
        budget = budget.thresholds(t);
    }
    Some(budget.action(action(b.action)))
}

fn store(p: &mut Problems, raw: &RawConfig) -> StoreSpec {
    let Some(s) = &raw.store else {
        return StoreSpec::Memory;
    };
    match s.kind {
        RawStoreKind::Memory => {
            for (field, present) in [
                ("url", s.url.is_some()),
                ("prefix", s.prefix.is_some()),
                ("on_error", s.on_error.is_some()),
                ("timeout_ms", s.timeout_ms.is_some()),
                ("reconnect_interval_ms", s.reconnect_interval_ms.is_some()),
                ("budget_retention", s.budget_retention.is_some()),
                ("reservation_ttl", s.reservation_ttl.is_some()),
            ] {
                if present {
                    p.push(join("store", field), "only for type redis");
                }
            }
            StoreSpec::Memory
        }
        RawStoreKind::Redis => redis_store(p, s),
    }
}

/// `store.type: "redis"` without the `redis` feature: refused.
#[cfg(not(feature = "redis"))]
fn redis_store(p: &mut Problems, _s: &crate::raw::RawStore) -> StoreSpec {
    p.push(
        "store.type",
        "\"redis\" needs the `redis` cargo feature (of llm-tower, or of llm-tower-config)",
    );
    StoreSpec::Memory
}

#[cfg(feature = "redis")]
fn redis_store(p: &mut Problems, s: &crate::raw::RawStore) -> StoreSpec {
    let Some(url) = &s.url else {
        p.push(
            "store.url",
            "required for type redis (e.g. \"redis://127.0.0.1:6379/\")",
        );
        return StoreSpec::Memory;
    };
    let mut cfg = RedisConfig::new(url.expose());
    if let Some(prefix) = &s.prefix {
        cfg = cfg.prefix(prefix.clone());
    }
    if let Some(on_error) = s.on_error {
        cfg = cfg.failure_policy(match on_error {
            RawOnError::FailClosed => FailurePolicy::FailClosed,
            RawOnError::FailOpenLocal => FailurePolicy::FailOpenLocal,
        });
    }
    if let Some(ms) = s.timeout_ms {
        if ms == 0 {
            p.push("store.timeout_ms", "must be > 0");
        }
        cfg = cfg.timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = s.reconnect_interval_ms {
        if ms == 0 {
            p.push("store.reconnect_interval_ms", "must be > 0");
        }
        cfg = cfg.reconnect_interval(Duration::from_millis(ms));
    }
    if let Err(e) = cfg.validate() {
        // The redis crate's messages show the URL with its password redacted.
        p.push("store", e.message().to_owned());
    }
    StoreSpec::Redis(RedisStoreSpec {
        config: cfg,
        budget_retention: optional_duration(
            p,
            "store.budget_retention",
            s.budget_retention.as_ref(),
        ),
        reservation_ttl: optional_duration(p, "store.reservation_ttl", s.reservation_ttl.as_ref()),
    })
}

/// A duration that must be > 0 when given.
#[cfg(feature = "redis")]
fn optional_duration(p: &mut Problems, path: &str, value: Option<&String>) -> Option<Duration> {
    match parse_duration(value?) {
        Ok(d) if d.is_zero() => {
            p.push(path, "must be > 0");
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            p.push(path, e);
            None
        }
    }
}

/// A budget counter must outlive its period, or its budget would start over early.
#[cfg(feature = "redis")]
fn check_budget_retention(p: &mut Problems, store: &StoreSpec, budgets: &[Budget]) {
    let StoreSpec::Redis(RedisStoreSpec {
        budget_retention: Some(retention),
        ..
    }) = store
    else {
        return;
    };
    let longest = budgets
        .iter()
        .filter_map(|b| {
            let secs = match b.period() {
                Period::Hour => 3_600,
                Period::Day => 86_400,
                Period::Month => 31 * 86_400,
                Period::Total => return None,
            };
            Some((Duration::from_secs(secs), b))
        })
        .max_by_key(|(d, _)| *d);
    if let Some((period, b)) = longest
        && *retention < period
    {
        p.push(
            "store.budget_retention",
            format!(
                "must be at least the longest budget period ({} for {} budget {:?}), \
                 or a counter could expire before its period ends",
                format_duration(period),
                b.period().as_str(),
                b.name()
            ),
        );
    }
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = *chunk.first()?;
        let lo = *chunk.get(1)?;
        let v = |c: u8| -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        };
        *out.get_mut(i)? = (v(hi)? << 4) | v(lo)?;
    }
    Some(out)
}

/// The SHA-256 of a key.
pub(crate) fn sha256(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn key_budget(
    p: &mut Problems,
    path: &str,
    key_name: &str,
    b: &RawKeyBudget,
    catalog: &Catalog,
    providers: &[ProviderSpec],
) -> Option<Budget> {
    let start = p.list.len();
    let limit = limit_usd(p, &join(path, "limit_usd"), &b.limit_usd);
    let thresholds = thresholds(p, path, b.alerts.as_ref());
    let scope = BudgetScope::Caller(key_name.to_owned());
    require_prices(p, path, &scope, catalog, providers);
    if p.list.len() > start {
        return None;
    }
    let mut budget =
        Budget::new(format!("key:{key_name}"), scope, period(b.period), limit?).ok()?;
    if let Some(t) = thresholds {
        budget = budget.thresholds(t);
    }
    Some(budget.action(action(b.action)))
}

fn check_level(level: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let ok_level = |l: &str| LEVELS.contains(&l.to_ascii_lowercase().as_str());
    !level.trim().is_empty()
        && level.split(',').all(|part| {
            let part = part.trim();
            match part.split_once('=') {
                None => ok_level(part),
                Some((target, l)) => !target.trim().is_empty() && ok_level(l.trim()),
            }
        })
}

type GatewayParts = (GatewaySettings, Vec<KeySpec>, Vec<Budget>);

fn gateway(
    p: &mut Problems,
    unresolved: &RawConfig,
    raw: &RawConfig,
    catalog: &Catalog,
    providers: &[ProviderSpec],
    budget_names: &mut HashMap<String, String>,
) -> GatewayParts {
    let mut settings = GatewaySettings::default();
    if let Some(l) = &raw.logging {
        settings.log_format = match l.format.unwrap_or_default() {
            RawLogFormat::Human => LogFormat::Human,
            RawLogFormat::Json => LogFormat::Json,
        };
        if let Some(level) = &l.level {
            if check_level(level) {
                settings.log_level = level.trim().to_owned();
            } else {
                p.push(
                    "logging.level",
                    "expected a level (trace, debug, info, warn, error, off) or directives like \"info,llm_tower=debug\"",
                );
            }
        }
    }
    let Some(g) = &raw.gateway else {
        return (settings, Vec::new(), Vec::new());
    };
    if let Some(listen) = &g.listen {
        match SocketAddr::from_str(listen.trim()) {
            Ok(a) => settings.listen = a,
            Err(_) => p.push(
                "gateway.listen",
                "not a socket address (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")",
            ),
        }
    }
    if let Some(n) = g.max_body_bytes {
        match usize::try_from(n) {
            Ok(0) => p.push("gateway.max_body_bytes", "must be > 0"),
            Ok(n) => settings.max_body_bytes = n,
            Err(_) => p.push("gateway.max_body_bytes", "too large for this platform"),
        }
    }
    if let Some(n) = g.max_upstream_buffer_bytes {
        match usize::try_from(n) {
            Ok(n) if n < 1024 => p.push("gateway.max_upstream_buffer_bytes", "must be >= 1024"),
            Ok(n) => settings.max_upstream_buffer_bytes = n,
            Err(_) => p.push(
                "gateway.max_upstream_buffer_bytes",
                "too large for this platform",
            ),
        }
    }
    settings.request_timeout = duration_field(
        p,
        "gateway.request_timeout",
        g.request_timeout.as_ref(),
        settings.request_timeout,
        false,
    );
    settings.header_read_timeout = duration_field(
        p,
        "gateway.header_read_timeout",
        g.header_read_timeout.as_ref(),
        settings.header_read_timeout,
        false,
    );
    settings.idle_timeout = duration_field(
        p,
        "gateway.idle_timeout",
        g.idle_timeout.as_ref(),
        settings.idle_timeout,
        false,
    );
    let interval = duration_field(
        p,
        "gateway.http2_keep_alive_interval",
        g.http2_keep_alive_interval.as_ref(),
        settings.http2_keep_alive_interval.unwrap_or_default(),
        true,
    );
    settings.http2_keep_alive_interval = (!interval.is_zero()).then_some(interval);
    settings.http2_keep_alive_timeout = duration_field(
        p,
        "gateway.http2_keep_alive_timeout",
        g.http2_keep_alive_timeout.as_ref(),
        settings.http2_keep_alive_timeout,
        false,
    );
    if let Some(n) = g.max_connections {
        match usize::try_from(n) {
            Ok(0) => p.push("gateway.max_connections", "must be >= 1"),
            Ok(n) => settings.max_connections = Some(n),
            Err(_) => p.push("gateway.max_connections", "too large for this platform"),
        }
    }
    settings.shutdown_grace = duration_field(
        p,
        "gateway.shutdown_grace",
        g.shutdown_grace.as_ref(),
        settings.shutdown_grace,
        true,
    );

    let mut keys = Vec::new();
    let mut budgets = Vec::new();
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut hashes: Vec<([u8; 32], String)> = Vec::new();
    let unresolved_keys = unresolved
        .gateway
        .as_ref()
        .map(|g| g.keys.as_slice())
        .unwrap_or(&[]);
    for (i, k) in g.keys.iter().enumerate() {
        let path = index("gateway.keys", i);
        let start = p.list.len();
        key_name(p, &path, k, &mut names);
        let hash = key_hash(p, &path, k, unresolved_keys.get(i));
        if let Some((h, field)) = &hash {
            if let Some((_, first)) = hashes.iter().find(|(o, _)| o == h) {
                p.push(
                    join(&path, field),
                    format!("duplicate key (the same key as {first})"),
                );
            } else {
                hashes.push((*h, path.clone()));
            }
        }
        let mut limits = Vec::new();
        let mut lnames = HashSet::new();
        for (j, rl) in k.rate_limits.iter().enumerate() {
            let lpath = index(&join(&path, "rate_limits"), j);
            if !lnames.insert(rl.name.clone()) {
                p.push(
                    join(&lpath, "name"),
                    format!("duplicate rate limit name {:?}", rl.name),
                );
            }
            if let Some(l) = rate_limit(p, &lpath, rl, &raw.providers) {
                limits.push(l);
            }
        }
        if let Some(b) = &k.budget {
            let bpath = join(&path, "budget");
            let bname = format!("key:{}", k.name);
            if let Some(first) = budget_names.insert(bname.clone(), bpath.clone()) {
                p.push(
                    &bpath,
                    format!("budget name {bname:?} is also used by {first}"),
                );
            }
            if let Some(b) = key_budget(p, &bpath, &k.name, b, catalog, providers) {
                budgets.push(b);
            }
        }
        if p.list.len() == start
            && let Some((hash, _)) = hash
        {
            keys.push(KeySpec {
                name: k.name.clone(),
                hash,
                limits,
                admin: k.admin,
            });
        }
    }
    (settings, keys, budgets)
}

fn key_name<'a>(
    p: &mut Problems,
    path: &str,
    k: &'a RawGatewayKey,
    names: &mut HashMap<&'a str, String>,
) {
    let npath = join(path, "name");
    if k.name.trim().is_empty() {
        p.push(npath, "must not be empty");
    } else if k.name == "anonymous" {
        p.push(
            npath,
            "\"anonymous\" is the caller key of requests without a key; choose another name",
        );
    } else if let Some(first) = names.insert(&k.name, path.to_owned()) {
        p.push(
            npath,
            format!("duplicate key name {:?} (also {first})", k.name),
        );
    }
}

fn key_hash(
    p: &mut Problems,
    path: &str,
    k: &RawGatewayKey,
    unresolved: Option<&RawGatewayKey>,
) -> Option<([u8; 32], &'static str)> {
    match (&k.key_sha256, &k.key) {
        (Some(_), Some(_)) => {
            p.push(path, "give either key_sha256 or key, not both");
            None
        }
        (None, None) => {
            p.push(
                path,
                "needs key_sha256 (hex SHA-256 of the key) or key (\"${ENV_VAR}\")",
            );
            None
        }
        (Some(hex), None) => match decode_hex32(hex) {
            Some(h) => Some((h, "key_sha256")),
            None => {
                p.push(
                    join(path, "key_sha256"),
                    "must be 64 hex digits (the SHA-256 of the key)",
                );
                None
            }
        },
        (None, Some(key)) => {
            let kpath = join(path, "key");
            let is_ref = unresolved
                .and_then(|u| u.key.as_ref())
                .is_some_and(|u| single_reference(u.expose()).is_some());
            if !is_ref {
                p.push(
                    kpath,
                    "a plain key must come from the environment (\"${GATEWAY_KEY_NAME}\"); to write it in the file, give key_sha256 instead",
                );
                return None;
            }
            if key.expose().len() < 8 {
                p.push(kpath, "the key is too short (at least 8 characters)");
                return None;
            }
            Some((sha256(key.expose()), "key"))
        }
    }
}
