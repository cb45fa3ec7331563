//! Google Cloud Vertex AI as a `tower::Service<LlmRequest>`.
//!
//! - Gemini models speak the [`gemini`] wire format at
//!   `https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`
//!   (and `:streamGenerateContent?alt=sse`); for location `global` the host is
//!   `aiplatform.googleapis.com`.
//! - Anthropic models (names starting with `claude`, e.g. `claude-sonnet-4-5@20250929`)
//!   speak the [`anthropic`](crate::anthropic) Messages format at
//!   `.../publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict`), with
//!   `anthropic_version: "vertex-2023-10-16"` in the body and no `model` field.
//! - Authentication ([`VertexAuth`]): a static access token, a token from an environment
//!   variable or a command (cached for a TTL), or a service-account key: an RS256 JWT
//!   signed with the key is exchanged at the key's `token_uri` for an access token, cached
//!   and refreshed 5 minutes before it expires, one refresh at a time.
//!
//! ```no_run
//! # fn demo() -> Result<(), llm_tower_core::Error> {
//! use llm_tower_providers::http::HttpClient;
//! use llm_tower_providers::vertex::{Vertex, VertexAuth, VertexConfig};
//!
//! let auth = VertexAuth::service_account_file("/secrets/sa.json")?;
//! let vertex = Vertex::new(VertexConfig::new("my-project", "us-central1", auth), HttpClient::new()?)?;
//! # let _ = vertex; Ok(()) }
//! ```
//!
//! # Errors
//!
//! As [`gemini`] (and [`anthropic`](crate::anthropic) for Claude models).
//! Credentials that cannot be obtained (an unset variable, a failing command, a token
//! endpoint refusing the key) are `Unauthorized`. Legacy completions are refused with
//! `InvalidRequest`.
//!
//! # Embeddings
//!
//! Text-embedding models (`gemini-embedding-001`, `text-embedding-005`, ...) are called at
//! `.../publishers/google/models/{model}:predict` with `instances: [{content}]`
//! (`extra["task_type"]` -> `task_type`, `dimensions` -> `parameters.outputDimensionality`);
//! the usage is the sum of the predictions' `statistics.token_count`.
//!
//! # Clone
//!
//! Clones share one configuration, one token cache and the [`HttpClient`]'s connection
//! pool.

mod auth;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method};
use llm_tower_core::{
    ChatRequest, EmbeddingsRequest, Error, LlmRequest, LlmResponse, RequestBody, ResponseBody,
    SharedClock, Usage, UsageSource,
};
use serde_json::Value;

use crate::anthropic::convert as anthropic_convert;
use crate::anthropic::stream::AnthropicStreamParser;
use crate::anthropic::wire as anthropic_wire;
use crate::common::{Common, LimitHeaders, base_url, plain_header};
use crate::gemini::{self, convert::model_path};
use crate::http::HttpClient;
use auth::TokenSource;
pub use auth::{CLOUD_PLATFORM_SCOPE, DEFAULT_TOKEN_URI, ServiceAccountKey, VertexAuth};

/// The `anthropic_version` sent to Claude models on Vertex AI.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Configuration of a [`Vertex`] provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VertexConfig {
    /// The Google Cloud project id.
    pub project: String,
    /// The region (`us-central1`, `europe-west4`, ...) or `global`.
    pub location: String,
    /// How to authenticate.
    pub auth: VertexAuth,
    /// Overrides `https://{location}-aiplatform.googleapis.com` (tests, private endpoints).
    pub base_url: Option<String>,
    /// Overrides the service-account key's `token_uri` as the URL tokens are fetched from
    /// (the JWT audience stays the key's `token_uri`).
    pub token_url: Option<String>,
    /// `max_tokens` for Claude requests that set none (default 4096).
    pub default_max_tokens: u32,
    /// The provider's name (default `vertex`).
    pub name: String,
    /// Overrides the client's request timeout for this provider.
    pub timeout: Option<Duration>,
    /// The clock (default [`TokioClock`](llm_tower_core::TokioClock)).
    pub clock: Option<SharedClock>,
}

impl VertexConfig {
    /// A configuration for a project, location and credentials.
    pub fn new(project: impl Into<String>, location: impl Into<String>, auth: VertexAuth) -> Self {
        VertexConfig {
            project: project.into(),
            location: location.into(),
            auth,
            base_url: None,
            token_url: None,
            default_max_tokens: 4096,
            name: "vertex".to_owned(),
            timeout: None,
            clock: None,
        }
    }

