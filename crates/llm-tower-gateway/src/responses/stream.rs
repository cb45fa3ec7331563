//! A chat stream as Responses API server-sent events.
//!
//! `response.created`, `response.in_progress`, then per output item
//! `response.output_item.added`, its deltas (`response.reasoning_summary_text.delta`,
//! `response.output_text.delta`, `response.refusal.delta`,
//! `response.function_call_arguments.delta`) with their `added`/`done` companions, and
//! `response.output_item.done`; last `response.completed` (or `response.incomplete`) with
//! the whole response and its usage, or `response.failed` when the stream breaks. Every
//! event has a `sequence_number`; there is no `[DONE]`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;
use llm_tower_core::{
    ChatChunk, ChatResponse, ChatStream, Error, ThinkingBlock, ToolCallDelta, Usage,
};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::response::{
    Meta, Status, call_item, message_item, new_id, reasoning_item, refusal_part, response_object,
    text_part,
};
use super::store::{ResponseStore, StoredResponse};
use crate::openai_error::OpenAiError;

struct OpenReasoning {
    index: usize,
    id: String,
    text: String,
    blocks: Vec<ThinkingBlock>,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum PartKind {
    Text,
    Refusal,
}

struct OpenMessage {
    index: usize,
    id: String,
    parts: Vec<Value>,
    part: Option<(PartKind, String)>,
}

struct OpenCall {
    chat_index: u32,
    index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// Turns chat chunks into Responses events.
pub(crate) struct Translator {
    meta: Meta,
    model: String,
    seq: u64,
    /// Finished items by output index.
    output: Vec<Option<Value>>,
    reasoning: Option<OpenReasoning>,
    message: Option<OpenMessage>,
    calls: Vec<OpenCall>,
    finish: Option<String>,
    usage: Option<Usage>,
    buf: BytesMut,
}

impl Translator {
    pub(crate) fn new(meta: Meta) -> Self {
        let model = meta.echo.model.clone();
        Translator {
            meta,
            model,
            seq: 0,
            output: Vec::new(),
            reasoning: None,
            message: None,
            calls: Vec::new(),
            finish: None,
            usage: None,
            buf: BytesMut::new(),
        }
    }

    fn emit(&mut self, kind: &str, mut data: Value) {
        if let Value::Object(m) = &mut data {
            m.insert("type".into(), Value::String(kind.to_owned()));
            m.insert("sequence_number".into(), Value::from(self.seq));
        }
        self.seq += 1;
        self.buf.reserve(256);
        self.buf.put_slice(b"event: ");
        self.buf.put_slice(kind.as_bytes());
        self.buf.put_slice(b"\ndata: ");
        let mut w = (&mut self.buf).writer();
        if serde_json::to_writer(&mut w, &data).is_err() {
            self.buf.put_slice(b"{}");
        }
        self.buf.put_slice(b"\n\n");
    }

    /// The events written since the last call.
    pub(crate) fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    fn next_index(&mut self) -> usize {
        self.output.push(None);
        self.output.len() - 1
    }

    fn snapshot(&self, status: Status, error: Option<Value>) -> Value {
        let output: Vec<Value> = self.output.iter().flatten().cloned().collect();
        response_object(
            &self.meta,
            &self.model,
            status,
            &output,
            self.usage.as_ref(),
            error,
        )
    }

    /// `response.created` and `response.in_progress`.
    pub(crate) fn start(&mut self) {
        let r = self.snapshot(Status::InProgress, None);
        self.emit("response.created", json!({"response": r}));
        let r = self.snapshot(Status::InProgress, None);
        self.emit("response.in_progress", json!({"response": r}));
    }

    fn open_reasoning(&mut self) {
        if self.reasoning.is_some() {
            return;
        }
        self.close_message();
        let index = self.next_index();
        let id = new_id("rs");
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": {"type": "reasoning", "id": id, "summary": []}}),
        );
        self.reasoning = Some(OpenReasoning {
            index,
            id,
            text: String::new(),
            blocks: Vec::new(),
        });
    }

    fn close_reasoning(&mut self) {
        let Some(r) = self.reasoning.take() else {
            return;
        };
        if !r.text.is_empty() {
            let part = json!({"type": "summary_text", "text": r.text});
            self.emit(
                "response.reasoning_summary_text.done",
                json!({"item_id": r.id, "output_index": r.index, "summary_index": 0, "text": r.text}),
            );
            self.emit(
                "response.reasoning_summary_part.done",
                json!({"item_id": r.id, "output_index": r.index, "summary_index": 0, "part": part}),
            );
        }
        let item = reasoning_item(&r.id, &r.text, &r.blocks);
        self.emit(
            "response.output_item.done",
            json!({"output_index": r.index, "item": item}),
        );
        if let Some(slot) = self.output.get_mut(r.index) {
            *slot = Some(item);
        }
    }

