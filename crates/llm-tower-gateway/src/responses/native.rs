//! Responses a provider wrote in the Responses API itself (OpenAI, Azure's v1 API: see
//! `llm_tower_core::ResponsesBody`), passed on as they came: the object or every event,
//! with the gateway's response id (the one `GET /v1/responses/{id}` and
//! `previous_response_id` know) in place of the provider's.

use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use llm_tower_core::{ChatStream, Error};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::response::{Meta, Status, response_object};
use super::stream::StoreOnFinish;
use crate::openai_error::OpenAiError;
use crate::passthrough::{Passthrough, write_event};

/// The provider's response object as the gateway's, with its output items (for the
/// store).
pub(crate) fn object(meta: &Meta, native: &Value) -> (Value, Vec<Value>) {
    let mut object = native.clone();
    rewrite(meta, &mut object);
    let output = object
        .get("output")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    (object, output)
}

/// Puts the gateway's id (and the `previous_response_id` the client sent) into a
/// response object.
fn rewrite(meta: &Meta, object: &mut Value) {
    if let Value::Object(r) = object {
        r.insert("id".into(), Value::String(meta.id.clone()));
        r.insert(
            "previous_response_id".into(),
            meta.echo
                .previous_response_id
                .clone()
                .map_or(Value::Null, Value::String),
        );
    }
}

/// A stream, after a look at its first chunk.
pub(crate) enum Peeked {
    /// The provider streams Responses API events (in the chunks' `native`).
    Native(ChatStream),
    /// A chat stream, to translate.
    Chat(ChatStream),
}

/// Looks at the first chunk (providers return streams with it already buffered).
pub(crate) async fn peek(mut stream: ChatStream, deadline: Instant) -> Peeked {
    let first = match tokio::time::timeout_at(deadline, stream.next()).await {
        Ok(Some(first)) => first,
        Ok(None) => return Peeked::Chat(Box::pin(futures_util::stream::empty())),
        // `next` is cancel-safe: the translator meets the deadline again.
        Err(_) => return Peeked::Chat(stream),
    };
    let native = matches!(&first, Ok(c) if c.native.is_some());
    let whole: ChatStream = Box::pin(futures_util::stream::iter([first]).chain(stream));
    if native {
        Peeked::Native(whole)
    } else {
        Peeked::Chat(whole)
    }
}

/// The Responses API's events, as they came but for the gateway's response id; the
/// finished response stored (when asked) before `response.completed` goes out;
/// `response.failed` for a failure after the start.
pub(crate) struct Responses {
    meta: Meta,
    store: Option<StoreOnFinish>,
    /// The last event's `sequence_number`.
    seq: u64,
    /// The model the provider's response objects name.
    model: String,
    /// `response.completed`, `response.incomplete` or `response.failed` went out.
    ended: bool,
}

impl Responses {
    pub(crate) fn new(meta: Meta, store: Option<StoreOnFinish>) -> Self {
        let model = meta.echo.model.clone();
        Responses {
            meta,
            store,
            seq: 0,
            model,
            ended: false,
        }
    }

    /// Passes one provider event on.
    async fn pass(&mut self, native: &Value, buf: &mut BytesMut) {
        let mut event = native.clone();
        if let Some(n) = event.get("sequence_number").and_then(Value::as_u64) {
            self.seq = n;
        }
        if let Some(response) = event.get_mut("response") {
            rewrite(&self.meta, response);
            if let Some(m) = response.get("model").and_then(Value::as_str) {
                m.clone_into(&mut self.model);
            }
        }
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if matches!(
            kind,
            "response.completed" | "response.incomplete" | "response.failed"
        ) {
            self.ended = true;
            // Stored before the client sees the end, so a continuation can follow at once.
            if kind != "response.failed"
                && let Some(StoreOnFinish {
                    store,
                    mut template,
                }) = self.store.take()
                && let Some(response) = event.get("response")
            {
                let encoded = serde_json::to_vec(response).map_or(0, |v| v.len());
                template.size = template.size.saturating_add(encoded.saturating_mul(2));
                template.output = response
                    .get("output")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                template.response = response.clone();
                if let Err(e) = store.put(self.meta.id.clone(), template).await {
                    tracing::warn!(error = %e, "the response could not be stored");
                }
            }
        }
        write_event(buf, &event);
    }
}

impl Passthrough for Responses {
    const LAST: &'static str = "response.completed";

    fn event<'a>(&'a mut self, event: &'a Value, buf: &'a mut BytesMut) -> BoxFuture<'a, ()> {
        Box::pin(self.pass(event, buf))
    }

    fn fail(&mut self, e: &Error, buf: &mut BytesMut) {
        self.ended = true;
        let oe = OpenAiError::from_error(e);
        let error = json!({"code": oe.code().unwrap_or("server_error"), "message": oe.message()});
        let response = response_object(
            &self.meta,
            &self.model,
            Status::Failed,
            &[],
            None,
            Some(error),
        );
        self.seq = self.seq.saturating_add(1);
        let event =
            json!({"type": "response.failed", "sequence_number": self.seq, "response": response});
        write_event(buf, &event);
    }

    fn ended(&self) -> bool {
        self.ended
    }
}
