//! Anthropic's SSE events (`message_start`, `content_block_*`, `message_delta`,
//! `message_stop`, `ping`, `error`) converted to OpenAI-shaped chunks.
//!
//! - Text deltas -> `content`; `tool_use` blocks -> indexed tool-call deltas.
//! - Thinking: `thinking_delta` -> `reasoning_content` fragments (a blank line between
//!   two blocks, as in a whole response); `signature_delta` is recorded, and at the
//!   block's `content_block_stop` one chunk carries the whole block (text and signature)
//!   in `thinking_blocks`. A `redacted_thinking` block comes whole at its start.
//! - `stop_sequence` and `container` of `message_delta` go to the finishing chunk's
//!   `extra`; `usage.service_tier` to the usage chunk's `extra["service_tier"]`. (The raw
//!   `stop_reason` kept in a whole response's `choice.extra` has no place in a chunk.)
//!
//! Usage is split across events: `message_start` carries the input tokens (and cache
//! reads and writes), `message_delta` the cumulative output tokens (and, in newer API
//! versions, cumulative input counts that replace the earlier ones). Both are combined
//! into one final chunk with usage, emitted exactly once at `message_stop`.

use std::collections::{HashMap, VecDeque};

use llm_tower_core::{
    ChatChunk, ChunkChoice, Delta, Error, ErrorKind, FunctionCallDelta, Role, ThinkingBlock,
    ToolCallDelta,
};
use serde::Deserialize;
use serde_json::Value;

use super::convert::{self, Counts, ResponseBlock};
use super::wire::{BlockDelta, StreamEvent, WireUsage};
use crate::error_map::{self, ErrorBody};
use crate::http::stream::{Flow, StreamParser};
use crate::secret::Secrets;
use crate::sse::SseEvent;

/// A content block being streamed.
enum Open {
    /// A `tool_use` block and its tool-call ordinal.
    Tool(u32),
    /// A `thinking` block: its text and signature so far, and whether its text was emitted.
    Thinking {
        thinking: String,
        signature: String,
        emitted: bool,
    },
}

/// Parses Anthropic's stream.
pub(crate) struct AnthropicStreamParser {
    id: String,
    model: String,
    created: u64,
    /// Open blocks by content block index.
    blocks: HashMap<u32, Open>,
    next_tool: u32,
    /// Some reasoning text was emitted (the next block's text starts with a blank line).
    reasoning_emitted: bool,
    counts: Counts,
    service_tier: Option<String>,
    secret: Option<Secrets>,
    native: bool,
}

impl AnthropicStreamParser {
    pub fn new(created: u64, secret: Option<Secrets>) -> Self {
        AnthropicStreamParser {
            id: String::new(),
            model: String::new(),
            created,
            blocks: HashMap::new(),
            next_tool: 0,
            reasoning_emitted: false,
            counts: Counts::default(),
            service_tier: None,
            secret,
            native: false,
        }
    }

    /// Keeps every event in its chunk's `native` (for a client that speaks Anthropic's
    /// Messages API, see `llm_tower_core::AnthropicMessagesClient`); an event that makes no
    /// chunk gets an empty one.
    pub fn native(mut self) -> Self {
        self.native = true;
        self
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<String>) -> ChatChunk {
        ChatChunk {
            extra: Default::default(),
            id: self.id.clone(),
            model: self.model.clone(),
            created: self.created,
            choices: vec![ChunkChoice {
                logprobs: None,
                index: 0,
                delta,
                finish_reason,
            }],
            usage: None,
            cost: None,
            native: None,
        }
    }

    fn tool_delta(&self, ordinal: u32, d: ToolCallDelta) -> ChatChunk {
        self.chunk(
            Delta {
                tool_calls: vec![ToolCallDelta {
                    index: ordinal,
                    ..d
                }],
                ..Delta::default()
            },
            None,
        )
    }

    fn text(&self, text: String) -> ChatChunk {
        self.chunk(
            Delta {
                content: Some(text),
                ..Delta::default()
            },
            None,
        )
    }

    fn thinking_blocks(&self, block: ThinkingBlock) -> ChatChunk {
        self.chunk(
            Delta {
                thinking_blocks: vec![block],
                ..Delta::default()
            },
            None,
        )
    }

