//! AWS Bedrock as a `tower::Service<LlmRequest>`: chat through the Converse and
//! ConverseStream APIs, embeddings through InvokeModel (Titan and Cohere), every request
//! signed with SigV4 (service `bedrock`).
//!
//! - `POST {base}/model/{modelId}/converse` and `.../converse-stream`, where `base` is
//!   `https://bedrock-runtime.{region}.amazonaws.com` unless configured, and the model id
//!   (`anthropic.claude-sonnet-4-20250514-v1:0`, an inference profile such as
//!   `us.anthropic...`, or an ARN) is percent-encoded in the path.
//! - System and developer messages -> `system: [{text}]`; `cache_control` in the `extra`
//!   of a message, a part or a tool adds a `cachePoint` after it.
//! - Parts: text -> `{text}`; `data:` image URLs -> `{image: {format, source: {bytes}}}`
//!   (links are refused: Converse takes bytes); `file` parts -> `{document: {format, name,
//!   source: {bytes}}}`; raw parts (`ContentPart::Other`) pass through as Converse blocks;
//!   audio is refused.
//! - Assistant `thinking_blocks` go back first as `reasoningContent` (signatures
//!   included); tool calls -> `toolUse`; `tool` messages -> `toolResult` blocks of a user
//!   turn (`{json}` for a JSON object or array, else `{text}`; `extra["status"]` sent as
//!   `status`). Consecutive turns of one role are merged.
//! - `max_tokens`, `temperature`, `top_p`, `stop` -> `inferenceConfig`; tools ->
//!   `toolConfig.tools[].toolSpec`; `tool_choice` `auto`/`required`/named ->
//!   `{auto:{}}`/`{any:{}}`/`{tool:{name}}` (`none`: no choice sent, the tools stay).
//! - `extra["thinking"]`, or `reasoning_effort` (a Claude thinking budget as in
//!   [`anthropic`](crate::anthropic); other models get `reasoning_effort` as is), and
//!   `top_k` go to `additionalModelRequestFields`, merged into the request's own
//!   `extra["additionalModelRequestFields"]`. `guardrailConfig`, `performanceConfig`,
//!   `promptVariables`, `requestMetadata`, `additionalModelResponseFieldPaths` and
//!   `serviceTier` in `extra` pass through; other OpenAI fields (`seed`, penalties,
//!   `user`, ...) are dropped, as Converse refuses unknown fields.
//! - `response_format` `json_schema` -> a tool named after the schema (characters outside
//!   `[a-zA-Z0-9_-]` become `_`) with the schema as its `inputSchema`, forced with
//!   `toolChoice: {tool: {name}}` (next to the caller's own tools: `{any: {}}` unless the
//!   caller chose); the model's call of that tool comes back as the assistant's text
//!   (the input as a JSON string) with `finish_reason` `stop`, streamed or not.
//!   `json_object` (no schema to force) is refused with a 400 `InvalidRequest` naming
//!   `response_format`; `text` is the default.
//! - `stopReason`: `end_turn`/`stop_sequence` -> `stop`, `max_tokens` -> `length`,
//!   `tool_use` -> `tool_calls`, `guardrail_intervened`/`content_filtered` ->
//!   `content_filter`; the raw value in `choice.extra["bedrock_stop_reason"]`.
//! - Usage: prompt = input + cache reads + cache writes; cached = reads; writes counted
//!   as 5-minute cache writes.
//!
//! ```no_run
//! # fn demo() -> Result<(), llm_tower_core::Error> {
//! use llm_tower_providers::bedrock::{AwsCredentials, Bedrock, BedrockConfig};
//! use llm_tower_providers::http::HttpClient;
//!
//! let bedrock = Bedrock::new(
//!     BedrockConfig::new("us-east-1", AwsCredentials::from_env()?),
//!     HttpClient::new()?,
//! )?;
//! # let _ = bedrock; Ok(()) }
//! ```
//!
//! # Errors
//!
//! By the `x-amzn-errortype` header (or the exception type of a stream message):
//! `ThrottlingException` -> `RateLimited`; `ValidationException` -> `InvalidRequest`, or
//! `ContextLengthExceeded` when the message says the input is too long;
//! `AccessDeniedException`, `UnrecognizedClientException` (and signature errors) ->
//! `Unauthorized`; `ModelNotReadyException`, `ServiceUnavailableException` ->
//! `Overloaded`; `ModelTimeoutException` -> `Timeout`; `InternalServerException` ->
//! `Provider` 500; anything else by HTTP status. A corrupt frame (CRC mismatch) or a
//! stream that ends before its `metadata` event ends with a `Transport` error.
//!
//! # Credentials
//!
//! Given, from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, or
//! from a profile of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//! `~/.aws/credentials`; `AWS_PROFILE`), see [`AwsCredentials`]. Temporary credentials
//! that rotate: [`AwsCredentialsProvider::profile`] re-reads the profile whenever the
//! file's modification time changes, and [`AwsCredentials::provider`] takes a closure
//! called for every request. (Environment variables cannot change under a running
//! process, so credentials from them are read once.) Whatever the source, the secret
//! and session token in use are scrubbed from errors.

