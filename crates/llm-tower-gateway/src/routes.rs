//! The HTTP routes and their handlers.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use llm_tower_core::{
    CallerKey, ChatResponse, Error, LlmRequest, RequestBody, RequestId, ResponseBody, StreamOptions,
};
use pin_project_lite::pin_project;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

use crate::app::AppState;
use crate::key::{api_key_token, bearer_token};
use crate::openai_error::{OpenAiError, json_error};
use crate::telemetry::{OVERHEAD, REQUEST_DURATION, REQUESTS_TOTAL, status_label};
use crate::wire::{SseBody, encode_response};

/// `x-request-id`: read into the request context and echoed on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-llm-tower-timeout`: the client's deadline for this request in seconds (decimal,
/// e.g. `2.5`); the gateway's `request_timeout` still caps it.
pub const TIMEOUT_HEADER: HeaderName = HeaderName::from_static("x-llm-tower-timeout");

/// `x-llm-tower-cache: hit|miss|bypass`: what the response cache did, on every LLM
/// response when the stack has a cache layer (absent otherwise).
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-llm-tower-cache");

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Puts the client's `Cache-Control` (`no-cache`, `max-age=0`, `no-store`) into the
/// request as a [`CacheDirective`](llm_tower_core::CacheDirective) for the cache layer.
fn cache_directive(headers: &HeaderMap, req: &mut LlmRequest) {
    let values = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    if let Some(d) = llm_tower_core::CacheDirective::from_cache_control(values) {
        req.extensions.insert(d);
    }
}

/// Sets [`CACHE_HEADER`] from what the cache did (nothing without a cache layer).
pub(crate) fn cache_header(resp: &mut Response, status: Option<llm_tower_core::CacheStatus>) {
    if let Some(s) = status {
        resp.headers_mut()
            .insert(CACHE_HEADER, HeaderValue::from_static(s.as_str()));
    }
}

/// The gateway's router over `state`. Every response it gives carries `x-request-id`
/// ([`RequestIdLayer`]): `/health`, `/metrics`, 404 and 405 included.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/chat/completions",
            route("/v1/chat/completions", post(chat)),
        )
        .route(
            "/v1/completions",
            route("/v1/completions", post(completions)),
        )
        .route("/v1/embeddings", route("/v1/embeddings", post(embeddings)))
        .route(
            "/v1/responses",
            route("/v1/responses", post(crate::responses::create)),
        )
        .route(
            "/v1/responses/{id}",
            route("/v1/responses/{id}", get(crate::responses::retrieve)),
        )
        .route("/v1/models", route("/v1/models", get(models)))
        // `{*id}`: ids such as `mock/gpt-4o-mini` or `vllm/meta-llama/Llama-3.1-8B` contain `/`.
        .route("/v1/models/{*id}", route("/v1/models/{id}", get(model)))
        .route(
            "/v1/messages",
            post(crate::anthropic::messages)
                .fallback(crate::anthropic::method_not_allowed)
                .layer(RecordLayer::new("/v1/messages")),
        )
        .route(
            "/v1/messages/count_tokens",
            post(crate::anthropic::count_tokens)
                .fallback(crate::anthropic::method_not_allowed)
                .layer(RecordLayer::new("/v1/messages/count_tokens")),
        )
        .route("/v1/usage", route("/v1/usage", get(usage)))
        .route("/health", route("/health", get(health)))
        .route("/metrics", route("/metrics", get(metrics_text)))
        .fallback_service(RecordLayer::new("unmatched").layer(tower::service_fn(
            |req: Request| async move {
                Ok::<_, std::convert::Infallible>(
                    OpenAiError::unknown_route(req.method(), req.uri().path()).into_response(),
                )
            },
        )))
        .layer(RequestIdLayer)
        .with_state(state)
}

fn route(name: &'static str, m: MethodRouter<AppState>) -> MethodRouter<AppState> {
    m.fallback(method_not_allowed).layer(RecordLayer::new(name))
}

