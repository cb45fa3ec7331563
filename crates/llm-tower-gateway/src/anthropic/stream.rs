//! A [`ChatStream`] -> Anthropic's streaming events.
//!
//! Every event is written as `event: NAME\ndata: JSON\n\n`, in Anthropic's order:
//! `message_start` (the message with empty content; `usage.input_tokens` is the
//! gateway's count of the prompt, as the provider's comes only at the end), `ping`, then
//! per content block `content_block_start`, its `content_block_delta`s and
//! `content_block_stop` (block indexes count up from 0), then `message_delta` (stop reason,
//! stop sequence and the provider's usage) and `message_stop`.
//!
//! From the chunks: `reasoning_content` opens (or continues) a `thinking` block
//! (`thinking_delta`); a completed thinking block in `thinking_blocks` sends its
//! `signature_delta` and closes it (a `redacted_thinking` block is a start and a stop);
//! `content` and `refusal` are a `text` block (`text_delta`); each tool call is a
//! `tool_use` block (`{id, name, input: {}}`) followed by `input_json_delta`s with
//! `partial_json`. A block is closed when the next one of another kind (or another tool
//! call) starts. Only the first choice is streamed (Anthropic has one).
//!
//! A failure after the start is one `event: error` with Anthropic's error body, and the
//! stream ends (no `message_stop`); so does a stream still running at its deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use llm_tower_core::{
    ChatChunk, ChatResponse, ChatStream, ChunkChoice, Content, ContentPart, Delta, Error,
    FunctionCallDelta, RequestId, ThinkingBlock, ToolCallDelta, Usage,
};
use pin_project_lite::pin_project;
use serde_json::{Value, json};

use super::error::AnthropicError;
use super::response::{message_id, stop_reason, stop_sequence_of, usage_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing sent yet.
    Start,
    /// `message_start` sent.
    Streaming,
    /// The last event was sent.
    Done,
}

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    /// `streamed`: some of its text came as `reasoning_content`.
    Thinking {
        streamed: bool,
    },
    /// The index of the tool call in the chunks.
    Tool(u32),
}

/// The event writer: the blocks, their indexes, and what `message_delta` will say.
#[derive(Debug)]
struct Encoder {
    buf: BytesMut,
    model: String,
    input_tokens: u64,
    open: Option<Open>,
    /// The index of the open block, or of the next one.
    index: u32,
    finish: Option<String>,
    stop_sequence: Option<String>,
    usage: Option<Usage>,
}

impl Encoder {
    fn event(&mut self, name: &str, data: &Value) {
        self.buf.reserve(64 + name.len());
        self.buf.put_slice(b"event: ");
        self.buf.put_slice(name.as_bytes());
        self.buf.put_slice(b"\ndata: ");
        let mut w = (&mut self.buf).writer();
        if serde_json::to_writer(&mut w, data).is_err() {
            // Unreachable for a `Value`; keep the stream well-formed anyway.
            self.buf.put_slice(b"{}");
        }
        self.buf.put_slice(b"\n\n");
    }

    fn message_start(&mut self, id: &str, model: &str) {
        if !model.is_empty() {
            self.model = model.to_owned();
        }
        let msg = json!({
            "type": "message_start",
            "message": {
                "id": message_id(id),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": self.input_tokens,
                    "output_tokens": 0,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        });
        self.event("message_start", &msg);
        self.event("ping", &json!({"type": "ping"}));
    }

    fn start(&mut self, open: Open, block: Value) {
        self.close();
        let data =
            json!({"type": "content_block_start", "index": self.index, "content_block": block});
        self.event("content_block_start", &data);
        self.open = Some(open);
    }

    fn delta(&mut self, delta: Value) {
        let data = json!({"type": "content_block_delta", "index": self.index, "delta": delta});
        self.event("content_block_delta", &data);
    }

    fn close(&mut self) {
        if self.open.take().is_some() {
            let data = json!({"type": "content_block_stop", "index": self.index});
            self.event("content_block_stop", &data);
            self.index = self.index.saturating_add(1);
        }
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.open != Some(Open::Text) {
            self.start(Open::Text, json!({"type": "text", "text": ""}));
        }
        self.delta(json!({"type": "text_delta", "text": text}));
    }

    fn open_thinking(&mut self) {
        if !matches!(self.open, Some(Open::Thinking { .. })) {
            self.start(
                Open::Thinking { streamed: false },
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            );
        }
    }

    fn thinking_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.open_thinking();
        self.open = Some(Open::Thinking { streamed: true });
        self.delta(json!({"type": "thinking_delta", "thinking": text}));
    }

