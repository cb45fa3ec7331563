//! Streams a provider wrote in the client's own wire format (its events in
//! `ChatChunk::native`), passed on as they came: the loop both native formats share
//! (the Responses API, `responses::native`; Anthropic's Messages API, `anthropic::native`).

use std::convert::Infallible;

use bytes::{BufMut, Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use llm_tower_core::{ChatStream, Error, ErrorKind};
use serde_json::Value;
use tokio::time::Instant;

/// What one wire format does with the provider's events.
pub(crate) trait Passthrough: Send + 'static {
    /// The event that ends a complete stream (`response.completed`, `message_stop`), for
    /// the error of a stream that stopped before it.
    const LAST: &'static str;

    /// Writes one provider event into `buf` (rewritten as the format needs; a format may
    /// store the response on its last event, hence the future).
    fn event<'a>(&'a mut self, event: &'a Value, buf: &'a mut BytesMut) -> BoxFuture<'a, ()>;

    /// Writes the format's error event for a failure after the start.
    fn fail(&mut self, e: &Error, buf: &mut BytesMut);

    /// Whether the provider's terminal event (success or failure) went out.
    fn ended(&self) -> bool;
}

/// `event: {type}` and `data: {event}`.
pub(crate) fn write_event(buf: &mut BytesMut, event: &Value) {
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    buf.reserve(256);
    buf.put_slice(b"event: ");
    buf.put_slice(kind.as_bytes());
    buf.put_slice(b"\ndata: ");
    let mut w = buf.writer();
    if serde_json::to_writer(&mut w, event).is_err() {
        w.get_mut().put_slice(b"{}");
    }
    w.get_mut().put_slice(b"\n\n");
}

struct Run<P> {
    format: P,
    stream: ChatStream,
    deadline: Instant,
    done: bool,
    buf: BytesMut,
}

impl<P: Passthrough> Run<P> {
    /// The format's error event, unless the stream already ended.
    fn fail(&mut self, e: &Error) {
        if !self.format.ended() {
            self.format.fail(e, &mut self.buf);
        }
        self.done = true;
    }
}

/// The SSE body: the provider's events as they come, which must end by `deadline`.
/// Chunks without an event (a layer's own, such as a counted usage chunk) are left out.
pub(crate) fn events<P: Passthrough>(
    format: P,
    stream: ChatStream,
    deadline: Instant,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let run = Run {
        format,
        stream,
        deadline,
        done: false,
        buf: BytesMut::new(),
    };
    futures_util::stream::unfold(run, |mut run| async move {
        if run.done {
            return None;
        }
        loop {
            match tokio::time::timeout_at(run.deadline, run.stream.next()).await {
                Err(_) => run.fail(&Error::timeout(
                    "the stream ran past the gateway's request timeout",
                )),
                Ok(Some(Ok(chunk))) => {
                    if let Some(native) = &chunk.native {
                        run.format.event(native, &mut run.buf).await;
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "stream failed after its start");
                    run.fail(&e);
                }
                Ok(None) => run.fail(&Error::new(
                    ErrorKind::Transport,
                    format!("the provider's stream ended before {}", P::LAST),
                )),
            }
            let bytes = run.buf.split().freeze();
            if !bytes.is_empty() || run.done {
                return Some((Ok(bytes), run));
            }
        }
    })
}