    fn reasoning_delta(&mut self, delta: &str) {
        self.open_reasoning();
        let Some(r) = self.reasoning.as_mut() else {
            return;
        };
        let first = r.text.is_empty();
        r.text.push_str(delta);
        let (id, index) = (r.id.clone(), r.index);
        if first {
            self.emit(
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": index, "summary_index": 0,
                       "part": {"type": "summary_text", "text": ""}}),
            );
        }
        self.emit(
            "response.reasoning_summary_text.delta",
            json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": delta}),
        );
    }

    fn close_part(&mut self) {
        let Some(m) = self.message.as_mut() else {
            return;
        };
        let Some((kind, text)) = m.part.take() else {
            return;
        };
        let (id, index, content_index) = (m.id.clone(), m.index, m.parts.len());
        let part = match kind {
            PartKind::Text => text_part(&text),
            PartKind::Refusal => refusal_part(&text),
        };
        m.parts.push(part.clone());
        match kind {
            PartKind::Text => self.emit(
                "response.output_text.done",
                json!({"item_id": id, "output_index": index, "content_index": content_index,
                       "text": text, "logprobs": []}),
            ),
            PartKind::Refusal => self.emit(
                "response.refusal.done",
                json!({"item_id": id, "output_index": index, "content_index": content_index,
                       "refusal": text}),
            ),
        }
        self.emit(
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": content_index, "part": part}),
        );
    }

    fn close_message(&mut self) {
        self.close_part();
        let Some(m) = self.message.take() else {
            return;
        };
        let status = Status::from_finish(self.finish.as_deref()).item_status();
        let item = message_item(&m.id, status, m.parts);
        self.emit(
            "response.output_item.done",
            json!({"output_index": m.index, "item": item}),
        );
        if let Some(slot) = self.output.get_mut(m.index) {
            *slot = Some(item);
        }
    }

    fn content_delta(&mut self, kind: PartKind, delta: &str) {
        self.close_reasoning();
        if self.message.is_none() {
            let index = self.next_index();
            let id = new_id("msg");
            self.emit(
                "response.output_item.added",
                json!({"output_index": index, "item": message_item(&id, "in_progress", Vec::new())}),
            );
            self.message = Some(OpenMessage {
                index,
                id,
                parts: Vec::new(),
                part: None,
            });
        }
        if self
            .message
            .as_ref()
            .is_some_and(|m| m.part.as_ref().is_some_and(|(k, _)| *k != kind))
        {
            self.close_part();
        }
        let Some(m) = self.message.as_mut() else {
            return;
        };
        let (id, index, content_index) = (m.id.clone(), m.index, m.parts.len());
        let opened = m.part.is_none();
        match &mut m.part {
            Some((_, text)) => text.push_str(delta),
            None => m.part = Some((kind, delta.to_owned())),
        }
        if opened {
            let part = match kind {
                PartKind::Text => text_part(""),
                PartKind::Refusal => refusal_part(""),
            };
            self.emit(
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": content_index, "part": part}),
            );
        }
        match kind {
            PartKind::Text => self.emit(
                "response.output_text.delta",
                json!({"item_id": id, "output_index": index, "content_index": content_index,
                       "delta": delta, "logprobs": []}),
            ),
            PartKind::Refusal => self.emit(
                "response.refusal.delta",
                json!({"item_id": id, "output_index": index, "content_index": content_index,
                       "delta": delta}),
            ),
        }
    }

    fn call_delta(&mut self, d: &ToolCallDelta) {
        let pos = match self.calls.iter().position(|c| c.chat_index == d.index) {
            Some(p) => p,
            None => {
                self.close_reasoning();
                self.close_message();
                let index = self.next_index();
                let f = d.function.as_ref();
                let call = OpenCall {
                    chat_index: d.index,
                    index,
                    id: new_id("fc"),
                    call_id: d.id.clone().unwrap_or_else(|| new_id("call")),
                    name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
                    arguments: String::new(),
                };
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": index, "item": {
                        "type": "function_call", "id": call.id, "call_id": call.call_id,
                        "name": call.name, "arguments": "", "status": "in_progress"}}),
                );
                self.calls.push(call);
                self.calls.len() - 1
            }
        };
        let Some(args) = d
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_deref())
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let Some(c) = self.calls.get_mut(pos) else {
            return;
        };
        c.arguments.push_str(args);
        let (id, index) = (c.id.clone(), c.index);
        self.emit(
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": args}),
        );
    }

    fn close_calls(&mut self) {
        for c in std::mem::take(&mut self.calls) {
            self.emit(
                "response.function_call_arguments.done",
                json!({"item_id": c.id, "output_index": c.index, "name": c.name, "arguments": c.arguments}),
            );
            let call = llm_tower_core::ToolCall::function(c.call_id, c.name, c.arguments);
            let item = call_item(&c.id, &call, "completed");
            self.emit(
                "response.output_item.done",
                json!({"output_index": c.index, "item": item}),
            );
            if let Some(slot) = self.output.get_mut(c.index) {
                *slot = Some(item);
            }
        }
    }

    /// The events of one chunk (its first choice only: `n` is always 1 here).
    pub(crate) fn chunk(&mut self, chunk: &ChatChunk) {
        if !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return;
        };
        let d = &choice.delta;
        if !d.thinking_blocks.is_empty() {
            if self.reasoning.is_none() && self.message.is_none() && self.calls.is_empty() {
                self.open_reasoning();
            }
            match self.reasoning.as_mut() {
                Some(r) => r.blocks.extend(d.thinking_blocks.iter().cloned()),
                None => tracing::debug!("thinking blocks after the answer started: dropped"),
            }
        }
        if let Some(r) = d.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
            self.reasoning_delta(r);
        }
        if let Some(t) = d.content.as_deref().filter(|t| !t.is_empty()) {
            self.content_delta(PartKind::Text, t);
        }
        if let Some(t) = d.refusal.as_deref().filter(|t| !t.is_empty()) {
            self.content_delta(PartKind::Refusal, t);
        }
        for call in &d.tool_calls {
            self.call_delta(call);
        }
        if let Some(f) = &choice.finish_reason {
            self.finish = Some(f.clone());
        }
    }

    /// Closes every item; `response.completed` (or `response.incomplete`). Returns the
    /// final response object and its output items.
    pub(crate) fn finish(&mut self) -> (Value, Vec<Value>) {
        self.close_reasoning();
        self.close_message();
        self.close_calls();
        let status = Status::from_finish(self.finish.as_deref());
        let response = self.snapshot(status, None);
        let kind = match status {
            Status::Incomplete(_) => "response.incomplete",
            _ => "response.completed",
        };
        self.emit(kind, json!({"response": response}));
        let output = self.output.iter().flatten().cloned().collect();
        (response, output)
    }

    /// `response.failed` for an error after the start.
    pub(crate) fn fail(&mut self, e: &Error) {
        let oe = OpenAiError::from_error(e);
        let error = json!({"code": oe.code().unwrap_or("server_error"), "message": oe.message()});
        let response = self.snapshot(Status::Failed, Some(error));
        self.emit("response.failed", json!({"response": response}));
    }
}

