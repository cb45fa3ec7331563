//! OpenAI's chat-completion SSE stream: `data: {chunk}` events ending with `data: [DONE]`.

use std::collections::VecDeque;

use llm_tower_core::{ChatChunk, Error, ErrorKind};

use super::{convert, wire};
use crate::error_map::{self, ErrorBody};
use crate::http::stream::{Flow, StreamParser};
use crate::secret::Secrets;
use crate::sse::SseEvent;

/// Parses OpenAI (and Azure, and compatible servers') stream events.
pub(crate) struct OpenAiStreamParser {
    created: u64,
    secret: Option<Secrets>,
}

impl OpenAiStreamParser {
    pub fn new(created: u64, secret: Option<Secrets>) -> Self {
        OpenAiStreamParser { created, secret }
    }
}

impl StreamParser for OpenAiStreamParser {
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow, Error> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let w: wire::ChatCompletionChunk =
            serde_json::from_str(data).map_err(|e| error_map::invalid_body("stream chunk", &e))?;
        if let Some(err) = &w.error {
            let body = ErrorBody::from_value(&serde_json::json!({ "error": err }));
            return Err(error_map::stream_error(&body, self.secret.as_ref()));
        }
        if w.object.as_deref() == Some("error") || event.event == "error" {
            let body = ErrorBody {
                message: w
                    .message
                    .as_ref()
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_owned)),
                kind: w.kind.as_ref().and_then(|k| k.as_str()).map(str::to_owned),
                ..ErrorBody::default()
            };
            return Err(error_map::stream_error(&body, self.secret.as_ref()));
        }
        if let Some(c) = convert::chunk(w, self.created) {
            out.push_back(c);
        }
        Ok(Flow::Continue)
    }

    fn incomplete(&self) -> Error {
        Error::new(ErrorKind::Transport, "stream ended before [DONE]")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            data: data.to_owned(),
            ..SseEvent::default()
        }
    }

    #[test]
    fn chunks_usage_and_done() {
        let mut p = OpenAiStreamParser::new(1, None);
        let mut out = VecDeque::new();
        let first = r#"{"id":"c1","object":"chat.completion.chunk","created":2,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#;
        assert_eq!(p.on_event(ev(first), &mut out).unwrap(), Flow::Continue);
        let tool = r#"{"id":"c1","object":"chat.completion.chunk","created":2,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}"#;
        p.on_event(ev(tool), &mut out).unwrap();
        let usage = r#"{"id":"c1","object":"chat.completion.chunk","created":2,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        p.on_event(ev(usage), &mut out).unwrap();
        assert_eq!(p.on_event(ev("[DONE]"), &mut out).unwrap(), Flow::Done);
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0].choices[0].delta.role,
            Some(llm_tower_core::Role::Assistant)
        );
        assert_eq!(
            out[1].choices[0].delta.tool_calls[0].id.as_deref(),
            Some("call_1")
        );
        let u = out[2].usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.cached_prompt_tokens),
            (9, 3, 4)
        );
    }

    #[test]
    fn error_objects_in_the_stream_are_errors() {
        let mut p = OpenAiStreamParser::new(1, None);
        let mut out = VecDeque::new();
        let e = p
            .on_event(
                ev(r#"{"error":{"message":"The server had an error","type":"server_error"}}"#),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Provider { status: 500 });
        let e = p
            .on_event(
                ev(r#"{"object":"error","message":"maximum context length is 4096 tokens","type":"BadRequestError","code":400}"#),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    }

    #[test]
    fn garbage_is_a_transport_error() {
        let mut p = OpenAiStreamParser::new(1, None);
        let mut out = VecDeque::new();
        let e = p.on_event(ev("{not json"), &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transport);
        assert!(e.message().contains("stream chunk"));
    }
}