async fn method_not_allowed(req: Request) -> Response {
    OpenAiError::method_not_allowed(req.method(), req.uri().path()).into_response()
}

// ---------------------------------------------------------------------------------------
// `x-request-id` on every response.

/// Puts `x-request-id` on every response that has none yet: the client's (when usable,
/// see [`given_request_id`]) or a new one. The LLM routes set their own (the id the stack
/// saw); this covers the rest: `/health`, `/metrics`, `/v1/models`, 404, 405.
#[derive(Clone, Copy)]
struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = EnsureRequestId<S>;

    fn layer(&self, inner: S) -> EnsureRequestId<S> {
        EnsureRequestId { inner }
    }
}

#[derive(Clone)]
struct EnsureRequestId<S> {
    inner: S,
}

impl<S> Service<Request> for EnsureRequestId<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let given = given_request_id(req.headers()).map(|(_, h)| h);
        RequestIdFuture {
            inner: self.inner.call(req),
            given,
        }
    }
}

pin_project! {
    struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        given: Option<HeaderValue>,
    }
}

impl<F, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut resp = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(resp)) => resp,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
        };
        if !resp.headers().contains_key(REQUEST_ID) {
            let id = this
                .given
                .take()
                .unwrap_or_else(|| id_header(&RequestId::generate()));
            resp.headers_mut().insert(REQUEST_ID, id);
        }
        Poll::Ready(Ok(resp))
    }
}

// ---------------------------------------------------------------------------------------
// Per-route metrics and the HTTP span.

/// The provider's share of a response's latency, left in the response extensions by the
/// handlers so the [`RecordLayer`] can compute the gateway's own overhead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProviderLatency(pub(crate) Duration);

#[derive(Clone, Copy)]
struct RecordLayer {
    route: &'static str,
}

impl RecordLayer {
    fn new(route: &'static str) -> Self {
        RecordLayer { route }
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            route: self.route,
        }
    }
}

#[derive(Clone)]
struct Record<S> {
    inner: S,
    route: &'static str,
}

impl<S> Service<Request> for Record<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RecordFuture<tracing::instrument::Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let span = tracing::info_span!(
            "http.request",
            http.request.method = %req.method(),
            http.route = self.route,
            http.response.status_code = tracing::field::Empty,
            llm_tower.request_id = tracing::field::Empty,
        );
        let fut = {
            let _enter = span.enter();
            self.inner.call(req)
        };
        RecordFuture {
            inner: fut.instrument(span),
            route: self.route,
            start: Instant::now(),
        }
    }
}

pin_project! {
    struct RecordFuture<F> {
        #[pin]
        inner: F,
        route: &'static str,
        start: Instant,
    }
}

impl<F, E> Future for RecordFuture<tracing::instrument::Instrumented<F>>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let out = match this.inner.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(out) => out,
        };
        let Ok(resp) = &out else {
            return Poll::Ready(out);
        };
        let elapsed = this.start.elapsed();
        let status = resp.status().as_u16();
        this.inner
            .span()
            .record("http.response.status_code", status);
        let route = *this.route;
        metrics::counter!(REQUESTS_TOTAL, "route" => route, "status" => status_label(status))
            .increment(1);
        metrics::histogram!(REQUEST_DURATION, "route" => route).record(elapsed.as_secs_f64());
        if let Some(ProviderLatency(provider)) = resp.extensions().get::<ProviderLatency>() {
            metrics::histogram!(OVERHEAD, "route" => route)
                .record(elapsed.saturating_sub(*provider).as_secs_f64());
        }
        Poll::Ready(out)
    }
}

// ---------------------------------------------------------------------------------------
// Shared request handling.

/// What the request carries besides its body.
pub(crate) struct Head {
    /// The id the client gave (`x-request-id`), if any.
    pub(crate) given_id: Option<RequestId>,
    /// The id to echo: the given one, or one generated later.
    pub(crate) echo: Option<HeaderValue>,
    pub(crate) caller: Option<CallerKey>,
}