    /// Thinking text of block `index`, as a `reasoning_content` fragment.
    fn reasoning(&mut self, index: u32, text: &str, out: &mut VecDeque<ChatChunk>) {
        let Some(Open::Thinking {
            thinking, emitted, ..
        }) = self.blocks.get_mut(&index)
        else {
            return;
        };
        thinking.push_str(text);
        if text.is_empty() {
            return;
        }
        let fragment = if !*emitted && self.reasoning_emitted {
            format!("\n\n{text}")
        } else {
            text.to_owned()
        };
        *emitted = true;
        self.reasoning_emitted = true;
        let chunk = self.chunk(
            Delta {
                reasoning_content: Some(fragment),
                ..Delta::default()
            },
            None,
        );
        out.push_back(chunk);
    }

    fn take_usage(&mut self, u: &WireUsage) {
        self.counts.take(u);
        if u.service_tier.is_some() {
            self.service_tier.clone_from(&u.service_tier);
        }
    }
}

impl StreamParser for AnthropicStreamParser {
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow, Error> {
        if event.data.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        if !self.native {
            let ev: StreamEvent = serde_json::from_str(&event.data)
                .map_err(|e| error_map::invalid_body("stream event", &e))?;
            return self.apply(ev, out);
        }
        // The client speaks Anthropic too: every event rides along in a chunk (parsed
        // once, read from the parsed value).
        let raw: Value = serde_json::from_str(&event.data)
            .map_err(|e| error_map::invalid_body("stream event", &e))?;
        let ev = StreamEvent::deserialize(&raw)
            .map_err(|e| error_map::invalid_body("stream event", &e))?;
        let before = out.len();
        let flow = self.apply(ev, out)?;
        let raw = Some(std::sync::Arc::new(raw));
        match out.get_mut(before) {
            Some(first) => first.native = raw,
            None => {
                let mut chunk = ChatChunk::new(self.id.clone(), self.model.clone(), self.created);
                chunk.native = raw;
                out.push_back(chunk);
            }
        }
        Ok(flow)
    }

    fn incomplete(&self) -> Error {
        Error::new(ErrorKind::Transport, "stream ended before message_stop")
    }
}

