//! Anthropic's Messages API as a `tower::Service<LlmRequest>`: OpenAI-shaped chat requests
//! in, OpenAI-shaped responses and chunks out.
//!
//! - System and developer messages become the top-level `system` prompt.
//! - Images: `data:` URLs become base64 sources, `https://` URLs become url sources.
//! - Tool calls become `tool_use` blocks; `tool` messages become `tool_result` blocks of a
//!   user turn (consecutive ones merged into one turn).
//! - `max_tokens` is required by Anthropic and defaults to [`AnthropicConfig::default_max_tokens`].
//! - `stop_reason` maps to `finish_reason`: `end_turn`/`stop_sequence` -> `stop`,
//!   `max_tokens` -> `length`, `tool_use` -> `tool_calls`.
//! - Usage: prompt tokens = input + cache reads + cache writes; cached = cache reads.
//! - A `tool` message must carry `tool_call_id` (it becomes the `tool_use_id` Anthropic
//!   requires); without one the request fails with `InvalidRequest`
//!   (`messages[3].tool_call_id: required for tool messages`) before anything is sent.
//! - `user` becomes `metadata.user_id`; `n > 1` is an `InvalidRequest` (one answer per call).
//! - OpenAI-only request fields that Anthropic rejects (`logprobs`, `logit_bias`, ...) are
//!   dropped, and `parallel_tool_calls: false` becomes `disable_parallel_tool_use`; every
//!   other `extra` field (e.g. `top_k`, `thinking`) passes through.
//!
//! ## OpenAI fields that are not sent
//!
//! These typed [`ChatRequest`] fields have no counterpart in the Messages API, so they are
//! left out of the request (silently: a request that works against OpenAI still works
//! here, it just does not get that behaviour):
//!
//! | field | why |
//! |---|---|
//! | `response_format` | no JSON mode or schema parameter; ask for JSON in the prompt, or force a tool call with `tool_choice` and read its arguments |
//! | `seed` | sampling cannot be seeded; answers are not reproducible |
//! | `presence_penalty`, `frequency_penalty` | no repetition penalties; `temperature`, `top_p` and `top_k` (in `extra`) are the sampling controls |
//! | `stream_options` | not needed: the stream always reports usage, and a usage chunk is emitted at the end |
//! | `logprobs`, `top_logprobs`, `logit_bias`, `store`, `modalities`, `prediction` (in `extra`) | OpenAI-only features; Anthropic rejects unknown fields, so they are removed |
//!
//! ```no_run
//! # fn demo() -> Result<(), llm_tower_core::Error> {
//! use llm_tower_providers::anthropic::{Anthropic, AnthropicConfig};
//! use llm_tower_providers::http::HttpClient;
//!
//! let claude = Anthropic::new(AnthropicConfig::new("sk-ant-..."), HttpClient::new()?)?;
//! # let _ = claude; Ok(()) }
//! ```
//!
//! # Errors
//!
//! As [`openai`](crate::openai), plus 529 and `overloaded_error` -> `Overloaded`, and
//! "prompt is too long" and "input length and `max_tokens` exceed context limit" ->
//! `ContextLengthExceeded`. `anthropic-ratelimit-*` headers are
//! attached. A stream that ends without `message_stop` ends with a `Transport` error.
//!
//! # Clone
//!
//! Clones share one configuration and the [`HttpClient`]'s connection pool.

pub(crate) mod convert;
pub(crate) mod stream;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Uri};
use llm_tower_core::{
    ChatRequest, Error, LlmRequest, LlmResponse, RequestBody, ResponseBody, SharedClock,
};

use crate::common::{Common, LimitHeaders, base_url, join, plain_header, secret_header};
use crate::http::stream::{SseChatStream, first_token, prepend};
use crate::http::{Deadline, HttpClient};
use crate::secret::Secret;
use stream::AnthropicStreamParser;

/// Anthropic's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` header value.
pub const API_VERSION: &str = "2023-06-01";

/// Configuration of an [`Anthropic`] provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AnthropicConfig {
    /// The API key, sent as `x-api-key`.
    pub api_key: Secret,
    /// Base URL without `/v1` (default [`DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// `anthropic-version` (default [`API_VERSION`]).
    pub version: String,
    /// `anthropic-beta` features, joined with commas.
    pub beta: Vec<String>,
    /// `max_tokens` for requests that set none (Anthropic requires it; default 4096).
    pub default_max_tokens: u32,
    /// The provider's name (default `anthropic`).
    pub name: String,
    /// Overrides the client's request timeout for this provider.
    pub timeout: Option<Duration>,
    /// The clock (default [`TokioClock`](llm_tower_core::TokioClock)).
    pub clock: Option<SharedClock>,
}

impl AnthropicConfig {
    /// A configuration with an API key and defaults for everything else.
    pub fn new(api_key: impl Into<Secret>) -> Self {
        AnthropicConfig {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            version: API_VERSION.to_owned(),
            beta: Vec::new(),
            default_max_tokens: 4096,
            name: "anthropic".to_owned(),
            timeout: None,
            clock: None,
        }
    }

