//! Anthropic's Messages API at the edge: `POST /v1/messages` and
//! `POST /v1/messages/count_tokens`.
//!
//! Only the codec differs from `/v1/chat/completions`: the request is converted into a
//! [`ChatRequest`](llm_tower_core::ChatRequest) ([`request`]), the same stack serves it
//! (limits, budgets, token counting, cost, routes, metrics), and the answer is written as
//! an Anthropic `message` ([`response`]) or Anthropic's streaming events ([`stream`]);
//! errors come back in Anthropic's shape ([`error`]). The gateway key comes in
//! `x-api-key` (what the Anthropic SDKs and Claude Code send) or `Authorization: Bearer`.
//! The client's `anthropic-version` and `anthropic-beta` headers reach the stack as
//! [`ClientHeaders`] in the request's extensions, for an Anthropic provider to forward.

pub mod error;
mod native;
pub mod request;
pub mod response;
pub mod stream;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use llm_tower_core::{ClientHeaders, Error, LlmRequest, RequestBody, RequestId, ResponseBody};
use llm_tower_layers::token_count::TokenCounter as _;

use crate::app::AppState;
use crate::openai_error::OpenAiError;
use crate::routes::{
    Head, ProviderLatency, REQUEST_ID, call_stack, event_stream, id_header, json_response,
    read_body, try_head,
};

pub use error::AnthropicError;
pub use request::Endpoint;

/// `request-id`: Anthropic's name for the request id header (sent with `x-request-id`).
pub const ANTHROPIC_REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// `x-llm-tower-token-count` on `count_tokens` answers: `provider` when the provider
/// counted (an Anthropic provider configured with `"count_tokens": "provider"`), `exact`
/// when the model's own tokenizer counted, `estimate` otherwise (always for Claude models
/// counted here).
pub const TOKEN_COUNT_HEADER: HeaderName = HeaderName::from_static("x-llm-tower-token-count");

/// The client's `anthropic-version` and `anthropic-beta` headers.
pub fn client_headers(headers: &HeaderMap) -> ClientHeaders {
    let mut h = ClientHeaders {
        anthropic_version: headers
            .get("anthropic-version")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        anthropic_beta: Vec::new(),
    };
    for v in headers.get_all("anthropic-beta") {
        if let Ok(v) = v.to_str() {
            h.add_beta(v);
        }
    }
    h
}

/// Puts the request id on the response (`x-request-id` and `request-id`) and, for an
/// error, in its body.
fn answer(result: Result<Response, AnthropicError>, echo: Option<HeaderValue>) -> Response {
    let id = echo.unwrap_or_else(|| id_header(&RequestId::generate()));
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => e.with_request_id(id.to_str().ok()).into_response(),
    };
    let h = resp.headers_mut();
    h.insert(ANTHROPIC_REQUEST_ID, id.clone());
    h.insert(REQUEST_ID, id);
    resp
}

/// `POST /v1/messages`.
pub(crate) async fn messages(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut head = match try_head(&state, &parts.headers) {
        Ok(h) => h,
        Err((e, echo)) => return answer(Err(e.into()), echo),
    };
    let result = messages_inner(&state, &parts.headers, body, &mut head).await;
    answer(result, head.echo)
}

