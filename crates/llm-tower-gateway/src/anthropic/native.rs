//! Answers an Anthropic provider wrote for a client that speaks Anthropic's Messages API
//! too (`llm_tower_core::AnthropicMessagesClient`): its message object, or every stream
//! event, passed on as it came, so nothing the gateway does not model is lost (server
//! tool blocks and their results, citations, whatever Anthropic adds next).

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use llm_tower_core::{ChatStream, Error, ErrorKind};
use serde_json::Value;
use tokio::time::Instant;

use super::error::AnthropicError;

struct Run {
    stream: ChatStream,
    deadline: Instant,
    /// `message_stop` or an `error` event went out.
    ended: bool,
    done: bool,
    buf: BytesMut,
}

impl Run {
    fn event(&mut self, event: &Value) {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        if matches!(kind, "message_stop" | "error") {
            self.ended = true;
        }
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

    /// One `error` event, unless the stream already ended.
    fn fail(&mut self, e: &Error) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.buf.put_slice(b"event: error\ndata: ");
        self.buf.put_slice(&AnthropicError::from_error(e).body());
        self.buf.put_slice(b"\n\n");
    }
}

/// The SSE body: the provider's events as they come, which must end by `deadline`.
/// Chunks without an event (a layer's own) are left out.
pub(crate) fn events(
    stream: ChatStream,
    deadline: Instant,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let run = Run {
        stream,
        deadline,
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
                    if let Some(native) = &chunk.native {
                        run.event(native);
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
                        "the provider's stream ended before message_stop",
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
