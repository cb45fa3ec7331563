//! [`AppState`]: the gateway built from plain parts.
//!
//! The gateway does not know how its stack was made: it takes a boxed
//! `Service<LlmRequest>` (any llm-tower stack), the list of models it serves, an
//! [`Authenticator`] with a flag whether a key is required, an optional [`CostTracker`]
//! for `/v1/usage`, an optional health probe, and [`Settings`]. `llm-tower-config` builds
//! these from JSON (see [`AppState::from_built`](crate::AppState) with the `config`
//! feature); tests and embedders build them by hand.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use llm_tower_core::{CallerKey, ChatRequest, ClientHeaders, Error, LlmRequest, LlmResponse};
use llm_tower_layers::cost::CostTracker;
use llm_tower_layers::token_count::{TokenCounter, Tokenizers};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use tower::Service;
use tower::util::BoxCloneSyncService;

use crate::auth::{Authenticator, NoKeys};
use crate::responses::{MemoryResponseStore, ResponseStore};
use crate::settings::Settings;

/// The stack the gateway calls: any llm-tower service, boxed.
pub type LlmService = BoxCloneSyncService<LlmRequest, LlmResponse, Error>;

/// A model the gateway serves, as `/v1/models` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The name clients send as `model` (a model or a route alias).
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds (0 when unknown).
    pub created: u64,
    /// Who provides it (a provider name, or `llm-tower` for a route alias).
    pub owned_by: String,
}

impl ModelInfo {
    /// A model `id` owned by `owned_by`.
    pub fn new(id: impl Into<String>, owned_by: impl Into<String>) -> Self {
        ModelInfo {
            id: id.into(),
            object: "model",
            created: 0,
            owned_by: owned_by.into(),
        }
    }
}

impl From<&str> for ModelInfo {
    fn from(id: &str) -> Self {
        ModelInfo::new(id, "llm-tower")
    }
}

impl From<String> for ModelInfo {
    fn from(id: String) -> Self {
        ModelInfo::new(id, "llm-tower")
    }
}

/// The health of one provider, as a probe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderHealth {
    /// The provider's name.
    pub provider: String,
    /// `true` when it answered.
    pub ok: bool,
    /// Why it failed (no secrets).
    pub error: Option<String>,
}

impl ProviderHealth {
    /// A healthy provider.
    pub fn ok(provider: impl Into<String>) -> Self {
        ProviderHealth {
            provider: provider.into(),
            ok: true,
            error: None,
        }
    }

    /// A failing provider.
    pub fn failed(provider: impl Into<String>, error: impl Into<String>) -> Self {
        ProviderHealth {
            provider: provider.into(),
            ok: false,
            error: Some(error.into()),
        }
    }
}

/// What a health probe returns.
pub type HealthFuture = BoxFuture<'static, Vec<ProviderHealth>>;

type HealthProbe = Arc<dyn Fn() -> HealthFuture + Send + Sync>;
type UpstreamCounter = Arc<
    dyn Fn(ChatRequest, ClientHeaders) -> BoxFuture<'static, Option<Result<u64, Error>>>
        + Send
        + Sync,
>;

/// Everything the gateway's handlers need. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) service: LlmService,
    pub(crate) models: Vec<ModelInfo>,
    pub(crate) model_ids: HashSet<String>,
    pub(crate) reject_unlisted: bool,
    pub(crate) models_json: Bytes,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) auth_required: bool,
    pub(crate) tracker: Option<CostTracker>,
    pub(crate) usage_admins: HashSet<String>,
    pub(crate) health: Option<HealthProbe>,
    /// The last probe results and when they were taken; the lock makes concurrent
    /// `/health` requests share one probe run.
    pub(crate) health_cache:
        tokio::sync::Mutex<Option<(tokio::time::Instant, Arc<[ProviderHealth]>)>>,
    pub(crate) settings: Settings,
    pub(crate) prometheus: Option<PrometheusHandle>,
    pub(crate) describe: Option<String>,
    pub(crate) responses: Option<Arc<dyn ResponseStore>>,
    pub(crate) counter: Arc<dyn TokenCounter>,
    pub(crate) count_upstream: Option<UpstreamCounter>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("AppState")
            .field("models", &i.models.len())
            .field("auth_required", &i.auth_required)
            .field("usage", &i.tracker.is_some())
            .field("health", &i.health.is_some())
            .field("metrics", &i.prometheus.is_some())
            .field("settings", &i.settings)
            .finish()
    }
}