async fn messages_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    head: &mut Head,
) -> Result<Response, AnthropicError> {
    let bytes = read_body(state, headers, body).await?;
    let chat = request::parse(&bytes, Endpoint::Messages)?;
    drop(bytes);
    let stream = chat.stream;
    let model = chat.model.clone();
    let mut req = LlmRequest::chat(chat);
    // An Anthropic provider answers in its own JSON too, passed on whole.
    req.extensions
        .insert(llm_tower_core::AnthropicMessagesClient);
    let client = client_headers(headers);
    if !client.is_empty() {
        req.extensions.insert(client);
    }
    // `message_start` reports the prompt's size before the provider's usage arrives.
    let input_tokens = if stream && state.knows_model(&model) {
        state.token_counter().count_prompt(&req.body).tokens
    } else {
        0
    };
    let (resp, deadline) = call_stack(state, headers, head, req).await?;
    let latency = resp.meta.latency;
    let cache = resp.meta.cache;
    let mut out = match (resp.body, stream) {
        (ResponseBody::Stream(s), _) => match crate::responses::native::peek(s, deadline).await {
            crate::responses::native::Peeked::Native(s) => event_stream(Body::from_stream(
                crate::passthrough::events(native::Messages::default(), s, deadline),
            )),
            crate::responses::native::Peeked::Chat(s) => event_stream(Body::new(
                stream::MessagesSseBody::new(s, model, input_tokens).with_deadline(deadline),
            )),
        },
        (ResponseBody::Chat(c), false) if c.native.is_some() => {
            match c.native.as_deref().map(serde_json::to_vec) {
                Some(Ok(v)) => json_response(StatusCode::OK, Bytes::from(v)),
                _ => {
                    return Err(AnthropicError::from_error(&Error::internal(
                        "response could not be encoded",
                    )));
                }
            }
        }
        (ResponseBody::Chat(c), true) => {
            // A provider that cannot stream answered in one piece: stream it anyway.
            let s = stream::response_stream(c, resp.usage);
            event_stream(Body::new(stream::MessagesSseBody::new(
                s,
                model,
                input_tokens,
            )))
        }
        (ResponseBody::Chat(c), false) => {
            match serde_json::to_vec(&response::message_json(&c, resp.usage)) {
                Ok(v) => json_response(StatusCode::OK, Bytes::from(v)),
                Err(_) => {
                    return Err(AnthropicError::from_error(&Error::internal(
                        "response could not be encoded",
                    )));
                }
            }
        }
        _ => {
            return Err(AnthropicError::from_error(&Error::internal(
                "the stack answered a chat request with another kind of response",
            )));
        }
    };
    out.extensions_mut().insert(ProviderLatency(latency));
    crate::routes::cache_header(&mut out, cache);
    Ok(out)
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}` from the gateway's token
/// counter (the stack's own with a config), with `x-llm-tower-token-count: exact|estimate`.
/// It does not call the provider (nor Anthropic's own counting endpoint), so it costs
/// nothing and passes no rate limit or budget.
pub(crate) async fn count_tokens(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let head = match try_head(&state, &parts.headers) {
        Ok(h) => h,
        Err((e, echo)) => return answer(Err(e.into()), echo),
    };
    let result = count_tokens_inner(&state, &parts.headers, body).await;
    answer(result, head.echo)
}

async fn count_tokens_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, AnthropicError> {
    let bytes = read_body(state, headers, body).await?;
    let chat = request::parse(&bytes, Endpoint::CountTokens)?;
    drop(bytes);
    if !state.knows_model(&chat.model) {
        return Err(OpenAiError::model_not_found(&chat.model).into());
    }
    let client = client_headers(headers);
    let upstream = state.count_tokens_upstream(&chat, &client);
    match tokio::time::timeout(state.settings().request_timeout, upstream).await {
        Ok(Some(Ok(n))) => {
            let body = serde_json::json!({"input_tokens": n});
            let mut resp = json_response(StatusCode::OK, Bytes::from(body.to_string()));
            resp.headers_mut()
                .insert(TOKEN_COUNT_HEADER, HeaderValue::from_static("provider"));
            return Ok(resp);
        }
        Ok(Some(Err(e))) => return Err(AnthropicError::from_error(&e)),
        Ok(None) => {}
        Err(_) => {
            return Err(AnthropicError::from_error(&Error::timeout(
                "the provider did not count the tokens within the gateway's request timeout",
            )));
        }
    }
    let claude = chat.model.to_ascii_lowercase().contains("claude");
    let count = state.token_counter().count_prompt(&RequestBody::Chat(chat));
    let exact = count.is_exact() && !claude;
    let body = serde_json::json!({"input_tokens": count.tokens});
    let mut resp = json_response(StatusCode::OK, Bytes::from(body.to_string()));
    resp.headers_mut().insert(
        TOKEN_COUNT_HEADER,
        HeaderValue::from_static(if exact { "exact" } else { "estimate" }),
    );
    Ok(resp)
}

/// 405 in Anthropic's shape.
pub(crate) async fn method_not_allowed(req: Request) -> Response {
    let e = OpenAiError::method_not_allowed(req.method(), req.uri().path());
    let echo = req.headers().get(REQUEST_ID).cloned();
    answer(Err(e.into()), echo)
}
