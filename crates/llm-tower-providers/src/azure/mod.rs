//! Azure OpenAI: deployment URLs
//! (`{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`), the
//! `api-key` header or an Entra ID bearer token, and a model -> deployment mapping.
//! It speaks OpenAI's wire format and reuses the OpenAI code.
//!
//! # The v1 API
//!
//! With [`AzureOpenAiConfig::v1`] requests go to `{endpoint}/openai/v1/chat/completions`
//! and `{endpoint}/openai/v1/embeddings` (models: `/openai/v1/models`), with no
//! deployment in the path and no `api-version`: the request's `model` (which Azure reads
//! as the deployment name) is sent in the body as is, the deployment mapping is not used,
//! `max_tokens` goes on the wire as `max_completion_tokens` unless
//! [`AzureOpenAiConfig::max_tokens_field`] says otherwise, and streams ask for usage.
//!
//! # Entra ID
//!
//! [`AzureAuth::Entra`] takes bearer tokens from an [`EntraTokenSource`]: the
//! client-credentials grant (`POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`,
//! scope `https://cognitiveservices.azure.com/.default`) or a command such as
//! `az account get-access-token`. The token is cached and refreshed five minutes (or half
//! its lifetime) before it expires; concurrent requests wait for one fetch.
//!
//! ```no_run
//! # fn demo() -> Result<(), llm_tower_core::Error> {
//! use llm_tower_providers::azure::{AzureAuth, AzureOpenAi, AzureOpenAiConfig};
//! use llm_tower_providers::http::HttpClient;
//!
//! let azure = AzureOpenAi::new(
//!     AzureOpenAiConfig::new("https://my-resource.openai.azure.com", AzureAuth::api_key("..."))
//!         .deployment("gpt-4o-mini", "my-gpt4o-mini-deployment"),
//!     HttpClient::new()?,
//! )?;
//! # let _ = azure; Ok(()) }
//! ```
//!
//! # Usage in streams
//!
//! `stream_options: {"include_usage": true}` is sent with streamed chat requests only when
//! the `api-version` is `2024-09-01` or later (the `YYYY-MM-DD` prefix is compared, so
//! `2024-09-01-preview` counts; a version that is not a date, such as `preview`, counts as
//! new): earlier versions reject the field. Without it the stream has no usage chunk and
//! the token-count layer counts the output. [`AzureOpenAiConfig::stream_usage`] overrides
//! the choice.
//!
//! # Errors
//!
//! As [`openai`](crate::openai); a missing deployment is a 404 `InvalidRequest`.
//!
//! # Clone
//!
//! Clones share one configuration and the [`HttpClient`]'s connection pool.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use llm_tower_core::{Error, SharedClock};

use crate::common::{Common, LimitHeaders, base_url, secret_header};
use crate::http::HttpClient;
use crate::openai::MaxTokensField;
use crate::openai::convert::{StreamUsage, WireOptions};
use crate::openai::engine::{AzureUrls, OpenAiEngine, SharedEngine, Urls, impl_provider_service};
use crate::secret::Secret;

mod entra;
pub use entra::{
    COGNITIVE_SERVICES_SCOPE, COMMAND_TOKEN_TTL, EntraTokenSource, REFRESH_MARGIN,
    token_url_for_tenant,
};

/// The default `api-version` (the current GA data-plane version).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// The first `api-version` that accepts `stream_options` (`include_usage`).
pub const STREAM_USAGE_API_VERSION: &str = "2024-09-01";

/// Whether `api_version` accepts `stream_options`: its `YYYY-MM-DD` prefix is
/// [`STREAM_USAGE_API_VERSION`] or later. A version that does not start with a date
/// (`preview`, `latest`, the v1 API's names) is taken as new.
///
/// ```
/// use llm_tower_providers::azure::supports_stream_usage;
///
/// assert!(supports_stream_usage("2024-10-21"));
/// assert!(supports_stream_usage("2024-09-01-preview"));
/// assert!(!supports_stream_usage("2024-08-01-preview"));
/// assert!(!supports_stream_usage("2024-06-01"));
/// assert!(supports_stream_usage("preview"));
/// ```
pub fn supports_stream_usage(api_version: &str) -> bool {
    let v = api_version.trim();
    let date = v.get(..10).filter(|d| {
        d.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
    });
    match date {
        // Same-shape ASCII dates compare correctly as strings.
        Some(d) => d >= STREAM_USAGE_API_VERSION,
        None => true,
    }
}