/// The client's `x-request-id`, when it is usable (1 to 128 visible characters).
fn given_request_id(headers: &HeaderMap) -> Option<(RequestId, HeaderValue)> {
    let v = headers.get(REQUEST_ID)?;
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128).then(|| (RequestId::from_string(s), v.clone()))
}

pub(crate) fn id_header(id: &RequestId) -> HeaderValue {
    HeaderValue::from_str(id.as_str()).unwrap_or(HeaderValue::from_static("-"))
}

/// Authenticates the request: the caller, or the 401 to answer. The key comes in
/// `Authorization: Bearer <key>` (OpenAI's SDKs) or `x-api-key: <key>` (Anthropic's SDKs,
/// Claude Code), on every route; when both are sent, the first one that is a valid key
/// names the caller.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<CallerKey>, OpenAiError> {
    let bearer = bearer_token(headers);
    let api_key = api_key_token(headers);
    if bearer.is_none() && api_key.is_none() {
        return if state.auth_required() {
            Err(OpenAiError::unauthorized(true))
        } else {
            Ok(None)
        };
    }
    match [bearer, api_key]
        .into_iter()
        .flatten()
        .find_map(|token| state.authenticate(token))
    {
        Some(caller) => Ok(Some(caller)),
        None if state.auth_required() => Err(OpenAiError::unauthorized(false)),
        None => Ok(None),
    }
}

/// The request id and the caller, or the 401 (with the id to echo).
#[allow(clippy::result_large_err)] // an error on the way out, built once per request
pub(crate) fn try_head(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Head, (OpenAiError, Option<HeaderValue>)> {
    let (given_id, echo) = match given_request_id(headers) {
        Some((id, h)) => (Some(id), Some(h)),
        None => (None, None),
    };
    if let Some(id) = &given_id {
        tracing::Span::current().record("llm_tower.request_id", id.as_str());
    }
    match authenticate(state, headers) {
        Ok(caller) => Ok(Head {
            given_id,
            echo,
            caller,
        }),
        Err(e) => Err((e, echo)),
    }
}

/// The request id and the caller, or the 401 to answer (with the id echoed).
#[allow(clippy::result_large_err)] // the error is the response itself, returned as is
pub(crate) fn head(state: &AppState, headers: &HeaderMap) -> Result<Head, Response> {
    try_head(state, headers).map_err(|(e, echo)| finish(e.into_response(), echo))
}

/// Echoes the request id (generating one when neither the client nor the stack gave one).
pub(crate) fn finish(mut resp: Response, echo: Option<HeaderValue>) -> Response {
    let id = echo.unwrap_or_else(|| id_header(&RequestId::generate()));
    resp.headers_mut().insert(REQUEST_ID, id);
    resp
}

pub(crate) async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, OpenAiError> {
    let max = state.settings().max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(OpenAiError::payload_too_large(max));
    }
    let collect = Limited::new(body, max).collect();
    match tokio::time::timeout(state.settings().body_read_timeout, collect).await {
        Err(_) => Err(OpenAiError::body_timeout()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(OpenAiError::payload_too_large(max))
        }
        Ok(Err(_)) => Err(OpenAiError::bad_request(
            "The request body could not be read.",
            None,
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Parses a JSON body: fast path without path tracking; on failure, parse again to name
/// the field.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, OpenAiError> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(first) => {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Err(e) => Err(json_error(&e)),
                // Valid up to its end but followed by garbage.
                Ok(_) => Err(crate::openai_error::invalid_json(&first)),
            }
        }
    }
}