    /// Sets the base URL.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the URL service-account tokens are fetched from.
    #[must_use]
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Sets the default `max_tokens` of Claude requests.
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

/// The host of a location's endpoint.
pub fn default_base_url(location: &str) -> String {
    if location == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{location}-aiplatform.googleapis.com")
    }
}

fn path_segment(value: &str, what: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "vertex {what}: invalid value {value:?}"
        )))
    }
}

#[derive(Debug)]
struct Engine {
    common: Common,
    /// `{base}/v1/projects/{project}/locations/{location}/publishers`.
    publishers: String,
    tokens: TokenSource,
    default_max_tokens: u32,
}

/// The Vertex AI provider.
#[derive(Debug, Clone)]
pub struct Vertex {
    engine: Arc<Engine>,
}

impl Vertex {
    /// Builds the provider.
    ///
    /// # Errors
    ///
    /// `Config` for an invalid project, location or base URL.
    pub fn new(config: VertexConfig, http: HttpClient) -> Result<Self, Error> {
        let name = config.name.clone();
        Self::build(config, http).map_err(|e| e.with_provider(name))
    }

    fn build(config: VertexConfig, http: HttpClient) -> Result<Self, Error> {
        path_segment(&config.project, "project")?;
        path_segment(&config.location, "location")?;
        let base = match &config.base_url {
            Some(u) => base_url(u, "vertex base_url")?,
            None => default_base_url(&config.location),
        };
        let secrets = match &config.auth {
            VertexAuth::AccessToken(t) => vec![t.clone()],
            _ => Vec::new(),
        };
        let common = Common::new(
            &config.name,
            http,
            config.clock,
            config.timeout,
            LimitHeaders::None,
            HeaderMap::new(),
            secrets,
        );
        let publishers = format!(
            "{base}/v1/projects/{}/locations/{}/publishers",
            config.project, config.location
        );
        Ok(Vertex {
            engine: Arc::new(Engine {
                common,
                publishers,
                tokens: TokenSource::new(config.auth, config.token_url),
                default_max_tokens: config.default_max_tokens,
            }),
        })
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.engine.common.name
    }

    /// Checks the credentials by obtaining an access token (spends no tokens; a cached
    /// token counts).
    ///
    /// # Errors
    ///
    /// `Unauthorized`, or the transport error of the token endpoint.
    pub async fn health(&self) -> Result<(), Error> {
        self.engine
            .tokens
            .token(&self.engine.common)
            .await
            .map(|_| ())
            .map_err(|e| e.with_provider(self.engine.common.name.clone()))
    }

    /// The `generateContent` URL of a Gemini model (without the method), for checks.
    pub fn model_url(&self, model: &str) -> String {
        format!("{}/google/models/{model}", self.engine.publishers)
    }
}

fn auth_error(msg: &str) -> Error {
    Error::new(
        llm_tower_core::ErrorKind::Unauthorized,
        format!("Vertex AI: {msg}"),
    )
}

/// Claude models are served by the `anthropic` publisher.
fn is_anthropic(model: &str) -> bool {
    model.starts_with("claude")
}

impl Engine {
    async fn call(&self, req: LlmRequest) -> Result<LlmResponse, Error> {
        let t0 = self.common.clock.now();
        let caller = req.ctx.deadline;
        // Only the chat translation of a Responses API request can go here.
        llm_tower_core::ResponsesBody::check_translatable(&req)
            .map_err(|e| e.with_provider(self.common.name.clone()))?;
        let result = match &req.body {
            RequestBody::Chat(c) => self.chat(c, t0, caller).await,
            RequestBody::Completion(_) => Err(Error::invalid_request(
                "Vertex AI has no legacy completions; send a chat request",
            )),
            RequestBody::Embeddings(e) => self.embeddings(e, t0, caller).await,
        };
        result.map_err(|e| e.with_provider(self.common.name.clone()))
    }

    async fn chat(
        &self,
        chat: &ChatRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let model = model_path(&chat.model)?;
        // The body is built (and the request checked) before any token is fetched.
        if is_anthropic(model) {
            let wire = self.anthropic_body(chat)?;
            let auth = self.auth().await?;
            self.anthropic(model, wire, auth, chat, t0, caller).await
        } else {
            let body = gemini::request_body(chat)?;
            let auth = self.auth().await?;
            let prefix = format!("{}/google/models/{model}", self.publishers);
            gemini::generate(&self.common, &prefix, body, Some(auth), chat, t0, caller).await
        }
    }

