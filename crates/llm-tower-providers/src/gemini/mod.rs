//! Google's Gemini API (AI Studio, `generativelanguage.googleapis.com`) as a
//! `tower::Service<LlmRequest>`: OpenAI-shaped chat requests in, OpenAI-shaped responses
//! and chunks out. [`Vertex`](crate::vertex::Vertex) speaks the same wire format.
//!
//! - `POST {base}/v1beta/models/{model}:generateContent`, streams at
//!   `:streamGenerateContent?alt=sse`; the key goes in `x-goog-api-key`.
//! - System and developer messages -> `systemInstruction`; user and assistant messages ->
//!   `contents` with roles `user` and `model`; `tool` messages -> `functionResponse` parts
//!   (`{name, response: {content}}`, the name found from the matching tool call earlier in
//!   the conversation, else the message's `name`) of one user turn.
//! - Images: `data:` URLs -> `inlineData`; `https://` and `gs://` URLs -> `fileData` with
//!   the media type from the extension or `image_url.mime_type` (unknown: `InvalidRequest`).
//!   Files: `file_data` -> `inlineData`, `file_id` -> `fileData`. Audio -> `inlineData`.
//! - Tools -> `functionDeclarations` (JSON-schema keys Gemini refuses, such as
//!   `additionalProperties` and `$schema`, removed); `tool_choice` ->
//!   `toolConfig.functionCallingConfig` (`AUTO`/`ANY`/`NONE`, `allowedFunctionNames`).
//! - `generationConfig`: `temperature`, `top_p`, `max_tokens`, `stop`, `n`
//!   (`candidateCount`), `seed`, penalties, `extra["top_k"]`, `logprobs`/`top_logprobs`
//!   (`responseLogprobs`/`logprobs`; Gemini's `logprobsResult` comes back as the choice's
//!   `logprobs`), `response_format`
//!   (`responseMimeType` + `responseSchema`), thinking (`extra["thinking_config"]` as is, or
//!   `reasoning_effort` -> `thinkingBudget`: none 0, minimal 512, low 1024, medium 8192,
//!   high 24576, xhigh 32768, with `includeThoughts`); `extra["generation_config"]` is merged
//!   last. `extra["safety_settings"]`, `extra["cached_content"]` and `extra["labels"]` are
//!   sent as `safetySettings`, `cachedContent` and `labels`; other OpenAI fields are dropped.
//! - Responses: thought parts -> `reasoning_content`; `functionCall` parts -> tool calls
//!   (`call_{n}` ids); a part's `thoughtSignature` -> the tool call's
//!   `extra["thought_signature"]` (or the message's, for text), sent back on the part when
//!   the conversation continues. `finishReason`: `STOP` -> `stop` (`tool_calls` after
//!   function calls), `MAX_TOKENS` -> `length`, safety reasons -> `content_filter`, others
//!   lowercased; the raw value in `choice.extra["gemini_finish_reason"]`.
//! - Usage: prompt = `promptTokenCount` (+ tool-use prompt tokens), cached =
//!   `cachedContentTokenCount`, completion = `candidatesTokenCount + thoughtsTokenCount`,
//!   reasoning = `thoughtsTokenCount`.
//! - Embeddings: `:batchEmbedContents` (`dimensions` -> `outputDimensionality`,
//!   `extra["task_type"]` -> `taskType`).
//!
//! ```no_run
//! # fn demo() -> Result<(), llm_tower_core::Error> {
//! use llm_tower_providers::gemini::{Gemini, GeminiConfig};
//! use llm_tower_providers::http::HttpClient;
//!
//! let gemini = Gemini::new(GeminiConfig::new("AIza..."), HttpClient::new()?)?;
//! # let _ = gemini; Ok(()) }
//! ```
//!
//! # Errors
//!
//! Google's `{"error": {"code", "message", "status", "details"}}`: `RESOURCE_EXHAUSTED`/429
//! -> `RateLimited` (retry-after from a `RetryInfo` detail), `INVALID_ARGUMENT` ->
//! `InvalidRequest` (too many input tokens -> `ContextLengthExceeded`, an invalid API key ->
//! `Unauthorized`), 401/403 -> `Unauthorized`, `UNAVAILABLE`/503 -> `Overloaded`, other 5xx
//! -> `Provider`. A blocked prompt -> `InvalidRequest` with code `content_filter`. A stream
//! that ends before every candidate finished ends with a `Transport` error.
//!
//! # Clone
//!
//! Clones share one configuration and the [`HttpClient`]'s connection pool.

pub(crate) mod convert;
pub(crate) mod stream;
pub(crate) mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use llm_tower_core::{
    ChatRequest, EmbeddingsRequest, Error, LlmRequest, LlmResponse, RequestBody, ResponseBody,
    SharedClock,
};

use crate::common::{Common, LimitHeaders, base_url, join, secret_header};
use crate::error_map;
use crate::http::stream::{SseChatStream, first_token, prepend};
use crate::http::{Deadline, HttpClient};
use crate::secret::Secret;
pub use convert::THOUGHT_SIGNATURE;
use stream::GeminiStreamParser;

/// The Gemini API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// Configuration of a [`Gemini`] provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GeminiConfig {
    /// The API key, sent as `x-goog-api-key`.
    pub api_key: Secret,
    /// Base URL without `/v1beta` (default [`DEFAULT_BASE_URL`]).
    pub base_url: String,
    /// The provider's name (default `gemini`).
    pub name: String,
    /// Overrides the client's request timeout for this provider.
    pub timeout: Option<Duration>,
    /// The clock (default [`TokioClock`](llm_tower_core::TokioClock)).
    pub clock: Option<SharedClock>,
}

