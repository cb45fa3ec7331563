//! The OpenAI Responses API (`POST /v1/responses`, `GET /v1/responses/{id}`), served by
//! translating to and from chat completions: the request goes through the same stack
//! (limits, budgets, token counting, cost, routes, metrics) as `/v1/chat/completions`, so
//! every provider serves it.
//!
//! - `request`: the request and its input items as a chat request;
//! - `response`: the response object from a chat response;
//! - `stream`: a chat stream as Responses events;
//! - `store`: stored responses for `previous_response_id` and retrieval.

pub(crate) mod native;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod store;
pub(crate) mod stream;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use llm_tower_core::{
    Error, LlmRequest, Message, ResponseBody, StreamOptions, collect_chat_stream,
};
use serde_json::Value;
use tower::ServiceExt;

#[cfg(feature = "config")]
pub use store::RedisResponseStore;
pub use store::{MemoryResponseStore, ResponseStore, StoredResponse};

use crate::app::AppState;
use crate::openai_error::OpenAiError;
use crate::routes::{
    Head, ProviderLatency, deadline, event_stream, finish, head, id_header, json_response,
    parse_json, read_body,
};
use request::{Conversation, Parsed};
use response::{Meta, Status, new_id, now_secs, output_items, response_object};

/// `POST /v1/responses`.
pub(crate) async fn create(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let mut head = match head(&state, &parts.headers) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let resp = match create_inner(&state, &parts.headers, body, &mut head).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    finish(resp, head.echo)
}

fn previous_not_found(id: &str) -> OpenAiError {
    let shown: String = id.chars().take(128).collect();
    OpenAiError::new(
        StatusCode::BAD_REQUEST,
        format!("previous_response_id: no stored response with id '{shown}' found."),
        "invalid_request_error",
        Some("previous_response_not_found"),
    )
    .with_param("previous_response_id")
}

async fn create_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    head: &mut Head,
) -> Result<Response, OpenAiError> {
    let bytes = read_body(state, headers, body).await?;
    let value: Value = parse_json(&bytes)?;
    let input_bytes = bytes.len();
    drop(bytes);
    let Parsed {
        native,
        mut untranslatable,
        mut chat,
        input,
        echo,
        stream,
    } = request::parse(value)?;
    let caller = head.caller.as_ref().map(|c| c.as_str().to_owned());

    // The stored conversation this one continues.
    let mut history: Vec<Arc<[Value]>> = Vec::new();
    let mut history_bytes = 0;
    if let Some(prev) = &echo.previous_response_id {
        let found = match state.response_store() {
            Some(s) => s.get(prev).await.map_err(|e| OpenAiError::from_error(&e))?,
            None => None,
        };
        // Another caller's response does not exist for this one.
        let found = found
            .filter(|p| p.caller == caller)
            .ok_or_else(|| previous_not_found(prev))?;
        history = found.continued_history();
        history_bytes = found.size;
    }
    let mut conv = Conversation::default();
    if let Some(i) = &echo.instructions {
        conv.messages.push(Message::system(i.clone()));
    }
    for turn in &history {
        conv.push_items(turn, "previous_response_id")?;
    }
    conv.push_items(&input, "input")?;
    chat.messages = conv.finish();
    if let Some((param, what)) = conv.untranslatable.0.take() {
        untranslatable.0.get_or_insert((param, what));
    }
    // Without messages only a provider speaking the Responses API has something to read.
    if chat.messages.is_empty() && untranslatable.0.is_none() {
        return Err(request::bad("input", "at least one input item is required"));
    }
    let native = native_body(native, &history, &input, untranslatable);
    if stream {
        // Always ask the provider for usage, so cost is settled on real numbers and
        // `response.completed` carries it.
        chat.stream_options = Some(StreamOptions {
            extra: Default::default(),
            include_usage: true,
        });
    }

    let mut req = LlmRequest::chat(chat);
    req.extensions.insert(native);
    if !state.knows_model(req.model()) {
        return Err(OpenAiError::model_not_found(req.model()));
    }
    req.check_ranges().map_err(|e| stack_error(&e))?;
    let deadline = deadline(state, headers);
    req.ctx.caller = head.caller.take();
    match head.given_id.take() {
        Some(id) => req.ctx.request_id = id,
        None => {
            head.echo = Some(id_header(&req.ctx.request_id));
            tracing::Span::current().record("llm_tower.request_id", req.ctx.request_id.as_str());
        }
    }
    req.ctx.deadline = Some(deadline.into_std());
    crate::routes::client_options(headers, &mut req);

    let store = state.response_store().filter(|_| echo.store).cloned();
    // Its size so far: the history and the request; the response's is added at the end.
    let template = StoredResponse {
        caller,
        history,
        input,
        instructions: echo.instructions.clone(),
        output: Vec::new(),
        response: Value::Null,
        size: history_bytes.saturating_add(input_bytes),
    };
    let meta = Meta {
        id: new_id("resp"),
        created_at: now_secs(),
        echo,
    };

    let call = state.service().oneshot(req);
    let resp = match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(stack_error(&e)),
        Err(_) => {
            return Err(OpenAiError::from_error(&Error::timeout(
                "the gateway's request timeout passed before the provider answered",
            )));
        }
    };
    let latency = resp.meta.latency;
    let cache = resp.meta.cache;
    let mut out = if stream {
        let chat_stream = match resp.body {
            ResponseBody::Stream(s) => match native::peek(s, deadline).await {
                native::Peeked::Native(s) => {
                    let store = store.map(|store| stream::StoreOnFinish { store, template });
                    let events = crate::passthrough::events(
                        native::Responses::new(meta, store),
                        s,
                        deadline,
                    );
                    let mut out = event_stream(Body::from_stream(events));
                    out.extensions_mut().insert(ProviderLatency(latency));
                    crate::routes::cache_header(&mut out, cache);
                    return Ok(out);
                }
                native::Peeked::Chat(s) => s,
            },
            // A provider that cannot stream answered in one piece: stream it anyway.
            ResponseBody::Chat(c) => stream::one_piece(c, resp.usage),
            _ => return Err(internal()),
        };
        let store = store.map(|store| stream::StoreOnFinish { store, template });
        let events = stream::events(stream::Translator::new(meta), chat_stream, deadline, store);
        event_stream(Body::from_stream(events))
    } else {
        let (chat, usage) = match resp.body {
            ResponseBody::Chat(c) => (c, resp.usage),
            ResponseBody::Stream(s) => {
                let (c, u) = match tokio::time::timeout_at(deadline, collect_chat_stream(s)).await {
                    Ok(r) => r.map_err(|e| OpenAiError::from_error(&e))?,
                    Err(_) => {
                        return Err(OpenAiError::from_error(&Error::timeout(
                            "the stream ran past the gateway's request timeout",
                        )));
                    }
                };
                (c, u.or(resp.usage))
            }
            _ => return Err(internal()),
        };
        let (object, output) = match &chat.native {
            // The provider answered in the Responses API itself: its object, as ours.
            Some(obj) => native::object(&meta, obj),
            None => {
                let choice = chat.choices.iter().find(|c| c.index == 0);
                let status = Status::from_finish(choice.and_then(|c| c.finish_reason.as_deref()));
                let output = choice
                    .map(|c| output_items(&c.message, status))
                    .unwrap_or_default();
                let object =
                    response_object(&meta, &chat.model, status, &output, usage.as_ref(), None);
                (object, output)
            }
        };
        let body = serde_json::to_vec(&object).map_err(|_| internal())?;
        if let Some(store) = store {
            let mut template = template;
            // The output is in the response object too: count it twice.
            template.size = template.size.saturating_add(body.len().saturating_mul(2));
            template.output = output;
            template.response = object;
            if let Err(e) = store.put(meta.id.clone(), template).await {
                tracing::warn!(error = %e, "the response could not be stored");
            }
        }
        json_response(StatusCode::OK, Bytes::from(body))
    };
    out.extensions_mut().insert(ProviderLatency(latency));
    crate::routes::cache_header(&mut out, cache);
    Ok(out)
}