mod convert;
mod credentials;
mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body_util::Full;
use llm_tower_core::{
    ChatRequest, Embedding, EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, Error,
    ErrorKind, LlmRequest, LlmResponse, RequestBody, ResponseBody, SharedClock, Usage, UsageSource,
};
use serde::de::DeserializeOwned;

pub use credentials::{AwsCredentials, AwsCredentialsProvider};

use crate::common::{Common, LimitHeaders, base_url};
use crate::error_map;
use crate::http::stream::{SseChatStream, first_token, prepend};
use crate::http::{BodyReader, Deadline, HttpClient, collect_body};
use stream::{BedrockStreamParser, EventStreamDecoder};

/// The SigV4 service name of both the runtime and the control plane.
pub const SERVICE: &str = "bedrock";
/// The content type of ConverseStream responses.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";
/// Error bodies are read up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Configuration of a [`Bedrock`] provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BedrockConfig {
    /// The AWS region (`us-east-1`).
    pub region: String,
    /// Where the credentials requests are signed with come from.
    pub credentials: AwsCredentialsProvider,
    /// The runtime base URL (default `https://bedrock-runtime.{region}.amazonaws.com`).
    pub base_url: Option<String>,
    /// The control-plane base URL used by [`Bedrock::health`] (default
    /// `https://bedrock.{region}.amazonaws.com`, or `base_url` when that is set).
    pub control_url: Option<String>,
    /// The provider's name (default `bedrock`).
    pub name: String,
    /// Overrides the client's request timeout for this provider.
    pub timeout: Option<Duration>,
    /// The clock (default [`TokioClock`](llm_tower_core::TokioClock)); its system time
    /// dates the signatures.
    pub clock: Option<SharedClock>,
}

impl BedrockConfig {
    /// A configuration for `region` with `credentials` (fixed [`AwsCredentials`] or an
    /// [`AwsCredentialsProvider`]).
    pub fn new(region: impl Into<String>, credentials: impl Into<AwsCredentialsProvider>) -> Self {
        BedrockConfig {
            region: region.into(),
            credentials: credentials.into(),
            base_url: None,
            control_url: None,
            name: "bedrock".to_owned(),
            timeout: None,
            clock: None,
        }
    }