/// How Azure OpenAI requests authenticate.
#[derive(Debug, Clone)]
pub enum AzureAuth {
    /// The resource's key, sent as the `api-key` header.
    ApiKey(Secret),
    /// A Microsoft Entra ID access token, sent as `Authorization: Bearer`.
    BearerToken(Secret),
    /// Entra ID access tokens from a refreshing source, sent as `Authorization: Bearer`.
    Entra(EntraTokenSource),
}

impl AzureAuth {
    /// Key authentication.
    pub fn api_key(key: impl Into<Secret>) -> Self {
        AzureAuth::ApiKey(key.into())
    }

    /// Entra ID token authentication.
    pub fn bearer_token(token: impl Into<Secret>) -> Self {
        AzureAuth::BearerToken(token.into())
    }

    /// Entra ID tokens from a refreshing source.
    pub fn entra(source: EntraTokenSource) -> Self {
        AzureAuth::Entra(source)
    }

    fn secrets(&self) -> Vec<Secret> {
        match self {
            AzureAuth::ApiKey(s) | AzureAuth::BearerToken(s) => vec![s.clone()],
            AzureAuth::Entra(source) => source.secrets(),
        }
    }
}

/// Which Azure OpenAI URL scheme a provider uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AzureApi {
    /// `/openai/deployments/{deployment}/...?api-version=...` (the default).
    #[default]
    Deployments,
    /// `/openai/v1/...`, the model in the body, no `api-version`.
    V1,
}

/// Configuration of an [`AzureOpenAi`] provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AzureOpenAiConfig {
    /// `https://{resource}.openai.azure.com`.
    pub endpoint: String,
    /// Key or token.
    pub auth: AzureAuth,
    /// The URL scheme (default [`AzureApi::Deployments`]).
    pub api: AzureApi,
    /// `api-version` query parameter (default [`DEFAULT_API_VERSION`]).
    pub api_version: String,
    /// Model name -> deployment name.
    pub deployments: BTreeMap<String, String>,
    /// The deployment for models without a mapping (default: the model name itself).
    pub default_deployment: Option<String>,
    /// The provider's name (default `azure`).
    pub name: String,
    /// Overrides the client's request timeout for this provider.
    pub timeout: Option<Duration>,
    /// The wire name of `max_tokens` (default `max_tokens`).
    pub max_tokens_field: MaxTokensField,
    /// The clock (default [`TokioClock`](llm_tower_core::TokioClock)).
    pub clock: Option<SharedClock>,
    /// Whether streamed chat requests send `stream_options: {"include_usage": true}`.
    /// `None` (the default) decides by the `api-version` ([`supports_stream_usage`]);
    /// `Some(false)` never sends it, even when the caller asked.
    pub stream_usage: Option<bool>,
}

impl AzureOpenAiConfig {
    /// A configuration for a resource endpoint.
    pub fn new(endpoint: impl Into<String>, auth: AzureAuth) -> Self {
        AzureOpenAiConfig {
            endpoint: endpoint.into(),
            auth,
            api: AzureApi::Deployments,
            api_version: DEFAULT_API_VERSION.to_owned(),
            deployments: BTreeMap::new(),
            default_deployment: None,
            name: "azure".to_owned(),
            timeout: None,
            max_tokens_field: MaxTokensField::MaxTokens,
            clock: None,
            stream_usage: None,
        }
    }

    /// Uses the v1 API (`/openai/v1/...`, no deployment in the path, no `api-version`),
    /// with `max_completion_tokens` as the wire name of `max_tokens` (a later
    /// [`max_tokens_field`](Self::max_tokens_field) overrides it).
    #[must_use]
    pub fn v1(mut self) -> Self {
        self.api = AzureApi::V1;
        self.max_tokens_field = MaxTokensField::MaxCompletionTokens;
        self
    }

