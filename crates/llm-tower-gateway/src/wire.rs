//! OpenAI's response JSON, written from llm-tower's types.
//!
//! The core types already use OpenAI's field names; this module adds what the wire needs
//! on top (`object`, `logprobs: null`, `usage` with `prompt_tokens_details.cached_tokens`,
//! `usage: null` in stream chunks when the client asked for usage) and writes it with
//! `serde_json` straight into a buffer, borrowing from the response.
//!
//! - [`encode_response`]: `chat.completion`, `text_completion`, or a `list` of
//!   `embedding`s.
//! - [`SseBody`]: a streamed `chat.completion.chunk` body, one HTTP body frame per chunk
//!   (`data: {json}\n\n`), ending with `data: [DONE]\n\n`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use llm_tower_core::{
    ChatChoice, ChatChunk, ChatResponse, ChatStream, ChunkChoice, CompletionChoice,
    CompletionResponse, Delta, Embedding, EmbeddingsResponse, Error, Message, ResponseBody, Usage,
};
use pin_project_lite::pin_project;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeStruct, Serializer};

use crate::openai_error::OpenAiError;

/// Usage as OpenAI writes it.
#[derive(Debug, Clone, Copy)]
pub struct UsageWire(pub Usage);

impl Serialize for UsageWire {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct PromptDetails {
            cached_tokens: u64,
            audio_tokens: u64,
        }
        #[derive(Serialize)]
        struct CompletionDetails {
            reasoning_tokens: u64,
            audio_tokens: u64,
        }
        let u = &self.0;
        let mut st = s.serialize_struct("Usage", 5)?;
        st.serialize_field("prompt_tokens", &u.prompt_tokens)?;
        st.serialize_field("completion_tokens", &u.completion_tokens)?;
        st.serialize_field("total_tokens", &u.total_tokens)?;
        st.serialize_field(
            "prompt_tokens_details",
            &PromptDetails {
                cached_tokens: u.cached_prompt_tokens,
                audio_tokens: u.audio_prompt_tokens,
            },
        )?;
        st.serialize_field(
            "completion_tokens_details",
            &CompletionDetails {
                reasoning_tokens: u.reasoning_tokens,
                audio_tokens: u.audio_completion_tokens,
            },
        )?;
        st.end()
    }
}

/// Writes `extra` entries into a map, skipping keys already written.
fn extra_entries<M: SerializeMap>(
    m: &mut M,
    extra: &serde_json::Map<String, serde_json::Value>,
    written: &[&str],
) -> Result<(), M::Error> {
    for (k, v) in extra {
        if !written.contains(&k.as_str()) {
            m.serialize_entry(k, v)?;
        }
    }
    Ok(())
}

/// Embeddings usage: `prompt_tokens` and `total_tokens` only.
struct EmbeddingUsageWire(Usage);

impl Serialize for EmbeddingUsageWire {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Usage", 2)?;
        st.serialize_field("prompt_tokens", &self.0.prompt_tokens)?;
        st.serialize_field("total_tokens", &self.0.total_tokens)?;
        st.end()
    }
}

/// Serializes an iterator as a JSON array without collecting it.
struct Seq<F>(F);

impl<F, I> Serialize for Seq<F>
where
    F: Fn() -> I,
    I: IntoIterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((self.0)())
    }
}

/// A choice: index, message, `logprobs` (`null` unless the provider sent them),
/// finish reason, and the other fields the provider sent.
struct ChatChoiceWire<'a>(&'a ChatChoice);

impl<'a> From<&'a ChatChoice> for ChatChoiceWire<'a> {
    fn from(c: &'a ChatChoice) -> Self {
        ChatChoiceWire(c)
    }
}

impl Serialize for ChatChoiceWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("index", &c.index)?;
        m.serialize_entry("message", &MessageWire(&c.message))?;
        m.serialize_entry("logprobs", &c.logprobs)?;
        m.serialize_entry("finish_reason", &c.finish_reason)?;
        extra_entries(
            &mut m,
            &c.extra,
            &["index", "message", "logprobs", "finish_reason"],
        )?;
        m.end()
    }
}

