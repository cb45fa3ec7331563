//! The OpenAI chat/completions/embeddings client that OpenAI, Azure OpenAI and
//! OpenAI-compatible servers share; they differ only in URLs, headers and wire options.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Method, Uri};
use http_body_util::Full;
use llm_tower_core::{
    ChatRequest, CompletionRequest, EmbeddingsRequest, Error, LlmRequest, LlmResponse, RequestBody,
    ResponseBody, ResponsesBody,
};

use super::convert::{self, WireOptions};
use super::responses;
use super::stream::OpenAiStreamParser;
use super::wire;
use crate::azure::EntraTokenSource;
use crate::common::{Common, join};

/// Where each operation goes.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one value per provider
pub(crate) enum Urls {
    /// `{base}/chat/completions`, `{base}/completions`, `{base}/embeddings`, `{base}/models`.
    Base {
        chat: Uri,
        completions: Uri,
        embeddings: Uri,
        models: Uri,
        /// `{base}/responses`, for a server that speaks the Responses API
        /// ([`Urls::with_responses`]).
        responses: Option<Uri>,
    },
    /// Azure deployment URLs.
    Azure(AzureUrls),
}

/// Azure OpenAI's `{endpoint}/openai/deployments/{deployment}/{op}?api-version=...`.
#[derive(Debug)]
pub(crate) struct AzureUrls {
    pub endpoint: String,
    pub api_version: String,
    pub deployments: BTreeMap<String, String>,
    pub default_deployment: Option<String>,
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl AzureUrls {
    /// The deployment serving `model`: the mapping, else the default, else the model name.
    pub fn deployment<'a>(&'a self, model: &'a str) -> &'a str {
        self.deployments
            .get(model)
            .map(String::as_str)
            .or(self.default_deployment.as_deref())
            .unwrap_or(model)
    }

    fn uri(&self, op: &str, model: &str) -> Result<Uri, Error> {
        let deployment = self.deployment(model);
        if deployment.is_empty() {
            return Err(Error::invalid_request(
                "no Azure deployment for an empty model name",
            ));
        }
        join(
            &self.endpoint,
            &format!(
                "/openai/deployments/{}/{op}?api-version={}",
                encode_segment(deployment),
                encode_segment(&self.api_version)
            ),
        )
    }

    pub fn models(&self) -> Result<Uri, Error> {
        join(
            &self.endpoint,
            &format!(
                "/openai/models?api-version={}",
                encode_segment(&self.api_version)
            ),
        )
    }
}

impl Urls {
    /// URLs under a base such as `https://api.openai.com/v1`.
    pub fn base(base: &str) -> Result<Urls, Error> {
        Ok(Urls::Base {
            chat: join(base, "/chat/completions")?,
            completions: join(base, "/completions")?,
            embeddings: join(base, "/embeddings")?,
            models: join(base, "/models")?,
            responses: None,
        })
    }

    /// The same, with Responses API requests sent natively to `{base}/responses`.
    pub fn with_responses(base: &str) -> Result<Urls, Error> {
        let mut urls = Urls::base(base)?;
        if let Urls::Base { responses, .. } = &mut urls {
            *responses = Some(join(base, "/responses")?);
        }
        Ok(urls)
    }

    /// Where Responses API requests go natively, when the server speaks that API.
    fn responses(&self) -> Option<&Uri> {
        match self {
            Urls::Base { responses, .. } => responses.as_ref(),
            Urls::Azure(_) => None,
        }
    }

    fn chat(&self, model: &str) -> Result<Uri, Error> {
        match self {
            Urls::Base { chat, .. } => Ok(chat.clone()),
            Urls::Azure(a) => a.uri("chat/completions", model),
        }
    }

    fn completions(&self, model: &str) -> Result<Uri, Error> {
        match self {
            Urls::Base { completions, .. } => Ok(completions.clone()),
            Urls::Azure(a) => a.uri("completions", model),
        }
    }

    fn embeddings(&self, model: &str) -> Result<Uri, Error> {
        match self {
            Urls::Base { embeddings, .. } => Ok(embeddings.clone()),
            Urls::Azure(a) => a.uri("embeddings", model),
        }
    }

