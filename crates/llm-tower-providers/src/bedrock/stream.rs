//! ConverseStream: the binary `application/vnd.amazon.eventstream` framing (prelude,
//! headers, payload, CRC32 checks, decoded by `aws-smithy-eventstream`) and its events
//! converted to OpenAI-shaped chunks.
//!
//! - `messageStart` -> a chunk with the assistant role.
//! - `contentBlockStart` with `toolUse` -> a tool-call delta with id and name;
//!   `contentBlockDelta` `text` -> `content`, `toolUse.input` -> argument fragments,
//!   `reasoningContent.text` -> `reasoning_content` fragments (a blank line between two
//!   blocks), `reasoningContent.signature` recorded; at `contentBlockStop` a reasoning
//!   block is emitted whole (text and signature) in `thinking_blocks`.
//! - `messageStop` -> the finishing chunk; `metadata` -> the usage chunk, and the end.
//! - Exception messages (`:message-type` `exception` or `error`) end the stream with the
//!   mapped error.

use std::collections::{HashMap, VecDeque};

use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, BytesMut};
use llm_tower_core::{
    ChatChunk, ChunkChoice, Delta, Error, ErrorKind, FunctionCallDelta, LimitOrigin, Role,
    ThinkingBlock, ToolCallDelta,
};
use serde_json::Value;

use super::convert::{WireUsage, finish_reason};
use crate::error_map;
use crate::http::stream::{Flow, FrameDecoder, StreamParser};
use crate::secret::Secrets;
use crate::sse::SseEvent;

/// The largest frame accepted (the format's own limit is 16 MiB).
pub(crate) const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Prelude (total length, headers length, prelude CRC) plus the message CRC.
const MIN_FRAME: usize = 16;

/// Splits an event-stream body into messages, checking both CRCs of each. Each message
/// becomes an [`SseEvent`] whose `event` is the `:event-type` (or `exception:{type}`,
/// `error:{code}`) and whose `data` is the payload.
#[derive(Debug, Default)]
pub(crate) struct EventStreamDecoder {
    buf: BytesMut,
}

fn transport(msg: String) -> Error {
    Error::new(ErrorKind::Transport, msg)
}

fn header_str<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

impl FrameDecoder for EventStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), Error> {
        self.buf.extend_from_slice(bytes);
        loop {
            let Some(prelude) = self.buf.get(..4) else {
                return Ok(());
            };
            let mut len4 = [0u8; 4];
            len4.copy_from_slice(prelude);
            let total = u32::from_be_bytes(len4) as usize;
            if !(MIN_FRAME..=MAX_FRAME).contains(&total) {
                return Err(transport(format!(
                    "invalid event-stream frame: length {total} outside {MIN_FRAME}..={MAX_FRAME}"
                )));
            }
            if self.buf.len() < total {
                return Ok(());
            }
            let frame = self.buf.split_to(total).freeze();
            let message = read_message_from(frame.chunk()).map_err(|e| {
                transport(format!("corrupt event-stream frame (CRC or framing): {e}"))
            })?;
            out.push(to_event(&message));
        }
    }
}

fn to_event(m: &Message) -> SseEvent {
    let data = String::from_utf8_lossy(m.payload()).into_owned();
    let event = match header_str(m, ":message-type") {
        Some("exception") => format!(
            "exception:{}",
            header_str(m, ":exception-type").unwrap_or("unknown")
        ),
        Some("error") => {
            let code = header_str(m, ":error-code").unwrap_or("unknown");
            let msg = header_str(m, ":error-message").unwrap_or_default();
            return SseEvent {
                event: format!("error:{code}"),
                data: serde_json::json!({ "message": msg }).to_string(),
                id: None,
                retry: None,
            };
        }
        _ => header_str(m, ":event-type").unwrap_or_default().to_owned(),
    };
    SseEvent {
        event,
        data,
        id: None,
        retry: None,
    }
}