    async fn auth(&self) -> Result<(http::HeaderName, http::HeaderValue), Error> {
        let token = self.tokens.token(&self.common).await?;
        // A fetched, printed or env token is scrubbed from errors like a configured key.
        self.common.secret.remember(&token);
        let value = token.header_value("Bearer ").map_err(|_| {
            auth_error("the access token contains characters a header cannot carry")
        })?;
        Ok((AUTHORIZATION, value))
    }

    async fn embeddings(
        &self,
        e: &EmbeddingsRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let model = model_path(&e.model)?;
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
        let body = serde_json::to_vec(&gemini::convert::vertex_embed_request(e)?)
            .map_err(|e| Error::invalid_request(format!("request not serializable: {e}")))?;
        let auth = self.auth().await?;
        let deadline = self.common.deadline(t0, caller);
        let uri = format!("{}/google/models/{model}:predict", self.publishers)
            .parse()
            .map_err(|_| Error::invalid_request("the model name does not make a valid URL"))?;
        let mut req = self.common.request(Method::POST, uri, Some(body), false)?;
        req.headers_mut().insert(auth.0, auth.1);
        let ok = self.common.execute(req, &deadline).await?;
        let limits = ok.limits;
        let w: gemini::wire::VertexPredictResponse =
            self.common.read_json(ok, &deadline, "embeddings").await?;
        let (batch, tokens) = gemini::convert::vertex_embed_response(&w);
        let resp = gemini::convert::embed_response(batch, model, base64_out);
        let mut out = LlmResponse::new(ResponseBody::Embeddings(resp));
        if tokens > 0 {
            out.usage = Some(Usage::new(tokens, 0, UsageSource::Provider));
        }
        out.meta = self.common.meta(model.to_owned(), &e.model, t0, limits);
        Ok(out)
    }

    fn anthropic_body(&self, chat: &ChatRequest) -> Result<(Vec<u8>, Vec<String>), Error> {
        let wire = anthropic_convert::messages_request(chat, self.default_max_tokens)?;
        let mut v: serde_json::Map<String, Value> = serde_json::from_slice(&wire.body)
            .map_err(|e| Error::invalid_request(format!("request not serializable: {e}")))?;
        v.remove("model");
        v.insert(
            "anthropic_version".into(),
            Value::String(ANTHROPIC_VERSION.to_owned()),
        );
        let body = serde_json::to_vec(&v)
            .map_err(|e| Error::invalid_request(format!("request not serializable: {e}")))?;
        Ok((body, anthropic_convert::merge_betas(&[], &wire.betas)))
    }

    async fn anthropic(
        &self,
        model: &str,
        (body, betas): (Vec<u8>, Vec<String>),
        auth: (http::HeaderName, http::HeaderValue),
        chat: &ChatRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let clock = &self.common.clock;
        let deadline = self.common.deadline(t0, caller);
        let method = if chat.stream {
            "streamRawPredict"
        } else {
            "rawPredict"
        };
        let uri = format!("{}/anthropic/models/{model}:{method}", self.publishers)
            .parse()
            .map_err(|_| Error::invalid_request("the model name does not make a valid URL"))?;
        let mut req = self
            .common
            .request(Method::POST, uri, Some(body), chat.stream)?;
        req.headers_mut().insert(auth.0, auth.1);
        if !betas.is_empty() {
            let (n, v) = plain_header("anthropic-beta", &betas.join(",")).map_err(|e| {
                Error::invalid_request(e.message().to_owned()).with_param("anthropic_beta")
            })?;
            req.headers_mut().insert(n, v);
        }
        let ok = self.common.execute(req, &deadline).await?;
        let limits = ok.limits;
        if !chat.stream {
            let w: anthropic_wire::MessagesResponse =
                self.common.read_json(ok, &deadline, "message").await?;
            let (resp, usage) = anthropic_convert::messages_response(w, clock.unix_secs());
            let m = resp.model.clone();
            let mut out = LlmResponse::new(ResponseBody::Chat(resp));
            out.usage = usage;
            out.meta = self.common.meta(m, &chat.model, t0, limits);
            return Ok(out);
        }
        let parser =
            AnthropicStreamParser::new(clock.unix_secs(), Some(self.common.secret.clone()));
        self.common
            .sse_answer(ok, parser, t0, &chat.model, &deadline, caller)
            .await
    }
}

impl tower::Service<LlmRequest> for Vertex {
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