/// The body a provider speaking the Responses API gets: the client's, with the stored
/// conversation it continues in `input` instead of `previous_response_id`, and the items
/// the gateway made itself fitted for OpenAI (see [`response::native_item`]).
fn native_body(
    mut body: serde_json::Map<String, Value>,
    history: &[Arc<[Value]>],
    input: &[Value],
    untranslatable: request::Untranslatable,
) -> llm_tower_core::ResponsesBody {
    let continued = body.remove("previous_response_id").is_some();
    let items = || history.iter().flat_map(|t| t.iter()).chain(input.iter());
    let changes = items().any(|item| {
        !matches!(
            response::native_item(item),
            Some(std::borrow::Cow::Borrowed(_))
        )
    });
    if continued || changes {
        let items: Vec<Value> = items()
            .filter_map(response::native_item)
            .map(std::borrow::Cow::into_owned)
            .collect();
        body.insert("input".into(), Value::Array(items));
    }
    let mut native = llm_tower_core::ResponsesBody::new(body);
    native.untranslatable = untranslatable.0;
    native
}

/// An error of the stack, with chat's field names put back into the Responses API's.
fn stack_error(e: &Error) -> OpenAiError {
    if e.param() == Some("max_tokens") {
        let message = e.message().replace("max_tokens", "max_output_tokens");
        let renamed = Error::new(e.kind(), message).with_param("max_output_tokens");
        let renamed = match e.code() {
            Some(code) => renamed.with_code(code.to_owned()),
            None => renamed,
        };
        return OpenAiError::from_error(&renamed);
    }
    OpenAiError::from_error(e)
}

fn internal() -> OpenAiError {
    OpenAiError::from_error(&Error::internal("response could not be encoded"))
}

/// `GET /v1/responses/{id}`: a stored response of the same caller.
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let head = match head(&state, &headers) {
        Ok(h) => h,
        Err(resp) => return resp,
    };
    let caller = head.caller.as_ref().map(|c| c.as_str().to_owned());
    let found = match state.response_store() {
        Some(s) => s.get(&id).await,
        None => Ok(None),
    };
    let resp = match found {
        Ok(Some(r)) if r.caller == caller => match serde_json::to_vec(&r.response) {
            Ok(v) => json_response(StatusCode::OK, Bytes::from(v)),
            Err(_) => internal().into_response(),
        },
        Ok(_) => {
            let shown: String = id.chars().take(128).collect();
            OpenAiError::new(
                StatusCode::NOT_FOUND,
                format!("No response found with id '{shown}'."),
                "invalid_request_error",
                Some("not_found"),
            )
            .into_response()
        }
        Err(e) => OpenAiError::from_error(&e).into_response(),
    };
    finish(resp, head.echo)
}