/// A chat response in one piece as a stream (a provider that cannot stream).
pub(crate) fn one_piece(c: ChatResponse, usage: Option<Usage>) -> ChatStream {
    let chunks = llm_tower_core::response_chunks(&c, usage);
    Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
}

/// Where a finished streamed response is stored.
pub(crate) struct StoreOnFinish {
    pub store: Arc<dyn ResponseStore>,
    pub template: StoredResponse,
}

struct Run {
    t: Translator,
    stream: ChatStream,
    deadline: Instant,
    store: Option<StoreOnFinish>,
    started: bool,
    done: bool,
}

/// The SSE body: the events of `stream`, which must end by `deadline`. A finished
/// response is stored (when `store` is given) before `response.completed` goes out, so a
/// client that reads it back at once finds it.
pub(crate) fn events(
    t: Translator,
    stream: ChatStream,
    deadline: Instant,
    store: Option<StoreOnFinish>,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let run = Run {
        t,
        stream,
        deadline,
        store,
        started: false,
        done: false,
    };
    futures_util::stream::unfold(run, |mut run| async move {
        if run.done {
            return None;
        }
        if !run.started {
            run.started = true;
            run.t.start();
            return Some((Ok(run.t.take()), run));
        }
        loop {
            match tokio::time::timeout_at(run.deadline, run.stream.next()).await {
                Err(_) => {
                    run.t.fail(&Error::timeout(
                        "the stream ran past the gateway's request timeout",
                    ));
                    run.done = true;
                }
                Ok(Some(Ok(chunk))) => run.t.chunk(&chunk),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "stream failed after its start");
                    run.t.fail(&e);
                    run.done = true;
                }
                Ok(None) => {
                    let (response, output) = run.t.finish();
                    if let Some(StoreOnFinish {
                        store,
                        mut template,
                    }) = run.store.take()
                    {
                        let encoded = serde_json::to_vec(&response).map_or(0, |v| v.len());
                        template.size = template.size.saturating_add(encoded.saturating_mul(2));
                        template.output = output;
                        template.response = response;
                        let id = run.t.meta.id.clone();
                        if let Err(e) = store.put(id, template).await {
                            tracing::warn!(error = %e, "the response could not be stored");
                        }
                    }
                    run.done = true;
                }
            }
            let bytes = run.t.take();
            if !bytes.is_empty() || run.done {
                return Some((Ok(bytes), run));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::responses::request::Echo;
    use llm_tower_core::{ChatChoice, ChunkChoice, Delta, Message, Role, ToolCall, UsageSource};

    fn translator() -> Translator {
        Translator::new(Meta {
            id: "resp_1".into(),
            created_at: 1,
            echo: Echo {
                model: "m".into(),
                ..Echo::default()
            },
        })
    }

    fn delta_chunk(delta: Delta, finish: Option<&str>) -> ChatChunk {
        ChatChunk::new("c", "m", 1).with_choice(ChunkChoice::new(0, delta, finish.map(Into::into)))
    }

    fn parse(bytes: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(bytes).unwrap();
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (ev, data) = e.split_once('\n').unwrap();
                (
                    ev.strip_prefix("event: ").unwrap().to_owned(),
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn reasoning_then_text_then_refusal_then_length() {
        let mut t = translator();
        t.start();
        t.chunk(&delta_chunk(
            Delta {
                reasoning_content: Some("hmm".into()),
                ..Delta::default()
            },
            None,
        ));
        t.chunk(&delta_chunk(
            Delta {
                thinking_blocks: vec![ThinkingBlock::Thinking {
                    thinking: "hmm".into(),
                    signature: "sig".into(),
                }],
                content: Some("Hi".into()),
                ..Delta::default()
            },
            None,
        ));
        t.chunk(&delta_chunk(
            Delta {
                refusal: Some("no".into()),
                ..Delta::default()
            },
            Some("length"),
        ));
        let mut last = ChatChunk::new("c", "m", 1);
        last.usage = Some(Usage::new(3, 4, UsageSource::Provider).with_reasoning(2));
        t.chunk(&last);
        let (resp, output) = t.finish();
        let ev = parse(&t.take());
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.content_part.added",
                "response.refusal.delta",
                "response.refusal.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.incomplete",
            ]
        );
        assert_eq!(ev[14].1["content_index"], 1);
        assert_eq!(resp["status"], "incomplete");
        assert_eq!(resp["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(
            resp["usage"]["output_tokens_details"]["reasoning_tokens"],
            2
        );
        assert_eq!(output.len(), 2);
        assert_eq!(output[0]["type"], "reasoning");
        assert_eq!(output[0]["summary"][0]["text"], "hmm");
        assert!(
            output[0]["encrypted_content"]
                .as_str()
                .unwrap()
                .starts_with(crate::responses::request::THINKING_PREFIX)
        );
        assert_eq!(output[1]["status"], "incomplete");
        assert_eq!(output[1]["content"][0]["text"], "Hi");
        assert_eq!(output[1]["content"][1]["refusal"], "no");
        // The output items go back in as the same conversation (thinking blocks included).
        let mut conv = crate::responses::request::Conversation::default();
        conv.push_items(&output, "input").unwrap();
        let m = conv.finish();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].text(), "Hi");
        assert_eq!(m[0].refusal.as_deref(), Some("no"));
        assert_eq!(m[0].thinking_blocks.len(), 1);
        assert_eq!(m[0].reasoning_content.as_deref(), Some("hmm"));
    }

    #[tokio::test]
    async fn a_response_in_one_piece_streams_its_calls() {
        let mut m = Message::empty(Role::Assistant);
        m.tool_calls = vec![
            ToolCall::function("a", "f", "{}"),
            ToolCall::function("b", "g", "{\"x\":1}"),
        ];
        let c = ChatResponse::new(
            "c",
            "m",
            1,
            vec![ChatChoice::new(0, m, Some("tool_calls".into()))],
        );
        let mut s = one_piece(c, Some(Usage::new(1, 1, UsageSource::Provider)));
        let mut t = translator();
        while let Some(chunk) = s.next().await {
            t.chunk(&chunk.unwrap());
        }
        let (resp, output) = t.finish();
        assert_eq!(output.len(), 2);
        assert_eq!(output[1]["call_id"], "b");
        assert_eq!(output[1]["arguments"], "{\"x\":1}");
        assert_eq!(resp["status"], "completed");
        assert_eq!(resp["usage"]["total_tokens"], 2);
    }
}