impl GeminiConfig {
    /// A configuration with an API key and defaults for everything else.
    pub fn new(api_key: impl Into<Secret>) -> Self {
        GeminiConfig {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            name: "gemini".to_owned(),
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
    base: String,
    models: Uri,
}

/// The Gemini (AI Studio) provider.
#[derive(Debug, Clone)]
pub struct Gemini {
    engine: Arc<Engine>,
}

impl Gemini {
    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// `Config` for an invalid base URL or key.
    pub fn new(config: GeminiConfig, http: HttpClient) -> Result<Self, Error> {
        let name = config.name.clone();
        Self::build(config, http).map_err(|e| e.with_provider(name))
    }

    fn build(config: GeminiConfig, http: HttpClient) -> Result<Self, Error> {
        let base = base_url(&config.base_url, "gemini base_url")?;
        let mut headers = HeaderMap::new();
        let (n, v) = secret_header("x-goog-api-key", "", &config.api_key)?;
        headers.insert(n, v);
        let common = Common::new(
            &config.name,
            http,
            config.clock,
            config.timeout,
            LimitHeaders::None,
            headers,
            Some(config.api_key),
        );
        Ok(Gemini {
            engine: Arc::new(Engine {
                common,
                models: join(&base, "/v1beta/models")?,
                base,
            }),
        })
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.engine.common.name
    }

    /// Checks the key and the connection with `GET /v1beta/models` (spends no tokens).
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
            RequestBody::Chat(c) => match convert::model_path(&c.model) {
                Ok(model) => match request_body(c) {
                    Ok(body) => {
                        let prefix = format!("{}/v1beta/models/{model}", self.base);
                        generate(&self.common, &prefix, body, None, c, t0, caller).await
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            RequestBody::Completion(_) => Err(Error::invalid_request(
                "Gemini has no legacy completions; send a chat request",
            )),
            RequestBody::Embeddings(e) => self.embeddings(e, t0, caller).await,
        };
        result.map_err(|e| e.with_provider(self.common.name.clone()))
    }

    async fn embeddings(
        &self,
        e: &EmbeddingsRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let model = convert::model_path(&e.model)?;
        let base64_out = match e.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(Error::invalid_request(format!(
                    "encoding_format: unknown value {:?} (float, base64)",
                    other.chars().take(40).collect::<String>()
                ))
                .with_param("encoding_format"));
            }
        };
        let deadline = self.common.deadline(t0, caller);
        let body = serde_json::to_vec(&convert::embed_request(e, model)?)
            .map_err(|e| Error::invalid_request(format!("request not serializable: {e}")))?;
        let uri = join(
            &self.base,
            &format!("/v1beta/models/{model}:batchEmbedContents"),
        )?;
        let req = self.common.request(Method::POST, uri, Some(body), false)?;
        let ok = self.common.execute(req, &deadline).await?;
        let limits = ok.limits;
        let w: wire::BatchEmbedResponse =
            self.common.read_json(ok, &deadline, "embeddings").await?;
        let resp = convert::embed_response(w, model, base64_out);
        let mut out = LlmResponse::new(ResponseBody::Embeddings(resp));
        out.meta = self.common.meta(model.to_owned(), &e.model, t0, limits);
        Ok(out)
    }
}

/// The JSON body of a chat request in Gemini's wire format.
pub(crate) fn request_body(chat: &ChatRequest) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&convert::generate_request(chat)?)
        .map_err(|e| Error::invalid_request(format!("request not serializable: {e}")))
}

/// Sends a chat request's [`request_body`] to `{prefix}:generateContent` (or
/// `:streamGenerateContent?alt=sse`), with an extra auth header when given (Vertex).
pub(crate) async fn generate(
    common: &Common,
    prefix: &str,
    body: Vec<u8>,
    auth: Option<(HeaderName, HeaderValue)>,
    chat: &ChatRequest,
    t0: Instant,
    caller: Option<Instant>,
) -> Result<LlmResponse, Error> {
    let clock = &common.clock;
    let deadline = common.deadline(t0, caller);
    let uri: Uri = if chat.stream {
        format!("{prefix}:streamGenerateContent?alt=sse")
    } else {
        format!("{prefix}:generateContent")
    }
    .parse()
    .map_err(|_| Error::invalid_request("the model name does not make a valid URL"))?;
    let mut req = common.request(Method::POST, uri, Some(body), chat.stream)?;
    if let Some((n, v)) = auth {
        req.headers_mut().insert(n, v);
    }
    let ok = common.execute(req, &deadline).await?;
    let limits = ok.limits;
    if !chat.stream {
        let w: wire::GenerateContentResponse = common.read_json(ok, &deadline, "response").await?;
        if let Some(err) = &w.error {
            let body = error_map::ErrorBody::from_value(&serde_json::json!({ "error": err }));
            return Err(error_map::stream_error(&body, Some(&common.secret)));
        }
        let (resp, usage) = convert::generate_response(w, clock.unix_secs(), &chat.model)?;
        let model = resp.model.clone();
        let mut out = LlmResponse::new(ResponseBody::Chat(resp));
        out.usage = usage;
        out.meta = common.meta(model, &chat.model, t0, limits);
        return Ok(out);
    }
    let latency = clock.now().saturating_duration_since(t0);
    let parser =
        GeminiStreamParser::new(clock.unix_secs(), &chat.model, Some(common.secret.clone()));
    let stream = SseChatStream::new(
        ok.body,
        parser,
        clock.clone(),
        common.name.clone(),
        common.http.config().stream_idle_timeout,
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
    out.meta = common.meta(model, &chat.model, t0, limits);
    out.meta.latency = latency;
    out.meta.time_to_first_token = first_at.map(|t| t.saturating_duration_since(t0));
    Ok(out)
}

impl tower::Service<LlmRequest> for Gemini {
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