pub(crate) fn deadline(state: &AppState, headers: &HeaderMap) -> Instant {
    let max = state.settings().request_timeout;
    let asked = headers
        .get(TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    let now = Instant::now();
    let wait = asked.map_or(max, |a| a.min(max));
    // A configured timeout of centuries must not overflow the clock.
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Chat,
    Completion,
    Embeddings,
}

/// Parses, validates and calls the stack; answers in OpenAI's shape.
async fn llm(state: AppState, req: Request, op: Op) -> Response {
    let (parts, body) = req.into_parts();
    let mut head = match head(&state, &parts.headers) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let resp = match llm_inner(&state, &parts.headers, body, op, &mut head).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    finish(resp, head.echo)
}

async fn llm_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    op: Op,
    head: &mut Head,
) -> Result<Response, OpenAiError> {
    let bytes = read_body(state, headers, body).await?;
    let mut include_usage = false;
    let body = match op {
        Op::Chat => {
            let mut chat: llm_tower_core::ChatRequest = parse_json(&bytes)?;
            if chat.messages.is_empty() {
                return Err(OpenAiError::bad_request(
                    "messages: at least one message is required",
                    Some(Cow::Borrowed("messages")),
                ));
            }
            if chat.stream {
                include_usage = chat
                    .stream_options
                    .as_ref()
                    .is_some_and(|o| o.include_usage);
                // Always ask the provider for usage, so cost is settled on real numbers;
                // the usage chunk is dropped again unless the client asked for it.
                chat.stream_options = Some(StreamOptions {
                    extra: Default::default(),
                    include_usage: true,
                });
            }
            RequestBody::Chat(chat)
        }
        Op::Completion => {
            let c: llm_tower_core::CompletionRequest = parse_json(&bytes)?;
            if c.stream {
                return Err(OpenAiError::bad_request(
                    "stream: streaming is not supported on /v1/completions; use /v1/chat/completions",
                    Some(Cow::Borrowed("stream")),
                ));
            }
            RequestBody::Completion(c)
        }
        Op::Embeddings => RequestBody::Embeddings(parse_json(&bytes)?),
    };
    drop(bytes);
    let req = LlmRequest::new(body);
    let stream = req.is_stream();
    let (resp, deadline) = call_stack(state, headers, head, req).await?;
    let latency = resp.meta.latency;
    let cache = resp.meta.cache;
    let mut out = match (resp.body, stream) {
        (ResponseBody::Stream(s), _) => {
            sse_response(SseBody::new(s, include_usage).with_deadline(deadline))
        }
        (ResponseBody::Chat(c), true) => {
            // A provider that cannot stream answered in one piece: stream it anyway.
            let s = one_piece_stream(c, resp.usage);
            sse_response(SseBody::new(s, include_usage))
        }
        (body, _) => match encode_response(&body, resp.usage) {
            Some(Ok(json)) => json_response(StatusCode::OK, json),
            _ => {
                return Err(OpenAiError::from_error(&Error::internal(
                    "response could not be encoded",
                )));
            }
        },
    };
    out.extensions_mut().insert(ProviderLatency(latency));
    cache_header(&mut out, cache);
    Ok(out)
}

/// What a client asks of the stack in headers: `Cache-Control` (see [`cache_directive`])
/// and `x-llm-tower-hedge: off` (the request has side effects: never send it twice, see
/// `llm_tower_layers::route::Hedge`).
pub(crate) fn client_options(headers: &HeaderMap, req: &mut llm_tower_core::LlmRequest) {
    cache_directive(headers, req);
    if headers
        .get("x-llm-tower-hedge")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"off"))
    {
        req.extensions.insert(llm_tower_layers::route::NoHedge);
    }
}

/// Calls the stack with a parsed request, as every LLM route does: 404 for a model the
/// gateway does not serve, 400 for out-of-range fields, then the caller, the request id
/// (the client's, or the context's, which is then echoed) and the deadline go into the
/// context, and the call runs within the deadline (504 past it). Returns the response and
/// the deadline (for a stream to end by).
pub(crate) async fn call_stack(
    state: &AppState,
    headers: &HeaderMap,
    head: &mut Head,
    mut req: LlmRequest,
) -> Result<(llm_tower_core::LlmResponse, Instant), OpenAiError> {
    if !state.knows_model(req.model()) {
        return Err(OpenAiError::model_not_found(req.model()));
    }
    req.check_ranges()
        .map_err(|e| OpenAiError::from_error(&e))?;
    let deadline = deadline(state, headers);
    req.ctx.caller = head.caller.take();
    match head.given_id.take() {
        Some(id) => req.ctx.request_id = id,
        // The context made one already: echo it rather than make another.
        None => {
            head.echo = Some(id_header(&req.ctx.request_id));
            tracing::Span::current().record("llm_tower.request_id", req.ctx.request_id.as_str());
        }
    }
    req.ctx.deadline = Some(deadline.into_std());
    client_options(headers, &mut req);
    let call = state.service().oneshot(req);
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(resp)) => Ok((resp, deadline)),
        Ok(Err(e)) => Err(OpenAiError::from_error(&e)),
        Err(_) => Err(OpenAiError::from_error(&Error::timeout(
            "the gateway's request timeout passed before the provider answered",
        ))),
    }
}