/// An assistant message as OpenAI writes it: `refusal` always present (`null` when none),
/// the rest as the core type writes it.
struct MessageWire<'a>(&'a Message);

impl Serialize for MessageWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let msg = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("role", &msg.role)?;
        m.serialize_entry("content", &msg.content)?;
        m.serialize_entry("refusal", &msg.refusal)?;
        if let Some(n) = &msg.name {
            m.serialize_entry("name", n)?;
        }
        if !msg.tool_calls.is_empty() {
            m.serialize_entry("tool_calls", &msg.tool_calls)?;
        }
        if let Some(r) = &msg.reasoning_content {
            m.serialize_entry("reasoning_content", r)?;
        }
        if !msg.thinking_blocks.is_empty() {
            m.serialize_entry("thinking_blocks", &msg.thinking_blocks)?;
        }
        extra_entries(
            &mut m,
            &msg.extra,
            &[
                "role",
                "content",
                "refusal",
                "name",
                "tool_calls",
                "reasoning_content",
                "thinking_blocks",
            ],
        )?;
        m.end()
    }
}

/// A `chat.completion` object.
pub struct ChatWire<'a> {
    /// The completion.
    pub resp: &'a ChatResponse,
    /// Its usage, when known.
    pub usage: Option<Usage>,
}

impl Serialize for ChatWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.resp;
        let mut st = s.serialize_map(None)?;
        st.serialize_entry("id", &r.id)?;
        st.serialize_entry("object", "chat.completion")?;
        st.serialize_entry("created", &r.created)?;
        st.serialize_entry("model", &r.model)?;
        st.serialize_entry(
            "choices",
            &Seq(|| r.choices.iter().map(ChatChoiceWire::from)),
        )?;
        if let Some(u) = self.usage {
            st.serialize_entry("usage", &UsageWire(u))?;
        }
        if let Some(fp) = &r.system_fingerprint {
            st.serialize_entry("system_fingerprint", fp)?;
        }
        if let Some(t) = &r.service_tier {
            st.serialize_entry("service_tier", t)?;
        }
        extra_entries(
            &mut st,
            &r.extra,
            &[
                "id",
                "object",
                "created",
                "model",
                "choices",
                "usage",
                "system_fingerprint",
                "service_tier",
            ],
        )?;
        st.end()
    }
}

#[derive(Serialize)]
struct CompletionChoiceWire<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

impl<'a> From<&'a CompletionChoice> for CompletionChoiceWire<'a> {
    fn from(c: &'a CompletionChoice) -> Self {
        CompletionChoiceWire {
            text: &c.text,
            index: c.index,
            logprobs: None,
            finish_reason: c.finish_reason.as_deref(),
        }
    }
}

struct CompletionWire<'a> {
    resp: &'a CompletionResponse,
    usage: Option<Usage>,
}

impl Serialize for CompletionWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.resp;
        let mut st = s.serialize_struct("Completion", 6)?;
        st.serialize_field("id", &r.id)?;
        st.serialize_field("object", "text_completion")?;
        st.serialize_field("created", &r.created)?;
        st.serialize_field("model", &r.model)?;
        st.serialize_field(
            "choices",
            &Seq(|| r.choices.iter().map(CompletionChoiceWire::from)),
        )?;
        if let Some(u) = self.usage {
            st.serialize_field("usage", &UsageWire(u))?;
        }
        st.end()
    }
}

#[derive(Serialize)]
struct EmbeddingWire<'a> {
    object: &'static str,
    index: u32,
    embedding: &'a llm_tower_core::EmbeddingVector,
}

impl<'a> From<&'a Embedding> for EmbeddingWire<'a> {
    fn from(e: &'a Embedding) -> Self {
        EmbeddingWire {
            object: "embedding",
            index: e.index,
            embedding: &e.embedding,
        }
    }
}

struct EmbeddingsWire<'a> {
    resp: &'a EmbeddingsResponse,
    usage: Option<Usage>,
}

impl Serialize for EmbeddingsWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.resp;
        let mut st = s.serialize_struct("Embeddings", 4)?;
        st.serialize_field("object", "list")?;
        st.serialize_field("data", &Seq(|| r.data.iter().map(EmbeddingWire::from)))?;
        st.serialize_field("model", &r.model)?;
        st.serialize_field("usage", &EmbeddingUsageWire(self.usage.unwrap_or_default()))?;
        st.end()
    }
}

