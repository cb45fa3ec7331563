//! OpenAI's Responses API (`POST {base}/responses`), used natively for requests that came
//! in as Responses API requests (they carry a [`ResponsesBody`]): the client's body goes
//! out with the routed model, and the answer comes back as its chat translation (for
//! token counting, cost and every other layer) with the provider's own JSON kept in
//! `native` for the gateway to pass on.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use llm_tower_core::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Delta, Error, ErrorKind,
    FunctionCallDelta, Message, ResponsesBody, Role, ThinkingBlock, ToolCall, ToolCallDelta, Usage,
    UsageSource,
};
use serde_json::{Map, Value};

use crate::error_map::{self, ErrorBody};
use crate::http::stream::{Flow, StreamParser};
use crate::secret::Secrets;
use crate::sse::SseEvent;

/// The body to send: the client's, with `model` and `stream` from the (routed) chat
/// request.
pub(crate) fn request_body(native: &ResponsesBody, chat: &ChatRequest) -> Result<Vec<u8>, Error> {
    let mut body: Map<String, Value> = (*native.body).clone();
    body.insert("model".into(), Value::String(chat.model.clone()));
    if chat.stream {
        body.insert("stream".into(), Value::Bool(true));
    } else {
        body.remove("stream");
        body.remove("stream_options");
    }
    serde_json::to_vec(&body)
        .map_err(|e| Error::invalid_request(format!("request cannot be serialized: {e}")))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn u64_of(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for key in path {
        match cur.get(key) {
            Some(next) => cur = next,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

/// A Responses `usage` object.
pub(crate) fn usage(u: &Value) -> Option<Usage> {
    if !u.is_object() {
        return None;
    }
    Some(
        Usage::new(
            u64_of(u, &["input_tokens"]),
            u64_of(u, &["output_tokens"]),
            UsageSource::Provider,
        )
        .with_cached(u64_of(u, &["input_tokens_details", "cached_tokens"]))
        .with_reasoning(u64_of(u, &["output_tokens_details", "reasoning_tokens"])),
    )
}

/// The chat finish reason of a response object.
fn finish_reason(resp: &Value, has_calls: bool) -> Option<String> {
    match str_of(resp, "status") {
        Some("completed") => Some(if has_calls { "tool_calls" } else { "stop" }.to_owned()),
        Some("incomplete") => Some(
            match resp
                .get("incomplete_details")
                .and_then(|d| str_of(d, "reason"))
            {
                Some("content_filter") => "content_filter",
                _ => "length",
            }
            .to_owned(),
        ),
        _ => None,
    }
}

/// The error of a `failed` response object (or an `error` event's body).
fn failure(error: &Value, secret: Option<&Secrets>) -> Error {
    let body = ErrorBody {
        message: str_of(error, "message").map(str::to_owned),
        kind: str_of(error, "type").map(str::to_owned),
        code: str_of(error, "code").map(str::to_owned),
        ..ErrorBody::default()
    };
    error_map::stream_error(&body, secret)
}

/// A call item (`function_call`, `custom_tool_call`) as a tool call.
fn tool_call(item: &Value) -> Option<ToolCall> {
    let call_id = str_of(item, "call_id").unwrap_or_default();
    let name = str_of(item, "name").unwrap_or_default();
    match str_of(item, "type")? {
        "function_call" => Some(ToolCall::function(
            call_id,
            name,
            str_of(item, "arguments").unwrap_or_default(),
        )),
        "custom_tool_call" => {
            let mut call = ToolCall::function(call_id, "", "");
            call.kind = "custom".into();
            let mut custom = Map::new();
            custom.insert("name".into(), name.into());
            custom.insert(
                "input".into(),
                str_of(item, "input").unwrap_or_default().into(),
            );
            call.extra.insert("custom".into(), Value::Object(custom));
            Some(call)
        }
        _ => None,
    }
}

/// The texts of a reasoning item: its summary parts, else its reasoning text parts.
fn reasoning_text(item: &Value) -> String {
    let mut out = String::new();
    for key in ["summary", "content"] {
        if let Some(parts) = item.get(key).and_then(Value::as_array) {
            for p in parts {
                if let Some(t) = str_of(p, "text") {
                    if !out.is_empty() {
                        out.push_str("\n\n");
                    }
                    out.push_str(t);
                }
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    out
}

/// A Responses API response object as a chat response (the object itself kept in
/// `native`), with its usage; a `failed` response is its error.
pub(crate) fn response(
    v: Value,
    now: u64,
    secret: Option<&Secrets>,
) -> Result<(ChatResponse, Option<Usage>), Error> {
    if str_of(&v, "status") == Some("failed") {
        let error = v.get("error").cloned().unwrap_or(Value::Null);
        return Err(failure(&error, secret));
    }
    let mut msg = Message::empty(Role::Assistant);
    let mut text = String::new();
    let mut refusal: Option<String> = None;
    let mut reasoning = String::new();
    let mut blocks = Vec::new();
    for item in v
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match str_of(item, "type") {
            Some("message") => {
                for part in item
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match str_of(part, "type") {
                        Some("output_text") => text.push_str(str_of(part, "text").unwrap_or("")),
                        Some("refusal") => refusal
                            .get_or_insert_with(String::new)
                            .push_str(str_of(part, "refusal").unwrap_or("")),
                        _ => {}
                    }
                }
            }
            Some("reasoning") => {
                let t = reasoning_text(item);
                if !t.is_empty() {
                    if !reasoning.is_empty() {
                        reasoning.push_str("\n\n");
                    }
                    reasoning.push_str(&t);
                }
                if let Some(data) = str_of(item, "encrypted_content") {
                    blocks.push(ThinkingBlock::RedactedThinking {
                        data: data.to_owned(),
                    });
                }
            }
            _ => {
                if let Some(call) = tool_call(item) {
                    msg.tool_calls.push(call);
                }
            }
        }
    }
    if !text.is_empty() {
        msg.content = Some(text.into());
    }
    msg.refusal = refusal;
    if !reasoning.is_empty() {
        msg.reasoning_content = Some(reasoning);
    }
    msg.thinking_blocks = blocks;
    let finish = finish_reason(&v, !msg.tool_calls.is_empty());
    let usage = v.get("usage").and_then(usage);
    let mut chat = ChatResponse::new(
        str_of(&v, "id").unwrap_or_default(),
        str_of(&v, "model").unwrap_or_default(),
        v.get("created_at").and_then(Value::as_u64).unwrap_or(now),
        vec![ChatChoice::new(0, msg, finish)],
    );
    chat.service_tier = str_of(&v, "service_tier").map(str::to_owned);
    chat.native = Some(Arc::new(v));
    Ok((chat, usage))
}

/// Parses the Responses API's stream: one chunk per event, each carrying its event in
/// `native`; text, refusal, reasoning and call deltas as chat deltas; usage and the finish
/// reason in the chunk of `response.completed` / `response.incomplete`, the last event.
pub(crate) struct ResponsesStreamParser {
    created: u64,
    secret: Option<Secrets>,
    id: String,
    model: String,
    /// Output index -> tool call index, for the calls seen so far.
    calls: HashMap<u64, u32>,
    started: bool,
}

impl ResponsesStreamParser {
    pub fn new(created: u64, secret: Option<Secrets>) -> Self {
        ResponsesStreamParser {
            created,
            secret,
            id: String::new(),
            model: String::new(),
            calls: HashMap::new(),
            started: false,
        }
    }

    fn learn(&mut self, resp: &Value) {
        if let Some(id) = str_of(resp, "id") {
            id.clone_into(&mut self.id);
        }
        if let Some(m) = str_of(resp, "model") {
            m.clone_into(&mut self.model);
        }
        if let Some(c) = resp.get("created_at").and_then(Value::as_u64) {
            self.created = c;
        }
    }

    fn delta_chunk(&mut self, delta: Delta, finish: Option<String>) -> ChatChunk {
        let mut delta = delta;
        if !self.started {
            self.started = true;
            delta.role = Some(Role::Assistant);
        }
        ChatChunk::new(self.id.clone(), self.model.clone(), self.created)
            .with_choice(ChunkChoice::new(0, delta, finish))
    }

    fn call_delta(&mut self, ev: &Value, item: Option<&Value>, args: Option<String>) -> Delta {
        let output_index = ev.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        let next = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
        let index = *self.calls.entry(output_index).or_insert(next);
        let mut d = ToolCallDelta {
            index,
            ..ToolCallDelta::default()
        };
        if let Some(item) = item {
            d.id = str_of(item, "call_id").map(str::to_owned);
            let name = str_of(item, "name").map(str::to_owned);
            if str_of(item, "type") == Some("custom_tool_call") {
                d.kind = Some("custom".into());
                let mut custom = Map::new();
                custom.insert("name".into(), name.unwrap_or_default().into());
                d.extra.insert("custom".into(), Value::Object(custom));
            } else {
                d.kind = Some("function".into());
                d.function = Some(FunctionCallDelta {
                    name,
                    arguments: Some(String::new()),
                });
            }
        }
        if let Some(a) = args {
            d.function = Some(FunctionCallDelta {
                name: None,
                arguments: Some(a),
            });
        }
        Delta {
            tool_calls: vec![d],
            ..Delta::default()
        }
    }
}

impl StreamParser for ResponsesStreamParser {
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow, Error> {
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Flow::Continue);
        }
        let ev: Value =
            serde_json::from_str(data).map_err(|e| error_map::invalid_body("stream event", &e))?;
        let kind = str_of(&ev, "type")
            .unwrap_or(event.event.as_str())
            .to_owned();
        let mut flow = Flow::Continue;
        let delta_text = || str_of(&ev, "delta").unwrap_or_default().to_owned();
        let mut chunk = match kind.as_str() {
            "error" => return Err(failure(&ev, self.secret.as_ref())),
            "response.failed" => {
                let error = ev
                    .get("response")
                    .and_then(|r| r.get("error"))
                    .cloned()
                    .unwrap_or(Value::Null);
                return Err(failure(&error, self.secret.as_ref()));
            }
            "response.created" | "response.in_progress" | "response.queued" => {
                if let Some(r) = ev.get("response") {
                    self.learn(r);
                }
                ChatChunk::new(self.id.clone(), self.model.clone(), self.created)
            }
            "response.output_text.delta" => self.delta_chunk(
                Delta {
                    content: Some(delta_text()),
                    ..Delta::default()
                },
                None,
            ),
            "response.refusal.delta" => self.delta_chunk(
                Delta {
                    refusal: Some(delta_text()),
                    ..Delta::default()
                },
                None,
            ),
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => self
                .delta_chunk(
                    Delta {
                        reasoning_content: Some(delta_text()),
                        ..Delta::default()
                    },
                    None,
                ),
            "response.output_item.added"
                if ev
                    .get("item")
                    .and_then(|i| str_of(i, "type"))
                    .is_some_and(|t| t == "function_call" || t == "custom_tool_call") =>
            {
                let item = ev.get("item").cloned();
                let d = self.call_delta(&ev, item.as_ref(), None);
                self.delta_chunk(d, None)
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let d = self.call_delta(&ev, None, Some(delta_text()));
                self.delta_chunk(d, None)
            }
            "response.completed" | "response.incomplete" => {
                flow = Flow::Done;
                let resp = ev.get("response").cloned().unwrap_or(Value::Null);
                self.learn(&resp);
                let finish = finish_reason(&resp, !self.calls.is_empty())
                    .unwrap_or_else(|| "stop".to_owned());
                let mut c = self.delta_chunk(Delta::default(), Some(finish));
                c.usage = resp.get("usage").and_then(usage);
                c
            }
            _ => ChatChunk::new(self.id.clone(), self.model.clone(), self.created),
        };
        chunk.native = Some(Arc::new(ev));
        out.push_back(chunk);
        Ok(flow)
    }

    fn incomplete(&self) -> Error {
        Error::new(
            ErrorKind::Transport,
            "stream ended before response.completed",
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> SseEvent {
        SseEvent {
            event: v["type"].as_str().unwrap().to_owned(),
            data: v.to_string(),
            ..SseEvent::default()
        }
    }

    #[test]
    fn a_response_object_becomes_a_chat_response_and_is_kept() {
        let v = json!({
            "id": "resp_1", "object": "response", "created_at": 7, "status": "completed",
            "model": "gpt-5", "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}],
                 "encrypted_content": "gAAA"},
                {"type": "message", "id": "msg_1", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Hi", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"}
            ],
            "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
                      "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 8}, "total_tokens": 30}
        });
        let (chat, usage) = response(v.clone(), 1, None).unwrap();
        let u = usage.unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.cached_prompt_tokens,
                u.completion_tokens,
                u.reasoning_tokens
            ),
            (10, 4, 20, 8)
        );
        let m = &chat.choices[0].message;
        assert_eq!(chat.text(), "Hi");
        assert_eq!(m.reasoning_content.as_deref(), Some("think"));
        assert_eq!(m.tool_calls[0].id, "call_1");
        assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(chat.native.as_deref(), Some(&v));
        assert_eq!((chat.id.as_str(), chat.created), ("resp_1", 7));
    }

    #[test]
    fn failed_and_incomplete_responses() {
        let e = response(
            json!({"status": "failed", "error": {"code": "server_error", "message": "boom"}}),
            1,
            None,
        )
        .unwrap_err();
        assert!(e.message().contains("boom"));
        let (chat, _) = response(
            json!({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": []}),
            1,
            None,
        )
        .unwrap();
        assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("length"));
    }

    #[test]
    fn every_event_is_a_chunk_carrying_it() {
        let mut p = ResponsesStreamParser::new(1, None);
        let mut out = VecDeque::new();
        let events = [
            json!({"type": "response.created", "sequence_number": 0,
                   "response": {"id": "resp_9", "model": "gpt-5", "created_at": 5, "status": "in_progress"}}),
            json!({"type": "response.output_item.added", "output_index": 0,
                   "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
            json!({"type": "response.reasoning_summary_text.delta", "output_index": 0, "delta": "hm"}),
            json!({"type": "response.output_text.delta", "output_index": 1, "delta": "Hel"}),
            json!({"type": "response.output_text.delta", "output_index": 1, "delta": "lo"}),
            json!({"type": "response.output_item.added", "output_index": 2,
                   "item": {"type": "function_call", "id": "fc_1", "call_id": "call_7", "name": "f", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 2, "delta": "{\"a\":1}"}),
        ];
        for e in events {
            assert_eq!(p.on_event(ev(e), &mut out).unwrap(), Flow::Continue);
        }
        let done = json!({"type": "response.completed", "response": {"id": "resp_9", "status": "completed",
            "usage": {"input_tokens": 3, "output_tokens": 5}}});
        assert_eq!(p.on_event(ev(done), &mut out).unwrap(), Flow::Done);
        assert_eq!(out.len(), 8);
        assert!(out.iter().all(|c| c.native.is_some()));
        let text: String = out.iter().map(ChatChunk::text).collect();
        assert_eq!(text, "Hello");
        assert_eq!(out[2].choices[0].delta.role, Some(Role::Assistant));
        assert_eq!(out[2].id, "resp_9");
        let call = &out[5].choices[0].delta.tool_calls[0];
        assert_eq!((call.index, call.id.as_deref()), (0, Some("call_7")));
        assert_eq!(
            out[6].choices[0].delta.tool_calls[0]
                .function
                .as_ref()
                .unwrap()
                .arguments
                .as_deref(),
            Some("{\"a\":1}")
        );
        let last = out.back().unwrap();
        assert_eq!(last.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(last.usage.unwrap().completion_tokens, 5);
    }

    #[test]
    fn failures_in_the_stream_are_errors() {
        let mut p = ResponsesStreamParser::new(1, None);
        let mut out = VecDeque::new();
        let e = p
            .on_event(
                ev(
                    json!({"type": "response.failed", "response": {"status": "failed",
                    "error": {"code": "rate_limit_exceeded", "message": "slow down"}}}),
                ),
                &mut out,
            )
            .unwrap_err();
        assert!(e.message().contains("slow down"));
        let e = p
            .on_event(
                ev(json!({"type": "error", "code": "invalid_prompt", "message": "bad", "param": null})),
                &mut out,
            )
            .unwrap_err();
        assert!(e.message().contains("bad"));
        assert!(
            p.on_event(
                SseEvent {
                    data: "{x".into(),
                    ..SseEvent::default()
                },
                &mut out
            )
            .is_err()
        );
    }
}