    fn thinking_block(&mut self, block: &ThinkingBlock) {
        match block {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => {
                self.open_thinking();
                // A block whose text was not streamed before: send it whole.
                if self.open == Some(Open::Thinking { streamed: false }) && !thinking.is_empty() {
                    self.delta(json!({"type": "thinking_delta", "thinking": thinking}));
                }
                if !signature.is_empty() {
                    self.delta(json!({"type": "signature_delta", "signature": signature}));
                }
                self.close();
            }
            ThinkingBlock::RedactedThinking { data } => {
                self.start(
                    Open::Text,
                    json!({"type": "redacted_thinking", "data": data}),
                );
                self.close();
            }
        }
    }

    fn tool_call(&mut self, tc: &ToolCallDelta) {
        let f = tc.function.as_ref();
        let same = self.open == Some(Open::Tool(tc.index)) && tc.id.is_none();
        if !same {
            let id = tc
                .id
                .clone()
                .unwrap_or_else(|| format!("toolu_{}", RequestId::generate().as_str()));
            let name = f.and_then(|f| f.name.as_deref()).unwrap_or_default();
            self.start(
                Open::Tool(tc.index),
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            );
        }
        if let Some(args) = f.and_then(|f| f.arguments.as_deref())
            && !args.is_empty()
        {
            self.delta(json!({"type": "input_json_delta", "partial_json": args}));
        }
    }

    fn choice(&mut self, c: &ChunkChoice) {
        let d = &c.delta;
        if let Some(r) = &d.reasoning_content {
            self.thinking_text(r);
        }
        for b in &d.thinking_blocks {
            self.thinking_block(b);
        }
        if let Some(t) = &d.content {
            self.text(t);
        }
        if let Some(r) = &d.refusal {
            self.text(r);
        }
        for tc in &d.tool_calls {
            self.tool_call(tc);
        }
        if let Some(f) = &c.finish_reason {
            self.finish = Some(f.clone());
        }
    }

    fn chunk(&mut self, chunk: &ChatChunk) {
        if let Some(s) = stop_sequence_of(&chunk.extra) {
            self.stop_sequence = Some(s.to_owned());
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        // Anthropic has one choice; the first one is streamed.
        let first = chunk.choices.iter().map(|c| c.index).min();
        for c in chunk.choices.iter().filter(|c| Some(c.index) == first) {
            self.choice(c);
        }
    }

    fn end(&mut self) {
        self.close();
        let usage = match &self.usage {
            Some(u) => usage_json(u),
            None => json!({"input_tokens": self.input_tokens, "output_tokens": 0}),
        };
        let finish = self.finish.as_deref().or(Some("stop"));
        let data = json!({
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(finish, self.stop_sequence.as_deref()),
                "stop_sequence": self.stop_sequence,
            },
            "usage": usage,
        });
        self.event("message_delta", &data);
        self.event("message_stop", &json!({"type": "message_stop"}));
    }

    fn error(&mut self, e: &Error) {
        let body = AnthropicError::from_error(e).body();
        self.buf.reserve(body.len() + 24);
        self.buf.put_slice(b"event: error\ndata: ");
        self.buf.put_slice(&body);
        self.buf.put_slice(b"\n\n");
    }

    fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

pin_project! {
    /// A `text/event-stream` body of Anthropic's streaming events over a [`ChatStream`]
    /// (see the [module docs](self)). The events of one chunk go out as one body frame as
    /// soon as the chunk arrives.
    pub struct MessagesSseBody {
        #[pin]
        stream: ChatStream,
        state: State,
        enc: Encoder,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl MessagesSseBody {
    /// A body over `stream` for `model` (the model named in `message_start` when the
    /// chunks name none), with the prompt's `input_tokens` for `message_start`.
    pub fn new(stream: ChatStream, model: impl Into<String>, input_tokens: u64) -> Self {
        MessagesSseBody {
            stream,
            state: State::Start,
            enc: Encoder {
                buf: BytesMut::new(),
                model: model.into(),
                input_tokens,
                open: None,
                index: 0,
                finish: None,
                stop_sequence: None,
                usage: None,
            },
            deadline: None,
        }
    }

    /// Ends the stream with an error event if it is still running at `deadline`.
    #[must_use]
    pub fn with_deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline)));
        self
    }
}