/// Builds an [`AppState`].
pub struct AppStateBuilder {
    service: LlmService,
    models: Vec<ModelInfo>,
    reject_unlisted: bool,
    auth: Arc<dyn Authenticator>,
    auth_required: bool,
    tracker: Option<CostTracker>,
    usage_admins: HashSet<String>,
    health: Option<HealthProbe>,
    settings: Settings,
    prometheus: Option<PrometheusHandle>,
    describe: Option<String>,
    responses: Option<Arc<dyn ResponseStore>>,
    counter: Option<Arc<dyn TokenCounter>>,
    count_upstream: Option<UpstreamCounter>,
}

impl fmt::Debug for AppStateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppStateBuilder")
            .field("models", &self.models)
            .field("auth_required", &self.auth_required)
            .finish()
    }
}

impl AppState {
    /// A builder around `service`: no models listed (every model name is passed on), no
    /// key required, no usage analytics, no health probes, no metrics, default settings.
    pub fn builder<S>(service: S) -> AppStateBuilder
    where
        S: Service<LlmRequest, Response = LlmResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        AppStateBuilder {
            service: BoxCloneSyncService::new(service),
            models: Vec::new(),
            reject_unlisted: true,
            auth: Arc::new(NoKeys),
            auth_required: false,
            tracker: None,
            usage_admins: HashSet::new(),
            health: None,
            settings: Settings::default(),
            prometheus: None,
            describe: None,
            responses: Some(Arc::new(MemoryResponseStore::default())),
            counter: None,
            count_upstream: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// A clone of the stack.
    pub fn service(&self) -> LlmService {
        self.inner.service.clone()
    }

    /// The models listed by `/v1/models`.
    pub fn models(&self) -> &[ModelInfo] {
        &self.inner.models
    }

    /// `false` when the gateway answers 404 for `model` before calling the stack: the
    /// model is not listed, the list is not empty, and unlisted models are rejected.
    pub fn knows_model(&self, model: &str) -> bool {
        !self.inner.reject_unlisted
            || self.inner.model_ids.is_empty()
            || self.inner.model_ids.contains(model)
    }

    /// Whether requests need a valid gateway key.
    pub fn auth_required(&self) -> bool {
        self.inner.auth_required
    }

    /// The caller of `token`, if it is a valid key.
    pub fn authenticate(&self, token: &str) -> Option<CallerKey> {
        self.inner.auth.authenticate(token)
    }

    /// The cost tracker behind `/v1/usage`.
    pub fn tracker(&self) -> Option<&CostTracker> {
        self.inner.tracker.as_ref()
    }

    /// The token counter behind `/v1/messages/count_tokens`: the one given to the
    /// builder (the stack's own), else [`Tokenizers`].
    pub fn token_counter(&self) -> &Arc<dyn TokenCounter> {
        &self.inner.counter
    }

    /// The provider's own count of `chat`'s input tokens, when one is configured to answer
    /// (see [`AppStateBuilder::upstream_token_count`]).
    pub(crate) async fn count_tokens_upstream(
        &self,
        chat: &ChatRequest,
        client: &ClientHeaders,
    ) -> Option<Result<u64, Error>> {
        let f = self.inner.count_upstream.as_ref()?;
        f(chat.clone(), client.clone()).await
    }

    /// The description of the composed stack, when one was given.
    pub fn describe(&self) -> Option<&str> {
        self.inner.describe.as_deref()
    }

    /// Where `POST /v1/responses` keeps responses (`store: true`) for
    /// `previous_response_id` and `GET /v1/responses/{id}`.
    pub fn response_store(&self) -> Option<&Arc<dyn ResponseStore>> {
        self.inner.responses.as_ref()
    }

    /// The axum router of the gateway over this state.
    pub fn router(&self) -> axum::Router {
        crate::routes::router(self.clone())
    }
}

impl AppStateBuilder {
    /// The models `/v1/models` lists; requests naming another model get 404
    /// `model_not_found` (unless [`reject_unlisted_models`](Self::reject_unlisted_models)
    /// is off). With no list, every name goes to the stack.
    #[must_use]
    pub fn models<I, M>(mut self, models: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: Into<ModelInfo>,
    {
        self.models = models.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a request naming a model that is not listed gets 404 at once (default
    /// `true`). Turn it off when the stack accepts more names than it lists (for example
    /// a bare model name served by one provider) and answers unknown ones itself with an
    /// `InvalidRequest` error starting `model not found` (which is also a 404).
    #[must_use]
    pub fn reject_unlisted_models(mut self, yes: bool) -> Self {
        self.reject_unlisted = yes;
        self
    }

    /// Who may call, and whether a valid key is required. Without `required`, requests
    /// without a key (or with an unknown one, as SDKs always send one) pass anonymously,
    /// and a known key still names its caller.
    #[must_use]
    pub fn auth(mut self, authenticator: impl Authenticator, required: bool) -> Self {
        self.auth = Arc::new(authenticator);
        self.auth_required = required;
        self
    }

    /// Same as [`auth`](Self::auth) with an already shared authenticator.
    #[must_use]
    pub fn auth_arc(mut self, authenticator: Arc<dyn Authenticator>, required: bool) -> Self {
        self.auth = authenticator;
        self.auth_required = required;
        self
    }

    /// The cost tracker whose analytics and budgets `/v1/usage` shows (the same one the
    /// stack's cost layer uses).
    #[must_use]
    pub fn tracker(mut self, tracker: CostTracker) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// Callers who see everybody's usage on `GET /v1/usage`. When keys are required, any
    /// other caller sees only its own totals and budgets; without keys everyone sees all.
    #[must_use]
    pub fn usage_admins<I, C>(mut self, callers: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<CallerKey>,
    {
        self.usage_admins = callers
            .into_iter()
            .map(|c| c.into().as_str().to_owned())
            .collect();
        self
    }

    /// The provider health probe behind `/health`.
    #[must_use]
    pub fn health<F, Fut>(mut self, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<ProviderHealth>> + Send + 'static,
    {
        self.health = Some(Arc::new(move || Box::pin(probe())));
        self
    }

    /// The server settings.
    #[must_use]
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Serves `/metrics` from this Prometheus recorder (see
    /// [`telemetry::prometheus`](crate::telemetry::prometheus)).
    #[must_use]
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// A description of the composed stack (logged at start-up).
    #[must_use]
    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.describe = Some(text.into());
        self
    }

    /// Where the Responses API keeps stored responses (default: a
    /// [`MemoryResponseStore`] of 10,000 responses for one hour); `None` stores nothing
    /// (`previous_response_id` then always gets 400 and `GET /v1/responses/{id}` 404).
    #[must_use]
    pub fn response_store(mut self, store: Option<Arc<dyn ResponseStore>>) -> Self {
        self.responses = store;
        self
    }

    /// The token counter for `/v1/messages/count_tokens`: use the one the stack's
    /// token-count layer uses, so the answer matches what limits and budgets reserve.
    /// Default: [`Tokenizers`] (exact for OpenAI models, an estimate for the others).
    #[must_use]
    pub fn token_counter(mut self, counter: Arc<dyn TokenCounter>) -> Self {
        self.counter = Some(counter);
        self
    }

    /// Who else may answer `/v1/messages/count_tokens`: `counter(chat, client headers)`
    /// returns `Some` with the provider's own count (Anthropic's `count_tokens` endpoint,
    /// see `BuiltStack::count_tokens_upstream`), or `None` to let the token counter answer.
    #[must_use]
    pub fn upstream_token_count<F, Fut>(mut self, counter: F) -> Self
    where
        F: Fn(ChatRequest, ClientHeaders) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Result<u64, Error>>> + Send + 'static,
    {
        self.count_upstream = Some(Arc::new(move |chat, client| {
            Box::pin(counter(chat, client))
        }));
        self
    }

    /// Builds the state.
    pub fn build(self) -> AppState {
        #[derive(Serialize)]
        struct List<'a> {
            object: &'static str,
            data: &'a [ModelInfo],
        }
        let models_json = serde_json::to_vec(&List {
            object: "list",
            data: &self.models,
        })
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(br#"{"object":"list","data":[]}"#));
        let model_ids = self.models.iter().map(|m| m.id.clone()).collect();
        AppState {
            inner: Arc::new(Inner {
                service: self.service,
                models: self.models,
                model_ids,
                reject_unlisted: self.reject_unlisted,
                models_json,
                auth: self.auth,
                auth_required: self.auth_required,
                tracker: self.tracker,
                usage_admins: self.usage_admins,
                health: self.health,
                health_cache: tokio::sync::Mutex::new(None),
                settings: self.settings,
                prometheus: self.prometheus,
                describe: self.describe,
                responses: self.responses,
                counter: self.counter.unwrap_or_else(|| Arc::new(Tokenizers::new())),
                count_upstream: self.count_upstream,
            }),
        }
    }
}