/// The error kind of a Bedrock error or exception type (`ThrottlingException`,
/// `throttlingException`, ...), given the message.
pub(crate) fn kind_for_type(kind: &str, message: &str, status: Option<u16>) -> ErrorKind {
    let k = kind.to_ascii_lowercase();
    let k = k.trim_end_matches("exception");
    match k {
        "throttling" | "toomanyrequests" => ErrorKind::RateLimited,
        "validation" if is_context_length(message) => ErrorKind::ContextLengthExceeded,
        "validation" | "resourcenotfound" | "serializationexception" | "conflict" => {
            ErrorKind::InvalidRequest
        }
        "accessdenied"
        | "unrecognizedclient"
        | "invalidsignature"
        | "expiredtoken"
        | "incompletesignature"
        | "missingauthenticationtoken" => ErrorKind::Unauthorized,
        "modelnotready" | "serviceunavailable" => ErrorKind::Overloaded,
        "modeltimeout" => ErrorKind::Timeout,
        "internalserver" => ErrorKind::Provider { status: 500 },
        "modelstreamerror" | "modelerror" => ErrorKind::Provider {
            status: status.filter(|s| *s >= 400).unwrap_or(424),
        },
        _ => match status {
            Some(s) => {
                let body = error_map::ErrorBody {
                    message: Some(message.to_owned()),
                    kind: None,
                    code: None,
                    status: None,
                    retry_delay: None,
                };
                error_map::kind_for_status(s, &body)
            }
            None => ErrorKind::Provider { status: 500 },
        },
    }
}