    /// Sets the runtime base URL (tests, VPC endpoints, proxies).
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the control-plane base URL.
    #[must_use]
    pub fn control_url(mut self, url: impl Into<String>) -> Self {
        self.control_url = Some(url.into());
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
    runtime: String,
    control: String,
    region: String,
    credentials: AwsCredentialsProvider,
}

/// The Bedrock provider.
///
/// # Clone
///
/// Clones share one configuration and the [`HttpClient`]'s connection pool.
#[derive(Debug, Clone)]
pub struct Bedrock {
    engine: Arc<Engine>,
}

/// Both an access key id and a secret.
fn usable(c: &AwsCredentials) -> bool {
    !c.access_key_id.trim().is_empty() && !c.secret_access_key.is_empty()
}

fn valid_region(r: &str) -> bool {
    !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Bedrock {
    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// `Config` for an invalid region or base URL.
    pub fn new(config: BedrockConfig, http: HttpClient) -> Result<Self, Error> {
        let name = config.name.clone();
        Self::build(config, http).map_err(|e| e.with_provider(name))
    }

    fn build(config: BedrockConfig, http: HttpClient) -> Result<Self, Error> {
        let region = config.region.trim().to_owned();
        if !valid_region(&region) {
            return Err(Error::config(format!(
                "bedrock region: expected a region such as us-east-1, got {region:?}"
            )));
        }
        if let Some(c) = config.credentials.as_fixed()
            && !usable(c)
        {
            return Err(Error::config(
                "bedrock credentials: the access key id and the secret are required",
            ));
        }
        let runtime = match &config.base_url {
            Some(u) => base_url(u, "bedrock base_url")?,
            None => format!("https://bedrock-runtime.{region}.amazonaws.com"),
        };
        let control = match (&config.control_url, &config.base_url) {
            (Some(u), _) => base_url(u, "bedrock control_url")?,
            (None, Some(_)) => runtime.clone(),
            (None, None) => format!("https://bedrock.{region}.amazonaws.com"),
        };
        let mut secrets = Vec::new();
        if let Some(c) = config.credentials.as_fixed() {
            secrets.push(c.secret_access_key.clone());
            secrets.extend(c.session_token.clone());
        }
        let common = Common::new(
            &config.name,
            http,
            config.clock,
            config.timeout,
            LimitHeaders::OpenAi,
            HeaderMap::new(),
            secrets,
        );
        Ok(Bedrock {
            engine: Arc::new(Engine {
                common,
                runtime,
                control,
                region,
                credentials: config.credentials,
            }),
        })
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.engine.common.name
    }

    /// Checks the credentials and the connection with the control plane's signed
    /// `GET /foundation-models` (spends no tokens).
    ///
    /// # Errors
    ///
    /// The mapped HTTP or transport error.
    pub async fn health(&self) -> Result<(), Error> {
        let e = &self.engine;
        let run = async {
            let now = e.common.clock.now();
            let deadline = e.common.deadline(now, None);
            let uri = parse_uri(&format!("{}/foundation-models", e.control))?;
            let req = e.signed(Method::GET, uri, Vec::new(), false)?;
            let ok = e.execute(req, &deadline).await?;
            deadline
                .run(
                    &e.common.clock,
                    collect_body(ok.body, e.common.http.config().max_body_bytes, None),
                )
                .await?;
            Ok(())
        };
        run.await
            .map_err(|err: Error| err.with_provider(e.common.name.clone()))
    }
}

fn parse_uri(s: &str) -> Result<Uri, Error> {
    s.parse()
        .map_err(|_| Error::invalid_request(format!("invalid Bedrock URL {s:?}")))
}

/// A successful response: its headers and body.
struct Ok2 {
    headers: HeaderMap,
    body: BodyReader,
}

impl Engine {
    fn model_uri(&self, model: &str, action: &str) -> Result<Uri, Error> {
        if model.trim().is_empty() {
            return Err(Error::invalid_request("model: required").with_param("model"));
        }
        parse_uri(&format!(
            "{}/model/{}/{action}",
            self.runtime,
            encode_path_segment(model)
        ))
    }

    /// The current credentials; their secret and token are remembered, so an error that
    /// echoes them (rotated ones included) is scrubbed.
    fn credentials(&self) -> Result<AwsCredentials, Error> {
        let c = self.credentials.current().map_err(|e| {
            Error::new(
                ErrorKind::Unauthorized,
                format!("AWS credentials: {}", e.message()),
            )
        })?;
        if !usable(&c) {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "AWS credentials: the access key id and the secret are required",
            ));
        }
        self.common.secret.remember(&c.secret_access_key);
        if let Some(t) = &c.session_token {
            self.common.secret.remember(t);
        }
        Ok(c)
    }

    /// A request with its final headers, signed.
    fn signed(
        &self,
        method: Method,
        uri: Uri,
        body: Vec<u8>,
        stream: bool,
    ) -> Result<http::Request<Full<Bytes>>, Error> {
        let has_body = method != Method::GET;
        let body = Bytes::from(body);
        let mut req = self
            .common
            .request(method, uri, has_body.then(|| body.to_vec()), false)?;
        if stream {
            let h = req.headers_mut();
            h.insert(ACCEPT, HeaderValue::from_static(EVENT_STREAM));
            h.remove(ACCEPT_ENCODING);
        }
        let creds = self.credentials()?;
        credentials::sign_request(
            &mut req,
            if has_body { &body } else { &[] },
            &creds,
            &self.region,
            SERVICE,
            self.common.clock.system_now(),
        )?;
        Ok(req)
    }

