//! `streamGenerateContent?alt=sse`: every event is a whole `GenerateContentResponse` holding
//! the new parts of each candidate, converted to OpenAI-shaped chunks.
//!
//! - Text parts -> `content`; `thought: true` parts -> `reasoning_content`; each
//!   `functionCall` part -> one whole tool-call delta (id `call_{n}` unless Gemini sent one,
//!   arguments complete, `thought_signature` in the delta's `extra`).
//! - A candidate's `finishReason` -> its `finish_reason` (`STOP` after function calls ->
//!   `tool_calls`).
//! - `usageMetadata` comes with every event; the last one is sent once, in a final chunk
//!   without choices, when the body ends.
//!
//! Gemini's stream has no final event: it is complete when the body ends after every
//! candidate sent a finish reason; a body that ends before is a `Transport` error. A
//! prompt blocked (`promptFeedback.blockReason`) fails the stream with `InvalidRequest`
//! (code `content_filter`), an `{"error": ...}` event with its mapped kind.

use std::collections::{BTreeMap, VecDeque};

use super::convert::{self, THOUGHT_SIGNATURE};
use super::wire::{GenerateContentResponse, UsageMetadata};
use crate::error_map::{self, ErrorBody};
use crate::http::stream::{Flow, StreamParser};
use crate::secret::Secrets;
use crate::sse::SseEvent;
use llm_tower_core::{
    ChatChunk, ChunkChoice, Delta, Error, ErrorKind, FunctionCallDelta, Role, ToolCallDelta,
};

#[derive(Default)]
struct CandidateState {
    role_sent: bool,
    tools: u32,
    finished: bool,
}

/// Parses Gemini's stream.
pub(crate) struct GeminiStreamParser {
    id: String,
    model: String,
    created: u64,
    candidates: BTreeMap<u32, CandidateState>,
    calls: usize,
    usage: Option<UsageMetadata>,
    secret: Option<Secrets>,
}

impl GeminiStreamParser {
    pub fn new(created: u64, model: &str, secret: Option<Secrets>) -> Self {
        GeminiStreamParser {
            id: format!("gemini-{created}"),
            model: model.to_owned(),
            created,
            candidates: BTreeMap::new(),
            calls: 0,
            usage: None,
            secret,
        }
    }

    fn chunk(&self) -> ChatChunk {
        ChatChunk::new(self.id.clone(), self.model.clone(), self.created)
    }
}

impl StreamParser for GeminiStreamParser {
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow, Error> {
        if event.data.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        let ev: GenerateContentResponse = serde_json::from_str(&event.data)
            .map_err(|e| error_map::invalid_body("stream event", &e))?;
        if let Some(err) = &ev.error {
            let body = ErrorBody::from_value(&serde_json::json!({ "error": err }));
            return Err(error_map::stream_error(&body, self.secret.as_ref()));
        }
        if ev.candidates.is_empty()
            && let Some(fb) = &ev.prompt_feedback
            && let Some(e) = convert::blocked(fb)
        {
            return Err(e);
        }
        if let Some(id) = ev.response_id.filter(|s| !s.is_empty()) {
            self.id = id;
        }
        if let Some(m) = ev.model_version.filter(|s| !s.is_empty()) {
            self.model = m;
        }
        if ev.usage_metadata.is_some() {
            self.usage = ev.usage_metadata;
        }
        let mut chunk = self.chunk();
        for (i, c) in ev.candidates.into_iter().enumerate() {
            let index = c.index.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX));
            let st = self.candidates.entry(index).or_default();
            let mut delta = Delta::default();
            if !st.role_sent {
                st.role_sent = true;
                delta.role = Some(Role::Assistant);
            }
            for p in c.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(fc) = &p.function_call {
                    let call = convert::tool_call(fc, p.thought_signature.as_deref(), self.calls);
                    self.calls += 1;
                    let mut extra = serde_json::Map::new();
                    if let Some(sig) = call.extra.get(THOUGHT_SIGNATURE) {
                        extra.insert(THOUGHT_SIGNATURE.into(), sig.clone());
                    }
                    delta.tool_calls.push(ToolCallDelta {
                        index: st.tools,
                        id: Some(call.id),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some(call.function.name),
                            arguments: Some(call.function.arguments),
                        }),
                        extra,
                    });
                    st.tools = st.tools.saturating_add(1);
                    continue;
                }
                let Some(t) = p.text.filter(|t| !t.is_empty()) else {
                    continue;
                };
                let slot = if p.thought == Some(true) {
                    &mut delta.reasoning_content
                } else {
                    &mut delta.content
                };
                slot.get_or_insert_with(String::new).push_str(&t);
            }
            let finish = c.finish_reason.as_deref().map(|r| {
                st.finished = true;
                convert::finish_reason(r, st.tools > 0)
            });
            chunk.choices.push(ChunkChoice::new(index, delta, finish));
        }
        if !chunk.choices.is_empty() {
            out.push_back(chunk);
        }
        Ok(Flow::Continue)
    }

    fn incomplete(&self) -> Error {
        Error::new(ErrorKind::Transport, "stream ended before a finish reason")
    }

    fn end(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), Error> {
        if self.candidates.is_empty() || self.candidates.values().any(|c| !c.finished) {
            return Err(self.incomplete());
        }
        if let Some(u) = self.usage.take() {
            let mut chunk = self.chunk();
            chunk.usage = Some(convert::usage(&u));
            out.push_back(chunk);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: String::new(),
            data: data.to_owned(),
            id: None,
            retry: None,
        }
    }

    #[test]
    fn hostile_events_are_errors_not_panics() {
        let mut p = GeminiStreamParser::new(1, "m", None);
        let mut out = VecDeque::new();
        for d in [
            "not json",
            r#"{"candidates": 3}"#,
            r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": 1}}]}}]}"#,
        ] {
            assert!(p.on_event(ev(d), &mut out).is_err(), "{d}");
        }
        let ok = [
            "{}",
            r#"{"candidates": [{}]}"#,
            r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": [1]}}]}, "index": 4294967295}]}"#,
        ];
        for d in ok {
            assert!(p.on_event(ev(d), &mut out).is_ok(), "{d}");
        }
        let _ = p.on_event(ev("[]"), &mut out);
        assert!(p.end(&mut out).is_err());
    }
}