/// Bedrock's and its models' words for a prompt too long for the context window.
pub(crate) fn is_context_length(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "input is too long",
        "prompt is too long",
        "too many input tokens",
        "too many total text bytes",
        "exceed context limit",
        "exceeds the context window",
        "maximum context length",
        "context length",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// The error of a Bedrock error type and message.
pub(crate) fn bedrock_error(
    kind_name: &str,
    message: &str,
    status: Option<u16>,
    secret: Option<&Secrets>,
) -> Error {
    let kind = kind_for_type(kind_name, message, status);
    let msg = error_map::clean_message(message, secret);
    let name: String = kind_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(60)
        .collect();
    let text = match (status, name.is_empty()) {
        (Some(s), false) => format!("HTTP {s}: {name}: {msg}"),
        (Some(s), true) => format!("HTTP {s}: {msg}"),
        (None, false) => format!("error in stream: {name}: {msg}"),
        (None, true) => format!("error in stream: {msg}"),
    };
    let mut e = Error::new(kind, text);
    if kind == ErrorKind::RateLimited {
        e = e.with_origin(LimitOrigin::Provider);
    }
    e
}

/// A content block being streamed.
enum Open {
    /// A tool use and its tool-call ordinal.
    Tool(u32),
    /// The call of the tool standing for `response_format`: its input is the answer text.
    Json,
    /// A reasoning block: text and signature so far, whether its text was emitted.
    Reasoning {
        text: String,
        signature: String,
        redacted: Option<String>,
        emitted: bool,
    },
}

/// Converts ConverseStream events to chunks.
pub(crate) struct BedrockStreamParser {
    id: String,
    model: String,
    created: u64,
    blocks: HashMap<u64, Open>,
    next_tool: u32,
    reasoning_emitted: bool,
    secret: Option<Secrets>,
    /// The tool standing for `response_format`, if any.
    json_tool: Option<String>,
    /// Whether that tool was called.
    answered_in_json: bool,
}

impl BedrockStreamParser {
    pub fn new(id: String, model: String, created: u64, secret: Option<Secrets>) -> Self {
        BedrockStreamParser {
            id,
            model,
            created,
            blocks: HashMap::new(),
            next_tool: 0,
            reasoning_emitted: false,
            secret,
            json_tool: None,
            answered_in_json: false,
        }
    }

    /// Streams calls of `tool` (the tool standing for `response_format`) as content.
    #[must_use]
    pub fn json_tool(mut self, tool: Option<String>) -> Self {
        self.json_tool = tool;
        self
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> ChatChunk {
        ChatChunk::new(self.id.clone(), self.model.clone(), self.created)
            .with_choice(ChunkChoice::new(0, delta, finish_reason))
    }

    fn delta_chunk(&self, delta: Delta) -> ChatChunk {
        self.chunk(delta, None)
    }

    /// A tool call's start: a tool-call delta, or nothing for the `response_format` tool.
    fn tool_start(&mut self, index: u64, start: &Value) -> Option<ChatChunk> {
        let name = start.get("name").and_then(Value::as_str);
        if name.is_some() && name == self.json_tool.as_deref() {
            self.blocks.insert(index, Open::Json);
            self.answered_in_json = true;
            return None;
        }
        let ordinal = self.next_tool;
        self.next_tool = self.next_tool.saturating_add(1);
        self.blocks.insert(index, Open::Tool(ordinal));
        let s = |k: &str| start.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(self.delta_chunk(Delta {
            tool_calls: vec![ToolCallDelta {
                index: ordinal,
                id: s("toolUseId"),
                kind: Some("function".to_owned()),
                function: Some(FunctionCallDelta {
                    name: s("name"),
                    arguments: Some(String::new()),
                }),
                ..ToolCallDelta::default()
            }],
            ..Delta::default()
        }))
    }

    fn reasoning_block(&mut self, index: u64) -> &mut Open {
        self.blocks.entry(index).or_insert(Open::Reasoning {
            text: String::new(),
            signature: String::new(),
            redacted: None,
            emitted: false,
        })
    }

    fn on_delta(&mut self, index: u64, delta: &Value, out: &mut VecDeque<ChatChunk>) {
        if let Some(t) = delta.get("text").and_then(Value::as_str) {
            if !t.is_empty() {
                out.push_back(self.delta_chunk(Delta {
                    content: Some(t.to_owned()),
                    ..Delta::default()
                }));
            }
        } else if let Some(tu) = delta.get("toolUse") {
            let input = tu.get("input").and_then(Value::as_str).unwrap_or_default();
            let ordinal = match self.blocks.get(&index) {
                Some(Open::Tool(o)) => *o,
                Some(Open::Json) => {
                    if !input.is_empty() {
                        out.push_back(self.delta_chunk(Delta {
                            content: Some(input.to_owned()),
                            ..Delta::default()
                        }));
                    }
                    return;
                }
                // A delta without its start: open the call now.
                _ => {
                    out.extend(self.tool_start(index, &Value::Null));
                    match self.blocks.get(&index) {
                        Some(Open::Tool(o)) => *o,
                        _ => return,
                    }
                }
            };
            if !input.is_empty() {
                out.push_back(self.delta_chunk(Delta {
                    tool_calls: vec![ToolCallDelta {
                        index: ordinal,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(input.to_owned()),
                        }),
                        ..ToolCallDelta::default()
                    }],
                    ..Delta::default()
                }));
            }
        } else if let Some(rc) = delta.get("reasoningContent") {
            let reasoning_emitted = self.reasoning_emitted;
            let mut fragment = None;
            if let Open::Reasoning {
                text,
                signature,
                redacted,
                emitted,
            } = self.reasoning_block(index)
            {
                if let Some(t) = rc.get("text").and_then(Value::as_str)
                    && !t.is_empty()
                {
                    text.push_str(t);
                    fragment = Some(if !*emitted && reasoning_emitted {
                        format!("\n\n{t}")
                    } else {
                        t.to_owned()
                    });
                    *emitted = true;
                }
                if let Some(s) = rc.get("signature").and_then(Value::as_str) {
                    signature.push_str(s);
                }
                if let Some(r) = rc.get("redactedContent").and_then(Value::as_str) {
                    redacted.get_or_insert_with(String::new).push_str(r);
                }
            }
            if let Some(f) = fragment {
                self.reasoning_emitted = true;
                out.push_back(self.delta_chunk(Delta {
                    reasoning_content: Some(f),
                    ..Delta::default()
                }));
            }
        }
    }

    fn on_stop(&mut self, index: u64, out: &mut VecDeque<ChatChunk>) {
        if let Some(Open::Reasoning {
            text,
            signature,
            redacted,
            ..
        }) = self.blocks.remove(&index)
        {
            let block = match redacted {
                Some(data) => ThinkingBlock::RedactedThinking { data },
                None => ThinkingBlock::Thinking {
                    thinking: text,
                    signature,
                },
            };
            out.push_back(self.delta_chunk(Delta {
                thinking_blocks: vec![block],
                ..Delta::default()
            }));
        }
    }
}

