//! Anthropic's Messages API as a `tower::Service<LlmRequest>`: OpenAI-shaped chat requests
//! in, OpenAI-shaped responses and chunks out.
//!
//! - System and developer messages become the top-level `system` prompt (an array of
//!   text blocks when any carries `cache_control`, else one string).
//! - Images: `data:` URLs become base64 sources, `https://` URLs become url sources;
//!   `file` parts become `document` blocks (PDF, text, or an uploaded `file_id`); parts of
//!   Anthropic's own block types (`document`, `search_result`, ...) pass through; audio is
//!   refused.
//! - Tool calls become `tool_use` blocks; `tool` messages become `tool_result` blocks of a
//!   user turn (consecutive ones merged into one turn). Anthropic's own tools
//!   (`web_search_20250305`, `bash_20250124`, ...) pass through.
//! - Extended thinking: an assistant message's `thinking_blocks` are sent back first,
//!   unchanged (signatures included); `extra["thinking"]` is sent as `thinking`, and
//!   `reasoning_effort` becomes a thinking budget. Responses fill `thinking_blocks` and
//!   `reasoning_content`; streams send the thinking text as `reasoning_content` and each
//!   whole block (with its signature) when it completes.
//! - Prompt caching: `cache_control` in the `extra` of a system message or part, a
//!   message, a content part or a tool is sent on the matching block or tool.
//! - `max_tokens` is required by Anthropic and defaults to [`AnthropicConfig::default_max_tokens`]
//!   (plus the thinking budget when thinking is on and `max_tokens` is not set).
//! - `stop_reason` maps to `finish_reason`: `end_turn`/`stop_sequence` -> `stop`,
//!   `max_tokens` -> `length`, `tool_use` -> `tool_calls`, `refusal` -> `content_filter`,
//!   `pause_turn` kept; the raw value is in `choice.extra["anthropic_stop_reason"]`, and
//!   `stop_sequence`, `container` and unknown fields in the response's `extra`.
//! - Usage: prompt tokens = input + cache reads + cache writes; cached = cache reads;
//!   cache writes split into 5-minute and 1-hour ones.
//! - A `tool` message must carry `tool_call_id` (it becomes the `tool_use_id` Anthropic
//!   requires); without one the request fails with `InvalidRequest`
//!   (`messages[3].tool_call_id: required for tool messages`) before anything is sent.
//! - `anthropic-beta`: the configured features, plus the request's
//!   `extra["anthropic_beta"]` (strings, not sent in the body), without duplicates.
//!
//! ## OpenAI fields
//!
//! Anthropic rejects fields it does not know; OpenAI's are mapped or dropped:
//!
//! | OpenAI field | sent to Anthropic as |
//! |---|---|
//! | `reasoning_effort` | `thinking: {type: enabled, budget_tokens}`: `minimal`/`low` 1024, `medium` 4096, `high` 16384, `xhigh` 32768 (`none`: no thinking); `max_tokens` is made larger than the budget |
//! | `response_format` | `json_schema` -> `output_config.format`; `json_object` -> an instruction in `system`; `text` -> nothing |
//! | `service_tier` | `auto` -> `auto` (`standard_only` kept); OpenAI's other tiers dropped |
//! | `user` (or `metadata.user_id`, `safety_identifier`) | `metadata.user_id`; OpenAI's other `metadata` keys dropped |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use` |
//! | `n > 1` | `InvalidRequest` |
//! | `seed`, `presence_penalty`, `frequency_penalty`, `logit_bias`, `logprobs`, `top_logprobs`, `stream_options`, `verbosity`, `prompt_cache_key`, `prompt_cache_retention`, `store`, `modalities`, `audio`, `prediction`, `web_search_options` | dropped (no counterpart) |
//!
//! With thinking on, `temperature` and `top_k` are not sent, nor `top_p` below 0.95
//! (Anthropic refuses them). Every other `extra` field (e.g. `top_k`, `container`,
//! `mcp_servers`) passes through unchanged.
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
use crate::http::HttpClient;
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
    count_tokens: Uri,
    models: Uri,
    default_max_tokens: u32,
    /// Configured `anthropic-beta` features (deduplicated).
    beta: Vec<String>,
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
        // Checked here so a bad configured beta fails at build time, not per request.
        let beta = convert::merge_betas(&config.beta, &[]);
        if !beta.is_empty() {
            plain_header("anthropic-beta", &beta.join(","))?;
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
                count_tokens: join(&base, "/v1/messages/count_tokens")?,
                models: join(&base, "/v1/models")?,
                default_max_tokens: config.default_max_tokens,
                beta,
            }),
        })
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.engine.common.name
    }

    /// Counts the input tokens of `chat` with Anthropic's own
    /// `POST /v1/messages/count_tokens` (free; rate-limited apart from messages): the
    /// system prompt, messages, tools, tool choice and thinking settings as a Messages
    /// request would send them, with the client's `anthropic-version`/`anthropic-beta`.
    ///
    /// # Errors
    ///
    /// The mapped HTTP or transport error, or an invalid request.
    pub async fn count_tokens(
        &self,
        chat: &ChatRequest,
        client: Option<&llm_tower_core::ClientHeaders>,
    ) -> Result<u64, Error> {
        self.engine
            .count_tokens(chat, client)
            .await
            .map_err(|e| e.with_provider(self.engine.common.name.clone()))
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
        // Only the chat translation of a Responses API request can go here.
        llm_tower_core::ResponsesBody::check_translatable(&req)
            .map_err(|e| e.with_provider(self.common.name.clone()))?;
        let result = match &req.body {
            RequestBody::Chat(c) => {
                let client = req.extensions.get::<llm_tower_core::ClientHeaders>();
                let native = req
                    .extensions
                    .get::<llm_tower_core::AnthropicMessagesClient>()
                    .is_some();
                self.chat(c, t0, caller, client, native).await
            }
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
        client: Option<&llm_tower_core::ClientHeaders>,
        native: bool,
    ) -> Result<LlmResponse, Error> {
        let clock = &self.common.clock;
        let deadline = self.common.deadline(t0, caller);
        let wire = convert::messages_request(chat, self.default_max_tokens)?;
        let mut req = self.common.request(
            Method::POST,
            self.messages.clone(),
            Some(wire.body),
            chat.stream,
        )?;
        self.version_and_betas(&mut req, &wire.betas, client)?;
        let ok = self.common.execute(req, &deadline).await?;
        let limits = ok.limits;
        if !chat.stream {
            let (w, raw) = if native {
                let v: serde_json::Value = self.common.read_json(ok, &deadline, "message").await?;
                let w = <wire::MessagesResponse as serde::Deserialize>::deserialize(&v)
                    .map_err(|e| crate::error_map::invalid_body("message", &e))?;
                (w, Some(v))
            } else {
                (self.common.read_json(ok, &deadline, "message").await?, None)
            };
            let (mut resp, usage) = convert::messages_response(w, clock.unix_secs());
            resp.native = raw.map(Arc::new);
            let model = resp.model.clone();
            let mut out = LlmResponse::new(ResponseBody::Chat(resp));
            out.usage = usage;
            out.meta = self.common.meta(model, &chat.model, t0, limits);
            return Ok(out);
        }
        let mut parser =
            AnthropicStreamParser::new(clock.unix_secs(), Some(self.common.secret.clone()));
        if native {
            parser = parser.native();
        }
        self.common
            .sse_answer(ok, parser, t0, &chat.model, &deadline, caller)
            .await
    }

    async fn count_tokens(
        &self,
        chat: &ChatRequest,
        client: Option<&llm_tower_core::ClientHeaders>,
    ) -> Result<u64, Error> {
        /// What `count_tokens` takes of a Messages request.
        const FIELDS: [&str; 7] = [
            "model",
            "messages",
            "system",
            "tools",
            "tool_choice",
            "thinking",
            "mcp_servers",
        ];
        let deadline = self.common.deadline(self.common.clock.now(), None);
        let wire = convert::messages_request(chat, self.default_max_tokens)?;
        let mut body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&wire.body)
                .map_err(|e| Error::internal(format!("request body: {e}")))?;
        body.retain(|k, _| FIELDS.contains(&k.as_str()));
        let body =
            serde_json::to_vec(&body).map_err(|e| Error::internal(format!("request body: {e}")))?;
        let mut req =
            self.common
                .request(Method::POST, self.count_tokens.clone(), Some(body), false)?;
        self.version_and_betas(&mut req, &wire.betas, client)?;
        let ok = self.common.execute(req, &deadline).await?;
        let v: serde_json::Value = self.common.read_json(ok, &deadline, "token count").await?;
        v.get("input_tokens")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| {
                Error::new(
                    llm_tower_core::ErrorKind::Transport,
                    "invalid token count from provider: no `input_tokens`",
                )
            })
    }

    /// The client's `anthropic-version`, and the configured features, the request body's
    /// and those the client sent in its own `anthropic-beta` headers (Claude Code, the
    /// Anthropic SDKs through the gateway).
    fn version_and_betas(
        &self,
        req: &mut http::Request<http_body_util::Full<bytes::Bytes>>,
        betas: &[String],
        client: Option<&llm_tower_core::ClientHeaders>,
    ) -> Result<(), Error> {
        let mut asked = betas.to_vec();
        if let Some(c) = client {
            asked.extend(c.anthropic_beta.iter().cloned());
        }
        let beta = convert::merge_betas(&self.beta, &asked);
        if let Some(v) = client.and_then(|c| c.anthropic_version.as_deref()) {
            let (n, v) = plain_header("anthropic-version", v).map_err(|e| {
                Error::invalid_request(e.message().to_owned()).with_param("anthropic-version")
            })?;
            req.headers_mut().insert(n, v);
        }
        if !beta.is_empty() {
            let (n, v) = plain_header("anthropic-beta", &beta.join(",")).map_err(|e| {
                Error::invalid_request(e.message().to_owned()).with_param("anthropic_beta")
            })?;
            req.headers_mut().insert(n, v);
        }
        Ok(())
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