    /// Sets the base URL.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sets `anthropic-version`.
    #[must_use]
    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.version = v.into();
        self
    }

    /// Adds an `anthropic-beta` feature.
    #[must_use]
    pub fn beta(mut self, feature: impl Into<String>) -> Self {
        self.beta.push(feature.into());
        self
    }

    /// Sets the default `max_tokens`.
    #[must_use]
    pub fn default_max_tokens(mut self, n: u32) -> Self {
        self.default_max_tokens = n;
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

    /// Sets the clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }
}

#[derive(Debug)]
struct Engine {
    common: Common,
    messages: Uri,
    models: Uri,
    default_max_tokens: u32,
}

/// The Anthropic provider.
#[derive(Debug, Clone)]
pub struct Anthropic {
    engine: Arc<Engine>,
}

impl Anthropic {
    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// `Config` for an invalid base URL or header value.
    pub fn new(config: AnthropicConfig, http: HttpClient) -> Result<Self, Error> {
        let name = config.name.clone();
        Self::build(config, http).map_err(|e| e.with_provider(name))
    }

    fn build(config: AnthropicConfig, http: HttpClient) -> Result<Self, Error> {
        let base = base_url(&config.base_url, "anthropic base_url")?;
        let mut headers = HeaderMap::new();
        let (n, v) = secret_header("x-api-key", "", &config.api_key)?;
        headers.insert(n, v);
        let (n, v) = plain_header("anthropic-version", &config.version)?;
        headers.insert(n, v);
        if !config.beta.is_empty() {
            let (n, v) = plain_header("anthropic-beta", &config.beta.join(","))?;
            headers.insert(n, v);
        }
        let common = Common::new(
            &config.name,
            http,
            config.clock,
            config.timeout,
            LimitHeaders::Anthropic,
            headers,
            Some(config.api_key),
        );
        Ok(Anthropic {
            engine: Arc::new(Engine {
                common,
                messages: join(&base, "/v1/messages")?,
                models: join(&base, "/v1/models")?,
                default_max_tokens: config.default_max_tokens,
            }),
        })
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.engine.common.name
    }

    /// Checks the key and the connection with `GET /v1/models` (spends no tokens).
    ///
    /// # Errors
    ///
    /// The mapped HTTP or transport error.
    pub async fn health(&self) -> Result<(), Error> {
        self.engine
            .common
            .get_ok(self.engine.models.clone())
            .await
            .map_err(|e| e.with_provider(self.engine.common.name.clone()))
    }
}

impl Engine {
    async fn call(&self, req: LlmRequest) -> Result<LlmResponse, Error> {
        let t0 = self.common.clock.now();
        let caller = req.ctx.deadline;
        let result = match &req.body {
            RequestBody::Chat(c) => self.chat(c, t0, caller).await,
            RequestBody::Completion(_) => Err(Error::invalid_request(
                "Anthropic has no legacy completions; send a chat request",
            )),
            RequestBody::Embeddings(_) => {
                Err(Error::invalid_request("Anthropic has no embeddings API"))
            }
        };
        result.map_err(|e| e.with_provider(self.common.name.clone()))
    }

    async fn chat(
        &self,
        chat: &ChatRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let clock = &self.common.clock;
        let deadline = self.common.deadline(t0, caller);
        let body = convert::messages_request(chat, self.default_max_tokens)?;
        let req =
            self.common
                .request(Method::POST, self.messages.clone(), Some(body), chat.stream)?;
        let ok = self.common.execute(req, &deadline).await?;
        let limits = ok.limits;
        if !chat.stream {
            let w: wire::MessagesResponse = self.common.read_json(ok, &deadline, "message").await?;
            let (resp, usage) = convert::messages_response(w, clock.unix_secs());
            let model = resp.model.clone();
            let mut out = LlmResponse::new(ResponseBody::Chat(resp));
            out.usage = usage;
            out.meta = self.common.meta(model, &chat.model, t0, limits);
            return Ok(out);
        }
        let latency = clock.now().saturating_duration_since(t0);
        let parser =
            AnthropicStreamParser::new(clock.unix_secs(), Some(self.common.secret.clone()));
        let stream = SseChatStream::new(
            ok.body,
            parser,
            clock.clone(),
            self.common.name.clone(),
            self.common.http.config().stream_idle_timeout,
            caller.map(Deadline::caller),
        );
        let (buffered, first_at, rest) = first_token(stream, &deadline, clock).await?;
        let model = buffered
            .iter()
            .map(|c| c.model.as_str())
            .find(|m| !m.is_empty())
            .unwrap_or_default()
            .to_owned();
        let mut out = LlmResponse::new(ResponseBody::Stream(prepend(buffered, rest)));
        out.meta = self.common.meta(model, &chat.model, t0, limits);
        out.meta.latency = latency;
        out.meta.time_to_first_token = first_at.map(|t| t.saturating_duration_since(t0));
        Ok(out)
    }
}

impl tower::Service<LlmRequest> for Anthropic {
    type Response = LlmResponse;
    type Error = Error;
    type Future = futures_util::future::BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let engine = Arc::clone(&self.engine);
        Box::pin(async move { engine.call(req).await })
    }
}