fn index_of(v: &Value) -> u64 {
    v.get("contentBlockIndex")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

impl StreamParser for BedrockStreamParser {
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow, Error> {
        if let Some(kind) = event
            .event
            .strip_prefix("exception:")
            .or_else(|| event.event.strip_prefix("error:"))
        {
            let message = serde_json::from_str::<Value>(&event.data)
                .ok()
                .and_then(|v| {
                    v.get("message")
                        .or_else(|| v.get("Message"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| event.data.clone());
            return Err(bedrock_error(kind, &message, None, self.secret.as_ref()));
        }
        let v: Value = if event.data.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_str(&event.data)
                .map_err(|e| error_map::invalid_body("stream event", &e))?
        };
        match event.event.as_str() {
            "messageStart" => {
                out.push_back(self.delta_chunk(Delta {
                    role: Some(Role::Assistant),
                    ..Delta::default()
                }));
            }
            "contentBlockStart" => {
                let index = index_of(&v);
                if let Some(tu) = v.get("start").and_then(|s| s.get("toolUse")) {
                    let c = self.tool_start(index, tu);
                    out.extend(c);
                }
            }
            "contentBlockDelta" => {
                if let Some(d) = v.get("delta") {
                    self.on_delta(index_of(&v), d, out);
                }
            }
            "contentBlockStop" => self.on_stop(index_of(&v), out),
            "messageStop" => {
                let stop = v
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("end_turn");
                // The answer came as the response_format tool's input: a plain stop.
                let finish = if stop == "tool_use" && self.answered_in_json && self.next_tool == 0 {
                    "stop".to_owned()
                } else {
                    finish_reason(stop)
                };
                let mut c = self.chunk(Delta::default(), Some(finish));
                if let Some(f) = v.get("additionalModelResponseFields") {
                    c.extra
                        .insert("additionalModelResponseFields".into(), f.clone());
                }
                out.push_back(c);
            }
            "metadata" => {
                let usage = v
                    .get("usage")
                    .cloned()
                    .map(serde_json::from_value::<WireUsage>)
                    .transpose()
                    .map_err(|e| error_map::invalid_body("stream usage", &e))?;
                let mut c = ChatChunk::new(self.id.clone(), self.model.clone(), self.created);
                c.usage = usage.map(|u| u.usage());
                if let Some(m) = v.get("metrics") {
                    c.extra.insert("metrics".into(), m.clone());
                }
                out.push_back(c);
                return Ok(Flow::Done);
            }
            // Unknown events are skipped.
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn incomplete(&self) -> Error {
        Error::new(
            ErrorKind::Transport,
            "stream ended before its metadata event (truncated ConverseStream)",
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;

    fn frame(event: &str, payload: &str) -> Vec<u8> {
        let m = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event.to_owned().into()),
            ));
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap();
        out
    }

    #[test]
    fn decodes_split_frames_and_rejects_corruption() {
        let mut bytes = frame("messageStart", r#"{"role":"assistant"}"#);
        bytes.extend(frame("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#));
        let mut d = EventStreamDecoder::default();
        let mut out = Vec::new();
        for b in &bytes {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].event, "messageStart");
        assert_eq!(out[1].data, r#"{"delta":{"text":"hi"}}"#);

        let mut bad = frame("messageStart", r#"{"role":"assistant"}"#);
        let n = bad.len();
        bad[n - 6] ^= 0x20;
        let e = EventStreamDecoder::default()
            .feed(&bad, &mut Vec::new())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transport);
        assert!(
            e.message().contains("corrupt event-stream frame"),
            "{}",
            e.message()
        );

        // A hostile length is refused before anything is buffered.
        let e = EventStreamDecoder::default()
            .feed(&[0xff, 0xff, 0xff, 0xff, 0, 0], &mut Vec::new())
            .unwrap_err();
        assert!(e.message().contains("length"));
        let e = EventStreamDecoder::default()
            .feed(&[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], &mut Vec::new())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transport);
    }

    #[test]
    fn every_prefix_of_garbage_is_an_error_or_incomplete_never_a_panic() {
        let good = frame("contentBlockDelta", r#"{"delta":{"text":"hi"}}"#);
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                let _ = EventStreamDecoder::default().feed(&b, &mut Vec::new());
            }
        }
    }
}