    /// Sets the `api-version`.
    #[must_use]
    pub fn api_version(mut self, v: impl Into<String>) -> Self {
        self.api_version = v.into();
        self
    }

    /// Maps a model name to a deployment.
    #[must_use]
    pub fn deployment(mut self, model: impl Into<String>, deployment: impl Into<String>) -> Self {
        self.deployments.insert(model.into(), deployment.into());
        self
    }

    /// Sets the deployment for unmapped models.
    #[must_use]
    pub fn default_deployment(mut self, deployment: impl Into<String>) -> Self {
        self.default_deployment = Some(deployment.into());
        self
    }

    /// Sets the provider name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets this provider's request timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the wire name of `max_tokens`.
    #[must_use]
    pub fn max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens_field = field;
        self
    }

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Overrides whether streamed chat requests send `stream_options.include_usage`
    /// (by default only for `api-version` 2024-09-01 and later). With `false` it is never
    /// sent and the token-count layer counts streamed output.
    #[must_use]
    pub fn stream_usage(mut self, on: bool) -> Self {
        self.stream_usage = Some(on);
        self
    }

    /// Whether streamed chat requests will send `stream_options.include_usage`.
    pub fn sends_stream_usage(&self) -> bool {
        self.stream_usage
            .unwrap_or_else(|| self.api == AzureApi::V1 || supports_stream_usage(&self.api_version))
    }
}

/// The Azure OpenAI provider.
#[derive(Debug, Clone)]
pub struct AzureOpenAi {
    engine: SharedEngine,
}

impl AzureOpenAi {
    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// `Config` for an invalid endpoint or key.
    pub fn new(config: AzureOpenAiConfig, http: HttpClient) -> Result<Self, Error> {
        let name = config.name.clone();
        Self::build(config, http).map_err(|e| e.with_provider(name))
    }

    fn build(config: AzureOpenAiConfig, http: HttpClient) -> Result<Self, Error> {
        let endpoint = base_url(&config.endpoint, "azure endpoint")?;
        let stream_usage = if config.sends_stream_usage() {
            StreamUsage::Always
        } else {
            StreamUsage::Never
        };
        let mut headers = HeaderMap::new();
        let mut token = None;
        match &config.auth {
            AzureAuth::ApiKey(k) => {
                let (n, v) = secret_header("api-key", "", k)?;
                headers.insert(n, v);
            }
            AzureAuth::BearerToken(t) => {
                headers.insert(AUTHORIZATION, t.header_value("Bearer ")?);
            }
            AzureAuth::Entra(source) => token = Some(source.clone()),
        }
        let common = Common::new(
            &config.name,
            http,
            config.clock,
            config.timeout,
            LimitHeaders::OpenAi,
            headers,
            config.auth.secrets(),
        );
        let urls = match config.api {
            AzureApi::Deployments => Urls::Azure(AzureUrls {
                endpoint,
                api_version: config.api_version,
                deployments: config.deployments,
                default_deployment: config.default_deployment,
            }),
            AzureApi::V1 => Urls::with_responses(&format!("{endpoint}/openai/v1"))?,
        };
        Ok(AzureOpenAi {
            engine: Arc::new(OpenAiEngine {
                common,
                token,
                urls,
                opts: WireOptions {
                    max_tokens_field: config.max_tokens_field,
                    stream_usage,
                    developer_as_system: false,
                    strict_openai: true,
                },
            }),
        })
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.engine.common.name
    }

    /// The deployment that serves `model` (in v1 mode, the model name itself).
    pub fn deployment_for<'a>(&'a self, model: &'a str) -> &'a str {
        match &self.engine.urls {
            Urls::Azure(a) => a.deployment(model),
            Urls::Base { .. } => model,
        }
    }

    /// Checks the credentials and the connection by listing the resource's models
    /// (`GET /openai/models`; spends no tokens).
    ///
    /// # Errors
    ///
    /// The mapped HTTP or transport error.
    pub async fn health(&self) -> Result<(), Error> {
        self.engine.health().await
    }
}

impl_provider_service!(AzureOpenAi);