    fn models(&self) -> Result<Uri, Error> {
        match self {
            Urls::Base { models, .. } => Ok(models.clone()),
            Urls::Azure(a) => a.models(),
        }
    }
}

/// The shared OpenAI-protocol client.
#[derive(Debug)]
pub(crate) struct OpenAiEngine {
    pub common: Common,
    pub urls: Urls,
    pub opts: WireOptions,
    /// Entra ID bearer tokens fetched per request (Azure), when configured.
    pub token: Option<EntraTokenSource>,
}

fn serialize_error(e: &serde_json::Error) -> Error {
    Error::invalid_request(format!("request cannot be serialized: {e}"))
}

impl OpenAiEngine {
    /// Serves one request; every error names the provider.
    pub async fn call(&self, req: LlmRequest) -> Result<LlmResponse, Error> {
        let t0 = self.common.clock.now();
        let caller = req.ctx.deadline;
        let result = match &req.body {
            RequestBody::Chat(c) => self.chat_any(&req, c, t0, caller).await,
            RequestBody::Completion(c) => self.completion(c, t0, caller).await,
            RequestBody::Embeddings(e) => self.embeddings(e, t0, caller).await,
        };
        result.map_err(|e| e.with_provider(self.common.name.clone()))
    }

    /// A chat request: natively to the Responses API when it came in as one and the
    /// server speaks it, else to chat completions.
    async fn chat_any(
        &self,
        req: &LlmRequest,
        chat: &ChatRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        if let Some(body) = ResponsesBody::of(req) {
            if let Some(uri) = self.urls.responses() {
                return self.responses(chat, body, uri.clone(), t0, caller).await;
            }
            ResponsesBody::check_translatable(req)?;
        }
        if chat.stream {
            self.chat_stream(chat, t0, caller).await
        } else {
            self.chat(chat, t0, caller).await
        }
    }

    /// `POST {base}/responses` with the client's Responses API body.
    async fn responses(
        &self,
        chat: &ChatRequest,
        native: &ResponsesBody,
        uri: Uri,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let deadline = self.common.deadline(t0, caller);
        let body = responses::request_body(native, chat)?;
        let mut req = self
            .common
            .request(Method::POST, uri, Some(body), chat.stream)?;
        self.authorize(&mut req).await?;
        let ok = self.common.execute(req, &deadline).await?;
        let now = self.common.clock.unix_secs();
        if chat.stream {
            let parser =
                responses::ResponsesStreamParser::new(now, Some(self.common.secret.clone()));
            return self
                .common
                .sse_answer(ok, parser, t0, &chat.model, &deadline, caller)
                .await;
        }
        let limits = ok.limits;
        let v: serde_json::Value = self.common.read_json(ok, &deadline, "response").await?;
        let (resp, usage) = responses::response(v, now, Some(&self.common.secret))?;
        let model = resp.model.clone();
        let mut out = LlmResponse::new(ResponseBody::Chat(resp));
        out.usage = usage;
        out.meta = self.common.meta(model, &chat.model, t0, limits);
        Ok(out)
    }

    /// `GET /models` (spends no tokens).
    pub async fn health(&self) -> Result<(), Error> {
        let result = match (self.urls.models(), &self.token) {
            (Ok(uri), None) => self.common.get_ok(uri).await,
            (Ok(uri), Some(_)) => self.get_ok_authorized(uri).await,
            (Err(e), _) => Err(e),
        };
        result.map_err(|e| e.with_provider(self.common.name.clone()))
    }

    async fn get_ok_authorized(&self, uri: Uri) -> Result<(), Error> {
        let deadline = self.common.deadline(self.common.clock.now(), None);
        let mut req = self.common.request(Method::GET, uri, None, false)?;
        self.authorize(&mut req).await?;
        let ok = self.common.execute(req, &deadline).await?;
        deadline
            .run(
                &self.common.clock,
                crate::http::collect_body(ok.body, self.common.http.config().max_body_bytes, None),
            )
            .await?;
        Ok(())
    }

    /// Adds `Authorization: Bearer` with a current token when a token source is set (and
    /// remembers the token, so an upstream error that echoes it is scrubbed).
    async fn authorize(&self, req: &mut http::Request<Full<Bytes>>) -> Result<(), Error> {
        if let Some(source) = &self.token {
            let token = source.token(&self.common.http, &self.common.clock).await?;
            self.common.secret.remember(&token);
            req.headers_mut()
                .insert(AUTHORIZATION, token.header_value("Bearer ")?);
        }
        Ok(())
    }

