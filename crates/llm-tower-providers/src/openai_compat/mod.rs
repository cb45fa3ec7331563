//! OpenAI-compatible servers: Ollama, vLLM, llama.cpp server, LM Studio, and hosted
//! compatible APIs. A base URL, an optional key, extra headers; it reuses the OpenAI code.
//!
//! Such servers may omit usage: the response then has `usage: None` (and a stream has no
//! usage chunk), and the token-count layer counts it.
//!
//! ```no_run
//! # fn demo() -> Result<(), llm_tower_core::Error> {
//! use llm_tower_providers::http::HttpClient;
//! use llm_tower_providers::openai_compat::{OpenAiCompatible, OpenAiCompatibleConfig};
//!
//! let ollama = OpenAiCompatible::new(
//!     OpenAiCompatibleConfig::new("http://localhost:11434/v1").name("ollama"),
//!     HttpClient::new()?,
//! )?;
//! # let _ = ollama; Ok(()) }
//! ```
//!
//! # Errors
//!
//! As [`openai`](crate::openai).
//!
//! # Clone
//!
//! Clones share one configuration and the [`HttpClient`]'s connection pool.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use llm_tower_core::{Error, SharedClock};

use crate::common::{Common, LimitHeaders, base_url, plain_header, secret_header};
use crate::http::HttpClient;
use crate::openai::MaxTokensField;
use crate::openai::convert::{StreamUsage, WireOptions};
use crate::openai::engine::{OpenAiEngine, SharedEngine, Urls, impl_provider_service};
use crate::secret::Secret;

/// Configuration of an [`OpenAiCompatible`] provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenAiCompatibleConfig {
    /// Base URL including the version path, e.g. `http://localhost:11434/v1`.
    pub base_url: String,
    /// Optional key, sent as `Authorization: Bearer`.
    pub api_key: Option<Secret>,
    /// Extra headers (name, value), sent as they are.
    pub headers: Vec<(String, String)>,
    /// Extra secret headers (name, value), marked sensitive.
    pub secret_headers: Vec<(String, Secret)>,
    /// The provider's name (default `openai-compatible`).
    pub name: String,
    /// Overrides the client's request timeout for this provider.
    pub timeout: Option<Duration>,
    /// The wire name of `max_tokens` (default `max_tokens`, which these servers know).
    pub max_tokens_field: MaxTokensField,
    /// Ask for usage in streams with `stream_options.include_usage` (default `true`); when
    /// `false` it is sent only if the caller asked for it.
    pub stream_usage: bool,
    /// Send `developer` messages as `system` (default `true`: many chat templates lack it).
    pub developer_as_system: bool,
    /// The clock (default [`TokioClock`](llm_tower_core::TokioClock)).
    pub clock: Option<SharedClock>,
}

impl OpenAiCompatibleConfig {
    /// A configuration for a server at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        OpenAiCompatibleConfig {
            base_url: base_url.into(),
            api_key: None,
            headers: Vec::new(),
            secret_headers: Vec::new(),
            name: "openai-compatible".to_owned(),
            timeout: None,
            max_tokens_field: MaxTokensField::MaxTokens,
            stream_usage: true,
            developer_as_system: true,
            clock: None,
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<Secret>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a secret header (for example a gateway's own key header).
    #[must_use]
    pub fn secret_header(mut self, name: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.secret_headers.push((name.into(), value.into()));
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

    /// Whether to ask for usage in streams.
    #[must_use]
    pub fn stream_usage(mut self, on: bool) -> Self {
        self.stream_usage = on;
        self
    }

    /// Whether to send `developer` messages as `system`.
    #[must_use]
    pub fn developer_as_system(mut self, on: bool) -> Self {
        self.developer_as_system = on;
        self
    }

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }
}

/// A provider for any server that speaks OpenAI's chat-completions API.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    engine: SharedEngine,
}

impl OpenAiCompatible {
    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// `Config` for an invalid base URL or header.
    pub fn new(config: OpenAiCompatibleConfig, http: HttpClient) -> Result<Self, Error> {
        let name = config.name.clone();
        Self::build(config, http).map_err(|e| e.with_provider(name))
    }

    fn build(config: OpenAiCompatibleConfig, http: HttpClient) -> Result<Self, Error> {
        let base = base_url(&config.base_url, "openai-compatible base_url")?;
        let mut headers = HeaderMap::new();
        if let Some(k) = &config.api_key {
            headers.insert(AUTHORIZATION, k.header_value("Bearer ")?);
        }
        for (n, v) in &config.headers {
            let (n, v) = plain_header(n, v)?;
            headers.append(n, v);
        }
        for (n, s) in &config.secret_headers {
            let (n, v) = secret_header(n, "", s)?;
            headers.append(n, v);
        }
        let common = Common::new(
            &config.name,
            http,
            config.clock,
            config.timeout,
            LimitHeaders::OpenAi,
            headers,
            // Every secret the server could echo back: the key and the secret headers.
            config
                .api_key
                .into_iter()
                .chain(config.secret_headers.into_iter().map(|(_, s)| s)),
        );
        Ok(OpenAiCompatible {
            engine: Arc::new(OpenAiEngine {
                common,
                token: None,
                urls: Urls::base(&base)?,
                opts: WireOptions {
                    max_tokens_field: config.max_tokens_field,
                    stream_usage: if config.stream_usage {
                        StreamUsage::Always
                    } else {
                        StreamUsage::IfAsked
                    },
                    developer_as_system: config.developer_as_system,
                    strict_openai: false,
                },
            }),
        })
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.engine.common.name
    }

    /// Checks the server with `GET /models` (spends no tokens).
    ///
    /// # Errors
    ///
    /// The mapped HTTP or transport error.
    pub async fn health(&self) -> Result<(), Error> {
        self.engine.health().await
    }
}

impl_provider_service!(OpenAiCompatible);
