//! Responses a provider wrote in the Responses API itself (OpenAI, Azure's v1 API: see
//! `llm_tower_core::ResponsesBody`), passed on as they came: the object or every event,
//! with the gateway's response id (the one `GET /v1/responses/{id}` and
//! `previous_response_id` know) in place of the provider's.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use llm_tower_core::{ChatStream, Error, ErrorKind};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::response::{Meta, Status, response_object};
use super::stream::StoreOnFinish;
use crate::openai_error::OpenAiError;

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

struct Run {
    meta: Meta,
    stream: ChatStream,
    deadline: Instant,
    store: Option<StoreOnFinish>,
    /// The last event's `sequence_number`.
    seq: u64,
    /// The model the provider's response objects name.
    model: String,
    /// `response.completed`, `response.incomplete` or `response.failed` went out.
    ended: bool,
    done: bool,
    buf: BytesMut,
}

impl Run {
    fn write(&mut self, kind: &str, event: &Value) {
        self.buf.reserve(256);
        self.buf.put_slice(b"event: ");
        self.buf.put_slice(kind.as_bytes());
        self.buf.put_slice(b"\ndata: ");
        let mut w = (&mut self.buf).writer();
        if serde_json::to_writer(&mut w, event).is_err() {
            self.buf.put_slice(b"{}");
        }
        self.buf.put_slice(b"\n\n");
    }

    /// `response.failed` after `e`, unless the stream already ended.
    fn fail(&mut self, e: &Error) {
        if self.ended {
            return;
        }
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
        self.write("response.failed", &event);
    }

    /// Passes one provider event on.
    async fn event(&mut self, native: &Value) {
        let mut event = native.clone();
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
            .to_owned();
        if let Some(n) = event.get("sequence_number").and_then(Value::as_u64) {
            self.seq = n;
        }
        if let Some(response) = event.get_mut("response") {
            rewrite(&self.meta, response);
            if let Some(m) = response.get("model").and_then(Value::as_str) {
                m.clone_into(&mut self.model);
            }
        }
        let terminal = matches!(
            kind.as_str(),
            "response.completed" | "response.incomplete" | "response.failed"
        );
        if terminal {
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
        self.write(&kind, &event);
    }
}

/// The SSE body: the provider's events as they come, which must end by `deadline`.
/// Chunks without an event (a layer's own, such as a counted usage chunk) are left out.
pub(crate) fn events(
    meta: Meta,
    stream: ChatStream,
    deadline: Instant,
    store: Option<StoreOnFinish>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let model = meta.echo.model.clone();
    let run = Run {
        meta,
        stream,
        deadline,
        store,
        seq: 0,
        model,
        ended: false,
        done: false,
        buf: BytesMut::new(),
    };
    futures_util::stream::unfold(run, |mut run| async move {
        if run.done {
            return None;
        }
        loop {
            match tokio::time::timeout_at(run.deadline, run.stream.next()).await {
                Err(_) => {
                    run.fail(&Error::timeout(
                        "the stream ran past the gateway's request timeout",
                    ));
                    run.done = true;
                }
                Ok(Some(Ok(chunk))) => {
                    if let Some(native) = chunk.native.as_ref().map(Arc::clone) {
                        run.event(&native).await;
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "stream failed after its start");
                    run.fail(&e);
                    run.done = true;
                }
                Ok(None) => {
                    run.fail(&Error::new(
                        ErrorKind::Transport,
                        "the provider's stream ended before response.completed",
                    ));
                    run.done = true;
                }
            }
            let bytes = run.buf.split().freeze();
            if !bytes.is_empty() || run.done {
                return Some((Ok(bytes), run));
            }
        }
    })
}