impl AnthropicStreamParser {
    fn apply(&mut self, ev: StreamEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow, Error> {
        match ev {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                if let Some(u) = &message.usage {
                    self.take_usage(u);
                }
                out.push_back(self.chunk(
                    Delta {
                        role: Some(Role::Assistant),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match convert::response_block(&content_block) {
                ResponseBlock::Text(text) => {
                    if !text.is_empty() {
                        out.push_back(self.text(text));
                    }
                }
                ResponseBlock::ToolUse { id, name, input } => {
                    let ordinal = self.next_tool;
                    self.next_tool = self.next_tool.saturating_add(1);
                    self.blocks.insert(index, Open::Tool(ordinal));
                    let initial = match &input {
                        Value::Object(o) if !o.is_empty() => input.to_string(),
                        _ => String::new(),
                    };
                    out.push_back(self.tool_delta(
                        ordinal,
                        ToolCallDelta {
                            extra: Default::default(),
                            index: ordinal,
                            id: Some(id),
                            kind: Some("function".to_owned()),
                            function: Some(FunctionCallDelta {
                                name: Some(name),
                                arguments: Some(initial),
                            }),
                        },
                    ));
                }
                ResponseBlock::Thinking(ThinkingBlock::Thinking {
                    thinking,
                    signature,
                }) => {
                    self.blocks.insert(
                        index,
                        Open::Thinking {
                            thinking: String::new(),
                            signature,
                            emitted: false,
                        },
                    );
                    self.reasoning(index, &thinking, out);
                }
                ResponseBlock::Thinking(redacted) => {
                    self.blocks.remove(&index);
                    out.push_back(self.thinking_blocks(redacted));
                }
                ResponseBlock::Other => {
                    self.blocks.remove(&index);
                }
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => {
                    if !text.is_empty() {
                        out.push_back(self.text(text));
                    }
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some(&Open::Tool(ordinal)) = self.blocks.get(&index)
                        && !partial_json.is_empty()
                    {
                        out.push_back(self.tool_delta(
                            ordinal,
                            ToolCallDelta {
                                function: Some(FunctionCallDelta {
                                    name: None,
                                    arguments: Some(partial_json),
                                }),
                                ..ToolCallDelta::default()
                            },
                        ));
                    }
                }
                BlockDelta::ThinkingDelta { thinking } => self.reasoning(index, &thinking, out),
                BlockDelta::SignatureDelta { signature } => {
                    if let Some(Open::Thinking { signature: s, .. }) = self.blocks.get_mut(&index) {
                        s.push_str(&signature);
                    }
                }
                BlockDelta::Other => {}
            },
            StreamEvent::ContentBlockStop { index } => {
                if let Some(Open::Thinking {
                    thinking,
                    signature,
                    ..
                }) = self.blocks.remove(&index)
                {
                    out.push_back(self.thinking_blocks(ThinkingBlock::Thinking {
                        thinking,
                        signature,
                    }));
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = &usage {
                    self.take_usage(u);
                }
                let mut extra = serde_json::Map::new();
                if let Some(s) = delta.stop_sequence {
                    extra.insert("stop_sequence".into(), Value::String(s));
                }
                if let Some(c) = delta.container.filter(|c| !c.is_null()) {
                    extra.insert("container".into(), c);
                }
                let finish = delta.stop_reason.as_deref().map(convert::finish_reason);
                if finish.is_some() || !extra.is_empty() {
                    let mut chunk = self.chunk(Delta::default(), finish);
                    chunk.extra = extra;
                    out.push_back(chunk);
                }
            }
            StreamEvent::MessageStop => {
                let mut chunk = ChatChunk {
                    extra: Default::default(),
                    id: self.id.clone(),
                    model: self.model.clone(),
                    created: self.created,
                    choices: Vec::new(),
                    usage: Some(self.counts.usage()),
                    cost: None,
                    native: None,
                };
                if let Some(t) = &self.service_tier {
                    chunk
                        .extra
                        .insert("service_tier".into(), Value::String(t.clone()));
                }
                out.push_back(chunk);
                return Ok(Flow::Done);
            }
            StreamEvent::Error { error } => {
                let body = ErrorBody::from_value(&serde_json::json!({ "error": error }));
                return Err(error_map::stream_error(&body, self.secret.as_ref()));
            }
            StreamEvent::Ping | StreamEvent::Unknown => {}
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn run(events: &[&str]) -> (Vec<ChatChunk>, Result<Flow, Error>) {
        let mut p = AnthropicStreamParser::new(42, None);
        let mut out = VecDeque::new();
        let mut last = Ok(Flow::Continue);
        for e in events {
            last = p.on_event(
                SseEvent {
                    data: (*e).to_owned(),
                    ..SseEvent::default()
                },
                &mut out,
            );
            if last.is_err() {
                break;
            }
        }
        (out.into_iter().collect(), last)
    }

    #[test]
    fn tool_ordinals_do_not_overflow() {
        let mut p = AnthropicStreamParser::new(42, None);
        p.next_tool = u32::MAX;
        let mut out = VecDeque::new();
        for index in [1, 2] {
            let ev = format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":"t{index}","name":"f","input":{{}}}}}}"#
            );
            let ev = SseEvent {
                data: ev,
                ..SseEvent::default()
            };
            assert_eq!(p.on_event(ev, &mut out).unwrap(), Flow::Continue);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].choices[0].delta.tool_calls[0].index, u32::MAX);
    }

    const TOOL_STREAM: &[&str] = &[
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":849,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":10}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking"}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"json","input":{}}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        r#"{"type": "ping"}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\": "}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"1}"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":47}}"#,
        r#"{"type":"message_stop"}"#,
    ];

    #[test]
    fn tool_stream_becomes_openai_chunks() {
        let (chunks, last) = run(TOOL_STREAM);
        assert_eq!(last.unwrap(), Flow::Done);
        assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
        assert_eq!(chunks[0].id, "msg_1");
        assert_eq!(chunks[1].text(), "Checking");
        let start = &chunks[2].choices[0].delta.tool_calls[0];
        assert_eq!(start.index, 0);
        assert_eq!(start.id.as_deref(), Some("toolu_1"));
        assert_eq!(
            start.function.as_ref().unwrap().name.as_deref(),
            Some("json")
        );
        let args: String = chunks
            .iter()
            .flat_map(|c| c.choices.iter())
            .flat_map(|c| c.delta.tool_calls.iter())
            .filter_map(|t| t.function.as_ref()?.arguments.clone())
            .collect();
        assert_eq!(args, "{\"a\": 1}");
        let finish = chunks
            .iter()
            .find_map(|c| c.choices.first()?.finish_reason.clone());
        assert_eq!(finish.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn usage_adds_input_and_output_exactly_once() {
        let (chunks, _) = run(TOOL_STREAM);
        let usages: Vec<_> = chunks.iter().filter_map(|c| c.usage).collect();
        assert_eq!(usages.len(), 1, "exactly one usage chunk");
        let u = usages[0];
        assert_eq!(u.prompt_tokens, 949, "input 849 + cache read 100");
        assert_eq!(u.cached_prompt_tokens, 100);
        assert_eq!(u.completion_tokens, 47, "cumulative output, not 10 + 47");
        assert_eq!(u.total_tokens, 996);
        assert!(chunks.last().unwrap().usage.is_some(), "usage comes last");
    }

    #[test]
    fn message_delta_input_counts_replace_the_start_counts() {
        let (chunks, _) = run(&[
            r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":10,"output_tokens":1}}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":12,"output_tokens":5}}"#,
            r#"{"type":"message_stop"}"#,
        ]);
        let u = chunks.iter().find_map(|c| c.usage).unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (12, 5));
    }

    #[test]
    fn error_event_is_an_error_of_the_right_kind() {
        let (_, last) = run(&[
            r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":10,"output_tokens":1}}}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ]);
        let e = last.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        assert!(e.message().contains("Overloaded"));
    }

    #[test]
    fn unknown_events_and_deltas_are_ignored_and_garbage_is_an_error() {
        let (chunks, last) = run(&[
            r#"{"type":"message_start","message":{"id":"m","model":"c"}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"s","name":"web_search","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
            r#"{"type":"content_block_delta","index":7,"delta":{"type":"signature_delta","signature":"x"}}"#,
            r#"{"type":"content_block_delta","index":8,"delta":{"type":"thinking_delta","thinking":"x"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_stop","index":99}"#,
            r#"{"type":"brand_new_event"}"#,
        ]);
        assert!(last.is_ok());
        assert_eq!(chunks.len(), 1);
        let (_, last) = run(&["{\"type\":"]);
        assert_eq!(last.unwrap_err().kind(), ErrorKind::Transport);
    }

    const THINKING_STREAM: &[&str] = &[
        r#"{"type":"message_start","message":{"id":"msg_t","model":"claude-sonnet-4-5","usage":{"input_tokens":50,"cache_read_input_tokens":1000,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":1,"service_tier":"standard"}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me "}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"think."}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM+/sig=="}}"#,
        r#"{"type":"content_block_stop","index":0}"#,
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix/LafPsn4a"}}"#,
        r#"{"type":"content_block_stop","index":1}"#,
        r#"{"type":"content_block_start","index":2,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"thinking_delta","thinking":"More."}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"signature_delta","signature":"s2"}}"#,
        r#"{"type":"content_block_stop","index":2}"#,
        r#"{"type":"content_block_start","index":3,"content_block":{"type":"text","text":""}}"#,
        r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"42"}}"#,
        r#"{"type":"content_block_stop","index":3}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"output_tokens":80}}"#,
        r#"{"type":"message_stop"}"#,
    ];

    #[test]
    fn thinking_streams_as_reasoning_then_whole_blocks() {
        let (chunks, last) = run(THINKING_STREAM);
        assert_eq!(last.unwrap(), Flow::Done);
        let reasoning: Vec<String> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .filter_map(|c| c.delta.reasoning_content.clone())
            .collect();
        assert_eq!(reasoning, ["Let me ", "think.", "\n\nMore."]);
        let blocks: Vec<ThinkingBlock> = chunks
            .iter()
            .flat_map(|c| &c.choices)
            .flat_map(|c| c.delta.thinking_blocks.clone())
            .collect();
        assert_eq!(
            blocks,
            [
                ThinkingBlock::Thinking {
                    thinking: "Let me think.".into(),
                    signature: "EqQBCgIYAhIM+/sig==".into()
                },
                ThinkingBlock::RedactedThinking {
                    data: "EmwKAhgBEgy3va3pzix/LafPsn4a".into()
                },
                ThinkingBlock::Thinking {
                    thinking: "More.".into(),
                    signature: "s2".into()
                },
            ]
        );
        let mut acc = llm_tower_core::ChatStreamAccumulator::new();
        acc.extend(&chunks);
        let (resp, usage) = acc.finish();
        assert_eq!(resp.text(), "42");
        assert_eq!(resp.extra["stop_sequence"], "END");
        assert_eq!(resp.service_tier.as_deref(), Some("standard"));
        assert_eq!(resp.choices[0].finish_reason.as_deref(), Some("stop"));
        let u = usage.unwrap();
        assert_eq!(u.prompt_tokens, 1350);
        assert_eq!(u.cached_prompt_tokens, 1000);
        assert_eq!(
            (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
            (100, 200)
        );
        assert_eq!(u.completion_tokens, 80);
    }
}
