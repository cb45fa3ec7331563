//! Answers an Anthropic provider wrote for a client that speaks Anthropic's Messages API
//! too (`llm_tower_core::AnthropicMessagesClient`): its message object, or every stream
//! event, passed on as it came, so nothing the gateway does not model is lost (server
//! tool blocks and their results, citations, whatever Anthropic adds next).

use bytes::{BufMut, BytesMut};
use futures_util::future::BoxFuture;
use llm_tower_core::Error;
use serde_json::Value;

use super::error::AnthropicError;
use crate::passthrough::{Passthrough, write_event};

/// Anthropic's events, as they came; `event: error` for a failure after the start.
#[derive(Default)]
pub(crate) struct Messages {
    /// `message_stop` or an `error` event went out.
    ended: bool,
}

impl Passthrough for Messages {
    const LAST: &'static str = "message_stop";

    fn event<'a>(&'a mut self, event: &'a Value, buf: &'a mut BytesMut) -> BoxFuture<'a, ()> {
        if matches!(
            event.get("type").and_then(Value::as_str),
            Some("message_stop" | "error")
        ) {
            self.ended = true;
        }
        write_event(buf, event);
        Box::pin(std::future::ready(()))
    }

    fn fail(&mut self, e: &Error, buf: &mut BytesMut) {
        self.ended = true;
        buf.put_slice(b"event: error\ndata: ");
        buf.put_slice(&AnthropicError::from_error(e).body());
        buf.put_slice(b"\n\n");
    }

    fn ended(&self) -> bool {
        self.ended
    }
}