    async fn chat(
        &self,
        chat: &ChatRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let deadline = self.common.deadline(t0, caller);
        let body = convert::chat_request_body(chat, &self.opts).map_err(|e| serialize_error(&e))?;
        let mut req = self.common.request(
            Method::POST,
            self.urls.chat(&chat.model)?,
            Some(body),
            false,
        )?;
        self.authorize(&mut req).await?;
        let ok = self.common.execute(req, &deadline).await?;
        let limits = ok.limits;
        let w: wire::ChatCompletionResponse = self
            .common
            .read_json(ok, &deadline, "chat completion")
            .await?;
        let (resp, usage) = convert::chat_response(w, self.common.clock.unix_secs());
        let model = resp.model.clone();
        let mut out = LlmResponse::new(ResponseBody::Chat(resp));
        out.usage = usage;
        out.meta = self.common.meta(model, &chat.model, t0, limits);
        Ok(out)
    }

    async fn chat_stream(
        &self,
        chat: &ChatRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let clock = &self.common.clock;
        let deadline = self.common.deadline(t0, caller);
        let body = convert::chat_request_body(chat, &self.opts).map_err(|e| serialize_error(&e))?;
        let mut req =
            self.common
                .request(Method::POST, self.urls.chat(&chat.model)?, Some(body), true)?;
        self.authorize(&mut req).await?;
        let ok = self.common.execute(req, &deadline).await?;
        let parser = OpenAiStreamParser::new(clock.unix_secs(), Some(self.common.secret.clone()));
        self.common
            .sse_answer(ok, parser, t0, &chat.model, &deadline, caller)
            .await
    }

    async fn completion(
        &self,
        c: &CompletionRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        if c.stream {
            return Err(Error::invalid_request(
                "streaming legacy completions is not supported; use chat completions",
            ));
        }
        let deadline = self.common.deadline(t0, caller);
        let body = serde_json::to_vec(c).map_err(|e| serialize_error(&e))?;
        let mut req = self.common.request(
            Method::POST,
            self.urls.completions(&c.model)?,
            Some(body),
            false,
        )?;
        self.authorize(&mut req).await?;
        let ok = self.common.execute(req, &deadline).await?;
        let limits = ok.limits;
        let w: wire::CompletionResponse =
            self.common.read_json(ok, &deadline, "completion").await?;
        let (resp, usage) = convert::completion_response(w, self.common.clock.unix_secs());
        let model = resp.model.clone();
        let mut out = LlmResponse::new(ResponseBody::Completion(resp));
        out.usage = usage;
        out.meta = self.common.meta(model, &c.model, t0, limits);
        Ok(out)
    }

    async fn embeddings(
        &self,
        e: &EmbeddingsRequest,
        t0: Instant,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let deadline = self.common.deadline(t0, caller);
        let body = serde_json::to_vec(e).map_err(|e| serialize_error(&e))?;
        let mut req = self.common.request(
            Method::POST,
            self.urls.embeddings(&e.model)?,
            Some(body),
            false,
        )?;
        self.authorize(&mut req).await?;
        let ok = self.common.execute(req, &deadline).await?;
        let limits = ok.limits;
        let w: wire::EmbeddingsResponse =
            self.common.read_json(ok, &deadline, "embeddings").await?;
        let (resp, usage) = convert::embeddings_response(w);
        let model = resp.model.clone();
        let mut out = LlmResponse::new(ResponseBody::Embeddings(resp));
        out.usage = usage;
        out.meta = self.common.meta(model, &e.model, t0, limits);
        Ok(out)
    }
}

/// Implements `tower::Service<LlmRequest>` for a provider wrapping `Arc<$engine>` in
/// field `engine` with an `async fn call(&self, LlmRequest)`.
macro_rules! impl_provider_service {
    ($ty:ty) => {
        impl tower::Service<llm_tower_core::LlmRequest> for $ty {
            type Response = llm_tower_core::LlmResponse;
            type Error = llm_tower_core::Error;
            type Future = futures_util::future::BoxFuture<
                'static,
                Result<llm_tower_core::LlmResponse, llm_tower_core::Error>,
            >;

            fn poll_ready(
                &mut self,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: llm_tower_core::LlmRequest) -> Self::Future {
                let engine = std::sync::Arc::clone(&self.engine);
                Box::pin(async move { engine.call(req).await })
            }
        }
    };
}
pub(crate) use impl_provider_service;

/// An engine behind an `Arc`, for the provider types.
pub(crate) type SharedEngine = Arc<OpenAiEngine>;