fn one_piece_stream(
    c: ChatResponse,
    usage: Option<llm_tower_core::Usage>,
) -> llm_tower_core::ChatStream {
    let chunks = llm_tower_core::response_chunks(&c, usage);
    Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
}

pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, JSON);
    resp
}

fn sse_response(body: SseBody) -> Response {
    event_stream(Body::new(body))
}

/// A `text/event-stream` response over `body`, unbuffered by proxies.
pub(crate) fn event_stream(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    resp
}

// ---------------------------------------------------------------------------------------
// Handlers.

async fn chat(State(state): State<AppState>, req: Request) -> Response {
    llm(state, req, Op::Chat).await
}

async fn completions(State(state): State<AppState>, req: Request) -> Response {
    llm(state, req, Op::Completion).await
}

async fn embeddings(State(state): State<AppState>, req: Request) -> Response {
    llm(state, req, Op::Embeddings).await
}

async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let head = match head(&state, &headers) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    finish(
        json_response(StatusCode::OK, state.inner.models_json.clone()),
        head.echo,
    )
}

async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let head = match head(&state, &headers) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let resp = match state.models().iter().find(|m| m.id == id) {
        Some(m) => match serde_json::to_vec(m) {
            Ok(v) => json_response(StatusCode::OK, Bytes::from(v)),
            Err(_) => OpenAiError::from_error(&Error::internal("encoding failed")).into_response(),
        },
        None => OpenAiError::model_not_found(&id).into_response(),
    };
    finish(resp, head.echo)
}

/// The provider probe results, reused for `health_cache`; one probe run at a time.
async fn probe_results(state: &AppState) -> Arc<[crate::app::ProviderHealth]> {
    let Some(probe) = &state.inner.health else {
        return Arc::from(Vec::new());
    };
    let ttl = state.settings().health_cache;
    let mut cache = state.inner.health_cache.lock().await;
    if let Some((at, results)) = cache.as_ref()
        && at.elapsed() < ttl
    {
        return results.clone();
    }
    let results: Arc<[crate::app::ProviderHealth]> =
        match tokio::time::timeout(state.settings().health_timeout, probe()).await {
            Ok(r) => Arc::from(r),
            Err(_) => Arc::from(vec![crate::app::ProviderHealth::failed(
                "probes",
                "health probes did not answer in time",
            )]),
        };
    *cache = Some((tokio::time::Instant::now(), results.clone()));
    results
}

#[derive(Serialize)]
struct ProbeJson<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct HealthJson<'a> {
    status: &'static str,
    /// Per provider; only for an admin key (or an open gateway): probe errors carry
    /// upstream text that an anonymous caller has no business reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    providers: Option<std::collections::BTreeMap<&'a str, ProbeJson<'a>>>,
}

/// `true` when the request may see details meant for operators: the gateway is open (no
/// keys), or the request carries an admin key.
fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    if !state.auth_required() {
        return true;
    }
    matches!(authenticate(state, headers), Ok(Some(c)) if state.inner.usage_admins.contains(c.as_str()))
}