impl Body for MessagesSseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if *this.state == State::Done {
                return Poll::Ready(None);
            }
            match this.stream.as_mut().poll_next(cx) {
                Poll::Pending => {
                    if let Some(d) = this.deadline.as_mut()
                        && d.as_mut().poll(cx).is_ready()
                    {
                        *this.state = State::Done;
                        let e = Error::timeout("the stream ran past the gateway's request timeout");
                        this.enc.error(&e);
                        return Poll::Ready(Some(Ok(Frame::data(this.enc.take()))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    if *this.state == State::Start {
                        this.enc.message_start(&chunk.id, &chunk.model);
                        *this.state = State::Streaming;
                    }
                    this.enc.chunk(&chunk);
                    let data = this.enc.take();
                    if data.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "stream failed after its start");
                    *this.state = State::Done;
                    this.enc.error(&e);
                    return Poll::Ready(Some(Ok(Frame::data(this.enc.take()))));
                }
                Poll::Ready(None) => {
                    if *this.state == State::Start {
                        let id = RequestId::generate();
                        let model = this.enc.model.clone();
                        this.enc.message_start(id.as_str(), &model);
                    }
                    *this.state = State::Done;
                    this.enc.end();
                    return Poll::Ready(Some(Ok(Frame::data(this.enc.take()))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A complete answer as a stream (for a provider that answered a streamed request in one
/// piece): its thinking blocks, text, refusal and tool calls in one chunk, the finish in
/// the next, the usage in the last.
pub fn response_stream(c: ChatResponse, usage: Option<Usage>) -> ChatStream {
    let mut chunks = Vec::with_capacity(3);
    let base = || ChatChunk::new(c.id.clone(), c.model.clone(), c.created);
    if let Some(ch) = c.choices.first() {
        let m = &ch.message;
        let content = match &m.content {
            Some(Content::Text(t)) => Some(t.clone()),
            Some(Content::Parts(parts)) => Some(
                parts
                    .iter()
                    .filter_map(|p| match p {
                        ContentPart::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<String>(),
            ),
            None => None,
        };
        let delta = Delta {
            role: Some(m.role),
            content,
            tool_calls: m
                .tool_calls
                .iter()
                .enumerate()
                .map(|(i, call)| ToolCallDelta {
                    extra: call.extra.clone(),
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    id: Some(call.id.clone()),
                    kind: Some(call.kind.clone()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(call.function.arguments.clone()),
                    }),
                })
                .collect(),
            refusal: m.refusal.clone(),
            reasoning_content: if m.thinking_blocks.is_empty() {
                m.reasoning_content.clone()
            } else {
                None
            },
            thinking_blocks: m.thinking_blocks.clone(),
        };
        chunks.push(Ok(
            base().with_choice(ChunkChoice::new(ch.index, delta, None))
        ));
        let mut finish = base().with_choice(ChunkChoice::new(
            ch.index,
            Delta::default(),
            ch.finish_reason.clone(),
        ));
        if let Some(s) = stop_sequence_of(&ch.extra) {
            finish.extra.insert("stop_sequence".into(), json!(s));
        }
        chunks.push(Ok(finish));
    }
    if let Some(u) = usage {
        let mut last = base();
        last.usage = Some(u);
        chunks.push(Ok(last));
    }
    Box::pin(futures_util::stream::iter(chunks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use llm_tower_core::UsageSource;

    fn chunk(delta: Delta, finish: Option<&str>) -> Result<ChatChunk, Error> {
        Ok(
            ChatChunk::new("c1", "claude-x", 0).with_choice(ChunkChoice::new(
                0,
                delta,
                finish.map(str::to_owned),
            )),
        )
    }

    async fn events(chunks: Vec<Result<ChatChunk, Error>>) -> Vec<(String, Value)> {
        let body = MessagesSseBody::new(Box::pin(futures_util::stream::iter(chunks)), "m", 12);
        let bytes = body.collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.ends_with("\n\n"));
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let name = name.strip_prefix("event: ").unwrap().to_owned();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect()
    }

    #[tokio::test]
    async fn thinking_text_and_tools_open_and_close_blocks_in_order() {
        let mut usage_chunk = ChatChunk::new("c1", "claude-x", 0);
        usage_chunk.usage = Some(Usage::new(20, 9, UsageSource::Provider).with_cached(5));
        let ev = events(vec![
            chunk(
                Delta {
                    reasoning_content: Some("hm".into()),
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    reasoning_content: Some("m".into()),
                    thinking_blocks: vec![ThinkingBlock::Thinking {
                        thinking: "hmm".into(),
                        signature: "sig".into(),
                    }],
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    thinking_blocks: vec![ThinkingBlock::RedactedThinking { data: "xx".into() }],
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    content: Some("Hi".into()),
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    tool_calls: vec![ToolCallDelta {
                        extra: Default::default(),
                        index: 0,
                        id: Some("toolu_1".into()),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some("f".into()),
                            arguments: Some("{\"a\"".into()),
                        }),
                    }],
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    tool_calls: vec![ToolCallDelta {
                        index: 0,
                        function: Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(":1}".into()),
                        }),
                        ..ToolCallDelta::default()
                    }],
                    ..Delta::default()
                },
                Some("tool_calls"),
            ),
            Ok(usage_chunk),
        ])
        .await;
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        assert_eq!(ev[0].1["message"]["usage"]["input_tokens"], 12);
        assert_eq!(ev[0].1["message"]["id"], "msg_c1");
        assert_eq!(
            ev[5].1["delta"],
            json!({"type": "signature_delta", "signature": "sig"})
        );
        assert_eq!(
            ev[7].1["content_block"],
            json!({"type": "redacted_thinking", "data": "xx"})
        );
        assert_eq!(ev[7].1["index"], 1);
        assert_eq!(ev[9].1["index"], 2);
        assert_eq!(ev[12].1["content_block"]["name"], "f");
        assert_eq!(ev[12].1["index"], 3);
        assert_eq!(ev[14].1["delta"]["partial_json"], ":1}");
        assert_eq!(ev[16].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(ev[16].1["usage"]["input_tokens"], 15);
        assert_eq!(ev[16].1["usage"]["output_tokens"], 9);
    }

    #[tokio::test]
    async fn a_whole_answer_streams_its_blocks_whole() {
        use llm_tower_core::{ChatChoice, Message, ToolCall};
        let mut m = Message::assistant("Hi");
        m.thinking_blocks = vec![ThinkingBlock::Thinking {
            thinking: "hmm".into(),
            signature: "sig".into(),
        }];
        m.tool_calls = vec![ToolCall::function("toolu_9", "f", r#"{"a":1}"#)];
        let mut choice = ChatChoice::new(0, m, Some("stop".into()));
        choice.extra.insert("stop_sequence".into(), json!("END"));
        let resp = ChatResponse::new("r1", "claude-x", 0, vec![choice]);
        let usage = Usage::new(10, 4, UsageSource::Provider);
        let s = response_stream(resp, Some(usage));
        let body = MessagesSseBody::new(s, "m", 10);
        let text = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let datas: Vec<Value> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.split_once("\ndata: ").unwrap().1).unwrap())
            .collect();
        let deltas: Vec<&Value> = datas
            .iter()
            .filter(|d| d["type"] == "content_block_delta")
            .map(|d| &d["delta"])
            .collect();
        assert_eq!(
            deltas[0],
            &json!({"type": "thinking_delta", "thinking": "hmm"})
        );
        assert_eq!(
            deltas[1],
            &json!({"type": "signature_delta", "signature": "sig"})
        );
        assert_eq!(deltas[2], &json!({"type": "text_delta", "text": "Hi"}));
        assert_eq!(
            deltas[3],
            &json!({"type": "input_json_delta", "partial_json": "{\"a\":1}"})
        );
        let end = datas.iter().find(|d| d["type"] == "message_delta").unwrap();
        assert_eq!(
            end["delta"],
            json!({"stop_reason": "stop_sequence", "stop_sequence": "END"})
        );
        assert_eq!(end["usage"]["output_tokens"], 4);
    }

    #[tokio::test]
    async fn a_failure_after_the_start_is_an_error_event() {
        let ev = events(vec![
            chunk(
                Delta {
                    content: Some("Hi".into()),
                    ..Delta::default()
                },
                None,
            ),
            Err(Error::new(llm_tower_core::ErrorKind::Overloaded, "busy")),
        ])
        .await;
        let (name, data) = ev.last().unwrap();
        assert_eq!(name, "error");
        assert_eq!(data["error"]["type"], "overloaded_error");
        assert!(ev.iter().all(|(n, _)| n != "message_stop"));
    }
}
