//! OpenAI: chat completions (tools, images, streaming with usage), legacy completions and
//! embeddings, as a `tower::Service<LlmRequest>`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), llm_tower_core::Error> {
//! use llm_tower_core::{ChatRequest, LlmRequest, Message};
//! use llm_tower_providers::http::HttpClient;
//! use llm_tower_providers::openai::{OpenAi, OpenAiConfig};
//! use tower::ServiceExt;
//!
//! let openai = OpenAi::new(
//!     OpenAiConfig::new("sk-...").organization("org-123"),
//!     HttpClient::new()?,
//! )?;
//! let req = LlmRequest::chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("Hi!")]));
//! let resp = openai.oneshot(req).await?;
//! println!("{:?} {:?}", resp.as_chat().map(|c| c.text()), resp.usage);
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! HTTP errors map to [`ErrorKind`](llm_tower_core::ErrorKind)s (401/403 `Unauthorized`,
//! 429 `RateLimited` with the provider's retry-after, `insufficient_quota` 429 a
//! non-retryable `Provider{429}`, context-length 400s `ContextLengthExceeded`, 5xx
//! `Provider`), with the `x-ratelimit-*` state attached. A stream that ends without
//! `[DONE]` ends with a `Transport` error.
//!
//! # Clone
//!
//! Clones share one configuration and the [`HttpClient`]'s connection pool.

pub(crate) mod convert;
pub(crate) mod engine;
pub(crate) mod responses;
pub(crate) mod stream;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use llm_tower_core::{Error, SharedClock};

use crate::common::{Common, LimitHeaders, base_url, plain_header};
use crate::http::HttpClient;
use crate::secret::Secret;
use convert::{StreamUsage, WireOptions};
use engine::{OpenAiEngine, SharedEngine, Urls, impl_provider_service};

/// OpenAI's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// Which field carries the request's `max_tokens` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_tokens` (older models, Azure's older API versions, most compatible servers).
    MaxTokens,
    /// `max_completion_tokens` (OpenAI's current name; required by reasoning models).
    #[default]
    MaxCompletionTokens,
}

/// Configuration of an [`OpenAi`] provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenAiConfig {
    /// The API key, sent as `Authorization: Bearer`.
    pub api_key: Secret,
    /// Base URL (default [`DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// `OpenAI-Organization` header.
    pub organization: Option<String>,
    /// `OpenAI-Project` header.
    pub project: Option<String>,
    /// The provider's name in responses, errors and metrics (default `openai`).
    pub name: String,
    /// Overrides the client's request timeout for this provider.
    pub timeout: Option<Duration>,
    /// The wire name of `max_tokens` (default `max_completion_tokens`).
    pub max_tokens_field: MaxTokensField,
    /// The clock (default [`TokioClock`](llm_tower_core::TokioClock)).
    pub clock: Option<SharedClock>,
}

impl OpenAiConfig {
    /// A configuration with an API key and defaults for everything else.
    pub fn new(api_key: impl Into<Secret>) -> Self {
        OpenAiConfig {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            organization: None,
            project: None,
            name: "openai".to_owned(),
            timeout: None,
            max_tokens_field: MaxTokensField::MaxCompletionTokens,
            clock: None,
        }
    }

    /// Sets the base URL (for a proxy or a test server).
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sets the `OpenAI-Organization` header.
    #[must_use]
    pub fn organization(mut self, org: impl Into<String>) -> Self {
        self.organization = Some(org.into());
        self
    }

    /// Sets the `OpenAI-Project` header.
    #[must_use]
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
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
}

/// The OpenAI provider: a `tower::Service<LlmRequest, Response = LlmResponse, Error = Error>`.
#[derive(Debug, Clone)]
pub struct OpenAi {
    engine: SharedEngine,
}

impl OpenAi {
    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// `Config` for an invalid base URL or header value.
    pub fn new(config: OpenAiConfig, http: HttpClient) -> Result<Self, Error> {
        let name = config.name.clone();
        Self::build(config, http).map_err(|e| e.with_provider(name))
    }

    fn build(config: OpenAiConfig, http: HttpClient) -> Result<Self, Error> {
        let base = base_url(&config.base_url, "openai base_url")?;
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, config.api_key.header_value("Bearer ")?);
        if let Some(org) = &config.organization {
            let (k, v) = plain_header("openai-organization", org)?;
            headers.insert(k, v);
        }
        if let Some(p) = &config.project {
            let (k, v) = plain_header("openai-project", p)?;
            headers.insert(k, v);
        }
        let common = Common::new(
            &config.name,
            http,
            config.clock,
            config.timeout,
            LimitHeaders::OpenAi,
            headers,
            [config.api_key],
        );
        Ok(OpenAi {
            engine: Arc::new(OpenAiEngine {
                common,
                token: None,
                urls: Urls::with_responses(&base)?,
                opts: WireOptions {
                    max_tokens_field: config.max_tokens_field,
                    stream_usage: StreamUsage::Always,
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

    /// Checks the key and the connection with `GET /models` (spends no tokens).
    ///
    /// # Errors
    ///
    /// The mapped HTTP or transport error.
    pub async fn health(&self) -> Result<(), Error> {
        self.engine.health().await
    }
}

impl_provider_service!(OpenAi);