#[derive(Serialize)]
struct ChunkChoiceWire<'a> {
    index: u32,
    delta: &'a Delta,
    logprobs: &'a Option<serde_json::Value>,
    finish_reason: Option<&'a str>,
}

impl<'a> From<&'a ChunkChoice> for ChunkChoiceWire<'a> {
    fn from(c: &'a ChunkChoice) -> Self {
        ChunkChoiceWire {
            index: c.index,
            delta: &c.delta,
            logprobs: &c.logprobs,
            finish_reason: c.finish_reason.as_deref(),
        }
    }
}

/// A `chat.completion.chunk` object.
pub struct ChunkWire<'a> {
    /// The chunk.
    pub chunk: &'a ChatChunk,
    /// `true` when the client asked for usage: every chunk then has a `usage` field
    /// (`null` except in the last one), as OpenAI sends it.
    pub include_usage: bool,
}

impl Serialize for ChunkWire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.chunk;
        let mut st = s.serialize_map(None)?;
        st.serialize_entry("id", &c.id)?;
        st.serialize_entry("object", "chat.completion.chunk")?;
        st.serialize_entry("created", &c.created)?;
        st.serialize_entry("model", &c.model)?;
        st.serialize_entry(
            "choices",
            &Seq(|| c.choices.iter().map(ChunkChoiceWire::from)),
        )?;
        if self.include_usage {
            st.serialize_entry("usage", &c.usage.map(UsageWire))?;
        }
        extra_entries(
            &mut st,
            &c.extra,
            &[
                "id", "object", "created", "model", "choices", "usage", "cost",
            ],
        )?;
        st.end()
    }
}

/// Writes a non-streamed response body as OpenAI's JSON. A stream body is not encoded
/// here (see [`SseBody`]) and gives `None`.
///
/// # Errors
/// Only if serialization fails (it does not for these types).
pub fn encode_response(
    body: &ResponseBody,
    usage: Option<Usage>,
) -> Option<Result<Bytes, serde_json::Error>> {
    let v = match body {
        ResponseBody::Chat(resp) => serde_json::to_vec(&ChatWire { resp, usage }),
        ResponseBody::Completion(resp) => serde_json::to_vec(&CompletionWire { resp, usage }),
        ResponseBody::Embeddings(resp) => serde_json::to_vec(&EmbeddingsWire { resp, usage }),
        ResponseBody::Stream(_) => return None,
    };
    Some(v.map(Bytes::from))
}

/// The terminating event of a stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SseState {
    Streaming,
    Done,
}

pin_project! {
    /// A `text/event-stream` body over a [`ChatStream`]: each chunk becomes its own body
    /// frame `data: {json}\n\n` as soon as it arrives (no buffering), and the stream ends
    /// with `data: [DONE]\n\n`.
    ///
    /// Without `include_usage`, the usage-only last chunk is dropped and no chunk carries
    /// a `usage` field. An error in the stream becomes one last event
    /// `data: {"error": {...}}` in OpenAI's error shape (the SDKs raise it), without
    /// `[DONE]`; so does a stream still running at its deadline
    /// ([`with_deadline`](SseBody::with_deadline)).
    pub struct SseBody {
        #[pin]
        stream: ChatStream,
        include_usage: bool,
        buf: BytesMut,
        state: SseState,
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl SseBody {
    /// A body over `stream`.
    pub fn new(stream: ChatStream, include_usage: bool) -> Self {
        SseBody {
            stream,
            include_usage,
            buf: BytesMut::new(),
            state: SseState::Streaming,
            deadline: None,
        }
    }

    /// Ends the stream with a timeout error event if it is still running at `deadline`.
    #[must_use]
    pub fn with_deadline(mut self, deadline: tokio::time::Instant) -> Self {
        self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline)));
        self
    }
}

fn encode_event(buf: &mut BytesMut, value: &impl Serialize) -> Bytes {
    buf.reserve(512);
    buf.put_slice(b"data: ");
    let mut w = buf.writer();
    if serde_json::to_writer(&mut w, value).is_err() {
        // Unreachable for our types; keep the stream well-formed anyway.
        w.get_mut().put_slice(b"{}");
    }
    let buf = w.into_inner();
    buf.put_slice(b"\n\n");
    buf.split().freeze()
}

