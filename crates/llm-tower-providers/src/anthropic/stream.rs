//! Anthropic's SSE events (`message_start`, `content_block_*`, `message_delta`,
//! `message_stop`, `ping`, `error`) converted to OpenAI-shaped chunks.
//!
//! Usage is split across events: `message_start` carries the input tokens (and cache
//! reads and writes), `message_delta` the cumulative output tokens (and, in newer API
//! versions, cumulative input counts that replace the earlier ones). Both are combined
//! into one final chunk with usage, emitted exactly once at `message_stop`.

use std::collections::{HashMap, VecDeque};

use llm_tower_core::{
    ChatChunk, ChunkChoice, Delta, Error, ErrorKind, FunctionCallDelta, Role, ToolCallDelta,
};

use super::convert;
use super::wire::{BlockDelta, ResponseBlock, StreamEvent, WireUsage};
use crate::error_map::{self, ErrorBody};
use crate::http::stream::{Flow, StreamParser};
use crate::secret::Secrets;
use crate::sse::SseEvent;

/// Parses Anthropic's stream.
pub(crate) struct AnthropicStreamParser {
    id: String,
    model: String,
    created: u64,
    /// Content block index -> tool-call ordinal.
    tools: HashMap<u32, u32>,
    next_tool: u32,
    input_tokens: u64,
    cache_read: u64,
    cache_creation: u64,
    output_tokens: u64,
    secret: Option<Secrets>,
}

impl AnthropicStreamParser {
    pub fn new(created: u64, secret: Option<Secrets>) -> Self {
        AnthropicStreamParser {
            id: String::new(),
            model: String::new(),
            created,
            tools: HashMap::new(),
            next_tool: 0,
            input_tokens: 0,
            cache_read: 0,
            cache_creation: 0,
            output_tokens: 0,
            secret,
        }
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

    fn take_usage(&mut self, u: &WireUsage) {
        if let Some(n) = u.input_tokens {
            self.input_tokens = n;
        }
        if let Some(n) = u.cache_read_input_tokens {
            self.cache_read = n;
        }
        if let Some(n) = u.cache_creation_input_tokens {
            self.cache_creation = n;
        }
        if let Some(n) = u.output_tokens {
            self.output_tokens = n;
        }
    }
}

impl StreamParser for AnthropicStreamParser {
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow, Error> {
        if event.data.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        let ev: StreamEvent = serde_json::from_str(&event.data)
            .map_err(|e| error_map::invalid_body("stream event", &e))?;
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
            } => match content_block {
                ResponseBlock::Text { text } => {
                    if !text.is_empty() {
                        out.push_back(self.text(text));
                    }
                }
                ResponseBlock::ToolUse { id, name, input } => {
                    let ordinal = self.next_tool;
                    self.next_tool = self.next_tool.saturating_add(1);
                    self.tools.insert(index, ordinal);
                    let initial = match &input {
                        serde_json::Value::Object(o) if !o.is_empty() => input.to_string(),
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
                ResponseBlock::Other => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => {
                    if !text.is_empty() {
                        out.push_back(self.text(text));
                    }
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some(&ordinal) = self.tools.get(&index)
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
                BlockDelta::Other => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = &usage {
                    self.take_usage(u);
                }
                if let Some(stop) = delta.stop_reason {
                    out.push_back(
                        self.chunk(Delta::default(), Some(convert::finish_reason(&stop))),
                    );
                }
            }
            StreamEvent::MessageStop => {
                out.push_back(ChatChunk {
                    extra: Default::default(),
                    id: self.id.clone(),
                    model: self.model.clone(),
                    created: self.created,
                    choices: Vec::new(),
                    usage: Some(convert::usage(
                        self.input_tokens,
                        self.cache_read,
                        self.cache_creation,
                        self.output_tokens,
                    )),
                    cost: None,
                });
                return Ok(Flow::Done);
            }
            StreamEvent::Error { error } => {
                let body = ErrorBody::from_value(&serde_json::json!({ "error": error }));
                return Err(error_map::stream_error(&body, self.secret.as_ref()));
            }
            StreamEvent::ContentBlockStop | StreamEvent::Ping | StreamEvent::Unknown => {}
        }
        Ok(Flow::Continue)
    }

    fn incomplete(&self) -> Error {
        Error::new(ErrorKind::Transport, "stream ended before message_stop")
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
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#,
            r#"{"type":"brand_new_event"}"#,
        ]);
        assert!(last.is_ok());
        assert_eq!(chunks.len(), 1);
        let (_, last) = run(&["{\"type\":"]);
        assert_eq!(last.unwrap_err().kind(), ErrorKind::Transport);
    }
}