    /// Sends the request; a non-2xx status becomes the error its `x-amzn-errortype` says.
    async fn execute(
        &self,
        req: http::Request<Full<Bytes>>,
        deadline: &Deadline,
    ) -> Result<Ok2, Error> {
        let resp = self
            .common
            .http
            .send(req, deadline, &self.common.clock)
            .await?;
        let (parts, body) = resp.into_parts();
        if parts.status.is_success() {
            let max = self.common.http.config().max_body_bytes;
            let body = BodyReader::new(body, &parts.headers, max)?;
            return Ok(Ok2 {
                headers: parts.headers,
                body,
            });
        }
        let bytes = match BodyReader::new(body, &parts.headers, MAX_ERROR_BODY) {
            Ok(reader) => deadline
                .run(
                    &self.common.clock,
                    collect_body(reader, MAX_ERROR_BODY, None),
                )
                .await
                .unwrap_or_default(),
            Err(_) => Bytes::new(),
        };
        let status = parts.status.as_u16();
        let kind_name = parts
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        let message = parsed
            .as_ref()
            .and_then(|v| {
                v.get("message")
                    .or_else(|| v.get("Message"))
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| {
                let t = String::from_utf8_lossy(&bytes).trim().to_owned();
                if t.is_empty() {
                    parts
                        .status
                        .canonical_reason()
                        .unwrap_or("no error message")
                        .to_owned()
                } else {
                    t
                }
            });
        let kind_name = if kind_name.is_empty() {
            parsed
                .as_ref()
                .and_then(|v| v.get("__type").and_then(|t| t.as_str()))
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
                .unwrap_or_default()
        } else {
            kind_name
        };
        let mut err = stream::bedrock_error(
            &kind_name,
            &message,
            Some(status),
            Some(&self.common.secret),
        );
        if let Some(r) = crate::headers::retry_after(&parts.headers, self.common.clock.system_now())
        {
            err = err.with_retry_after(r);
        }
        Err(err)
    }

    async fn read_json<T: DeserializeOwned>(
        &self,
        ok: Ok2,
        deadline: &Deadline,
        what: &str,
    ) -> Result<T, Error> {
        let cfg = self.common.http.config();
        let bytes = deadline
            .run(
                &self.common.clock,
                collect_body(ok.body, cfg.max_body_bytes, cfg.buffer_budget.clone()),
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| error_map::invalid_body(what, &e))
    }

    async fn call(&self, req: LlmRequest) -> Result<LlmResponse, Error> {
        let t0 = self.common.clock.now();
        let caller = req.ctx.deadline;
        // Only the chat translation of a Responses API request can go here.
        llm_tower_core::ResponsesBody::check_translatable(&req)
            .map_err(|e| e.with_provider(self.common.name.clone()))?;
        let result = match &req.body {
            RequestBody::Chat(c) => self.chat(c, t0, caller).await,
            RequestBody::Completion(_) => Err(Error::invalid_request(
                "Bedrock has no legacy completions; send a chat request",
            )),
            RequestBody::Embeddings(e) => self.embeddings(e, t0, caller).await,
        };
        result.map_err(|e| e.with_provider(self.common.name.clone()))
    }

    fn response_id(&self, headers: &HeaderMap) -> String {
        let rid = headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 100)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                use std::sync::atomic::{AtomicU64, Ordering};
                static SEQ: AtomicU64 = AtomicU64::new(0);
                let nanos = self
                    .common
                    .clock
                    .system_now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or_default();
                format!("{nanos:x}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
            });
        format!("chatcmpl-bedrock-{rid}")
    }

    async fn chat(
        &self,
        chat: &ChatRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let clock = &self.common.clock;
        let deadline = self.common.deadline(t0, caller);
        let convert::ConverseBody { body, json_tool } = convert::converse_request(chat)?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| Error::internal(format!("cannot encode the Converse request: {e}")))?;
        let action = if chat.stream {
            "converse-stream"
        } else {
            "converse"
        };
        let uri = self.model_uri(&chat.model, action)?;
        let req = self.signed(Method::POST, uri, body, chat.stream)?;
        let ok = self.execute(req, &deadline).await?;
        let id = self.response_id(&ok.headers);
        if !chat.stream {
            let w: convert::ConverseResponse = self.read_json(ok, &deadline, "response").await?;
            let (resp, usage) = convert::converse_response(
                w,
                id,
                &chat.model,
                clock.unix_secs(),
                json_tool.as_deref(),
            );
            let mut out = LlmResponse::new(ResponseBody::Chat(resp));
            out.usage = usage;
            out.meta = self.common.meta(String::new(), &chat.model, t0, None);
            return Ok(out);
        }
        if let Some(ct) = ok.headers.get(CONTENT_TYPE)
            && !ct.as_bytes().starts_with(EVENT_STREAM.as_bytes())
        {
            let ct: String = String::from_utf8_lossy(ct.as_bytes())
                .chars()
                .take(80)
                .collect();
            return Err(Error::new(
                ErrorKind::Provider { status: 502 },
                format!(
                    "the upstream answered {ct} to a ConverseStream request (expected {EVENT_STREAM})"
                ),
            ));
        }
        let latency = clock.now().saturating_duration_since(t0);
        let parser = BedrockStreamParser::new(
            id,
            chat.model.clone(),
            clock.unix_secs(),
            Some(self.common.secret.clone()),
        )
        .json_tool(json_tool);
        let stream = SseChatStream::with_decoder(
            ok.body,
            EventStreamDecoder::default(),
            parser,
            clock.clone(),
            self.common.name.clone(),
            self.common.http.config().stream_idle_timeout,
            caller.map(Deadline::caller),
        );
        let (buffered, first_at, rest) = first_token(stream, &deadline, clock).await?;
        let mut out = LlmResponse::new(ResponseBody::Stream(prepend(buffered, rest)));
        out.meta = self.common.meta(String::new(), &chat.model, t0, None);
        out.meta.latency = latency;
        out.meta.time_to_first_token = first_at.map(|t| t.saturating_duration_since(t0));
        Ok(out)
    }

    async fn embeddings(
        &self,
        req: &EmbeddingsRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let family = convert::embedding_family(&req.model).ok_or_else(|| {
            Error::invalid_request(format!(
                "Bedrock embeddings: {:?} is neither a Titan (amazon.titan-embed-*) nor a Cohere (cohere.embed-*) model",
                req.model
            ))
            .with_param("model")
        })?;
        let texts = convert::embedding_texts(&req.input)?;
        let deadline = self.common.deadline(t0, caller);
        let uri = self.model_uri(&req.model, "invoke")?;
        let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        let mut tokens: u64 = 0;
        match family {
            convert::EmbeddingFamily::Titan => {
                for text in &texts {
                    let mut body = serde_json::json!({ "inputText": text });
                    if let (Some(d), Some(o)) = (req.dimensions, body.as_object_mut()) {
                        o.insert("dimensions".into(), d.into());
                    }
                    let body = serde_json::to_vec(&body)
                        .map_err(|e| Error::internal(format!("cannot encode: {e}")))?;
                    let r = self.signed(Method::POST, uri.clone(), body, false)?;
                    let ok = self.execute(r, &deadline).await?;
                    let w: convert::TitanResponse =
                        self.read_json(ok, &deadline, "embedding").await?;
                    tokens = tokens.saturating_add(w.input_text_token_count);
                    vectors.push(w.embedding);
                }
            }
            convert::EmbeddingFamily::Cohere => {
                let input_type = req
                    .extra
                    .get("input_type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("search_document");
                let mut body = serde_json::json!({ "texts": texts, "input_type": input_type });
                if let (Some(t), Some(o)) = (req.extra.get("truncate"), body.as_object_mut()) {
                    o.insert("truncate".into(), t.clone());
                }
                let body = serde_json::to_vec(&body)
                    .map_err(|e| Error::internal(format!("cannot encode: {e}")))?;
                let r = self.signed(Method::POST, uri, body, false)?;
                let ok = self.execute(r, &deadline).await?;
                tokens = ok
                    .headers
                    .get("x-amzn-bedrock-input-token-count")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let w: convert::CohereResponse =
                    self.read_json(ok, &deadline, "embeddings").await?;
                vectors = w.embeddings.into_vectors();
                if vectors.len() != texts.len() {
                    return Err(Error::new(
                        ErrorKind::Transport,
                        format!(
                            "Cohere returned {} embeddings for {} texts",
                            vectors.len(),
                            texts.len()
                        ),
                    ));
                }
            }
        }
        let base64 = req.encoding_format.as_deref() == Some("base64");
        let data = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| Embedding {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                embedding: if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                    EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    EmbeddingVector::Float(v)
                },
            })
            .collect();
        let mut out = LlmResponse::new(ResponseBody::Embeddings(EmbeddingsResponse {
            model: req.model.clone(),
            data,
        }));
        out.usage = Some(Usage::new(tokens, 0, UsageSource::Provider));
        out.meta = self.common.meta(String::new(), &req.model, t0, None);
        Ok(out)
    }
}

impl tower::Service<LlmRequest> for Bedrock {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_are_encoded() {
        assert_eq!(
            encode_path_segment("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            "anthropic.claude-3-5-sonnet-20240620-v1%3A0"
        );
        assert_eq!(
            encode_path_segment("arn:aws:bedrock:us-east-1:1:inference-profile/x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx"
        );
    }
}