fn error_event(buf: &mut BytesMut, e: &Error) -> Bytes {
    let body = OpenAiError::from_error(e).body();
    buf.reserve(body.len() + 8);
    buf.put_slice(b"data: ");
    buf.put_slice(&body);
    buf.put_slice(b"\n\n");
    buf.split().freeze()
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        loop {
            if *this.state == SseState::Done {
                return Poll::Ready(None);
            }
            match this.stream.as_mut().poll_next(cx) {
                Poll::Pending => {
                    if let Some(d) = this.deadline.as_mut()
                        && d.as_mut().poll(cx).is_ready()
                    {
                        *this.state = SseState::Done;
                        let e = Error::timeout("the stream ran past the gateway's request timeout");
                        return Poll::Ready(Some(Ok(Frame::data(error_event(this.buf, &e)))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    if !*this.include_usage && chunk.usage.is_some() && chunk.choices.is_empty() {
                        continue;
                    }
                    let data = encode_event(
                        this.buf,
                        &ChunkWire {
                            chunk: &chunk,
                            include_usage: *this.include_usage,
                        },
                    );
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "stream failed after its start");
                    *this.state = SseState::Done;
                    return Poll::Ready(Some(Ok(Frame::data(error_event(this.buf, &e)))));
                }
                Poll::Ready(None) => {
                    *this.state = SseState::Done;
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(DONE)))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == SseState::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_tower_core::{ChatRequest, Role, UsageSource};

    #[test]
    fn chat_completion_shape() {
        let resp = ChatResponse {
            extra: Default::default(),
            service_tier: None,
            id: "chatcmpl-1".into(),
            model: "gpt-4o".into(),
            created: 7,
            choices: vec![ChatChoice {
                extra: Default::default(),
                logprobs: None,
                index: 0,
                message: Message::assistant("hi"),
                finish_reason: Some("stop".into()),
            }],
            system_fingerprint: None,
            native: None,
        };
        let usage = Usage::new(10, 2, UsageSource::Provider).with_cached(4);
        let v: serde_json::Value = serde_json::to_value(ChatWire {
            resp: &resp,
            usage: Some(usage),
        })
        .unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
        assert_eq!(v["choices"][0]["logprobs"], serde_json::Value::Null);
        assert_eq!(v["usage"]["total_tokens"], 12);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
        assert!(v["usage"].get("source").is_none());
        let _ = ChatRequest::new("m", vec![]);
        let _ = Role::User;
    }

    #[test]
    fn chunk_usage_field_only_when_asked() {
        let chunk = ChatChunk {
            extra: Default::default(),
            id: "c".into(),
            model: "m".into(),
            created: 1,
            choices: vec![],
            usage: None,
            cost: None,
            native: None,
        };
        let v = serde_json::to_value(ChunkWire {
            chunk: &chunk,
            include_usage: true,
        })
        .unwrap();
        assert_eq!(v["object"], "chat.completion.chunk");
        assert!(v.get("usage").is_some_and(|u| u.is_null()));
        let v = serde_json::to_value(ChunkWire {
            chunk: &chunk,
            include_usage: false,
        })
        .unwrap();
        assert!(v.get("usage").is_none());
    }

    #[test]
    fn chunk_cost_stays_off_the_wire() {
        // The cost layer prices the usage chunk; OpenAI clients must not see the field.
        let chunk = ChatChunk {
            extra: Default::default(),
            id: "c".into(),
            model: "m".into(),
            created: 1,
            choices: vec![],
            usage: Some(Usage::new(3, 2, llm_tower_core::UsageSource::Provider)),
            cost: Some(llm_tower_core::Money::from_nanos(42)),
            native: None,
        };
        let v = serde_json::to_value(ChunkWire {
            chunk: &chunk,
            include_usage: true,
        })
        .unwrap();
        assert_eq!(v["usage"]["total_tokens"], 5, "{v}");
        assert!(!v.to_string().contains("cost"), "{v}");
    }
}