async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let detailed = is_admin(&state, &headers);
    let results = probe_results(&state).await;
    let failed = results.iter().filter(|r| !r.ok).count();
    let (status, code) = if results.is_empty() || failed == 0 {
        ("ok", StatusCode::OK)
    } else if failed < results.len() {
        ("degraded", StatusCode::OK)
    } else {
        ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
    };
    let providers = detailed.then(|| {
        results
            .iter()
            .map(|r| {
                let p = ProbeJson {
                    status: if r.ok { "ok" } else { "error" },
                    error: r.error.as_deref(),
                };
                (r.provider.as_str(), p)
            })
            .collect()
    });
    match serde_json::to_vec(&HealthJson { status, providers }) {
        Ok(v) => json_response(code, Bytes::from(v)),
        Err(_) => OpenAiError::from_error(&Error::internal("encoding failed")).into_response(),
    }
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    match &state.inner.prometheus {
        Some(handle) => {
            let mut resp = Response::new(Body::from(handle.render()));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        None => OpenAiError::new(
            StatusCode::NOT_FOUND,
            "Metrics are not enabled on this gateway.",
            "invalid_request_error",
            Some("not_enabled"),
        )
        .into_response(),
    }
}

#[derive(Serialize)]
struct UsageJson<'a> {
    object: &'static str,
    /// `all`, or `caller` when a non-admin key sees only its own usage.
    scope: &'static str,
    #[serde(flatten)]
    snapshot: &'a llm_tower_layers::cost::AnalyticsSnapshot,
    budgets: Vec<BudgetView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    budgets_error: Option<String>,
}

/// One budget counter as `/v1/usage` shows it. A counter shared by several callers
/// (global, model, provider) shows a non-admin caller only whether it is exhausted and when
/// it resets: never what the others spent.
#[derive(Serialize)]
struct BudgetView {
    budget: String,
    key: String,
    shared: bool,
    exhausted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<llm_tower_core::Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spent: Option<llm_tower_core::Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reserved: Option<llm_tower_core::Money>,
}

impl BudgetView {
    fn new(b: llm_tower_layers::cost::BudgetStatus, full: bool) -> BudgetView {
        let exhausted = b.spent.saturating_add(b.reserved) >= b.limit;
        let show = full || !b.shared;
        BudgetView {
            budget: b.budget,
            key: b.key,
            shared: b.shared,
            exhausted,
            resets_at: b.resets_at,
            limit: show.then_some(b.limit),
            spent: show.then_some(b.spent),
            reserved: show.then_some(b.reserved),
        }
    }
}

async fn usage(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let head = match head(&state, &headers) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let Some(tracker) = state.tracker() else {
        return finish(
            OpenAiError::new(
                StatusCode::NOT_FOUND,
                "Usage analytics are not enabled on this gateway (no cost tracking).",
                "invalid_request_error",
                Some("not_enabled"),
            )
            .into_response(),
            head.echo,
        );
    };
    let caller = head.caller.as_ref().map(CallerKey::as_str);
    let mut snapshot = tracker.snapshot();
    // With keys, a caller sees its own usage only, unless its key is an admin key.
    let scope = match caller {
        Some(c) if state.auth_required() && !state.inner.usage_admins.contains(c) => {
            let own = snapshot.by_caller.remove(c).unwrap_or_default();
            snapshot = llm_tower_layers::cost::AnalyticsSnapshot::default();
            snapshot.total = own;
            snapshot.by_caller.insert(c.to_owned(), own);
            "caller"
        }
        _ => "all",
    };
    let full = scope == "all";
    let status = if full {
        tracker.budget_status_all(caller).await
    } else {
        tracker.budget_status(caller).await
    };
    let (budgets, budgets_error) = match status {
        Ok(b) => (
            b.into_iter().map(|b| BudgetView::new(b, full)).collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.message().to_owned())),
    };
    let resp = match serde_json::to_vec(&UsageJson {
        object: "usage",
        scope,
        snapshot: &snapshot,
        budgets,
        budgets_error,
    }) {
        Ok(v) => json_response(StatusCode::OK, Bytes::from(v)),
        Err(_) => OpenAiError::from_error(&Error::internal("encoding failed")).into_response(),
    };
    finish(resp, head.echo)
}
