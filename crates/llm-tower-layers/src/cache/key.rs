//! [`CacheKey`]: the SHA-256 of a normalised request.

use std::fmt;
use std::io;

use llm_tower_core::{
    ChatRequest, ClientHeaders, CompletionRequest, EmbeddingsRequest, LlmRequest, RequestBody,
    ResponsesBody,
};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Version of the key layout: a change of what goes into the key changes it, so entries
/// written by another version are never read as answers to a different question.
const KEY_VERSION: u8 = 1;

/// Fields of `extra` (and of a Responses API body) that do not change the answer: the
/// streaming flags (a streamed request may be served from a whole answer and the other way
/// round), who asks and what the provider keeps.
const IGNORED: [&str; 9] = [
    "stream",
    "stream_options",
    "user",
    "metadata",
    "store",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "background",
];

/// The key of a cache entry: the SHA-256 of the request's normalised content.
///
/// Made by [`CacheKey::of`]. What goes in:
/// - the operation (chat, completion, embeddings) and the model as requested (a route
///   alias stays the alias);
/// - for chat: messages, tools, `tool_choice`, `response_format`, `max_tokens`,
///   `temperature`, `top_p`, `n` (1 and unset are the same), `stop`, the penalties,
///   `seed`; for completions the prompt and its sampling fields; for embeddings the input,
///   `encoding_format` and `dimensions`;
/// - every field of `extra` (provider-specific fields such as `logprobs`,
///   `reasoning_effort`, `parallel_tool_calls`) except `stream`, `stream_options`, `user`,
///   `metadata`, `store`, `safety_identifier`, `prompt_cache_key`,
///   `prompt_cache_retention` and `background`;
/// - the original body of a Responses API request ([`ResponsesBody`], less the same
///   fields) and the client's `anthropic-version`/`anthropic-beta` ([`ClientHeaders`]),
///   which a provider may forward;
/// - the cache scope (the caller, for a per-caller cache).
///
/// What stays out: `stream` and `stream_options`, `user`, the request id, the deadline,
/// tags. Maps are hashed in their own order: two requests whose JSON objects list the
/// same fields in another order may get two entries, never a wrong answer.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of `req` in `scope` (`None`: one scope for everybody).
    pub fn of(req: &LlmRequest, scope: Option<&str>) -> CacheKey {
        let mut w = HashWriter(Sha256::new());
        let client = req.extensions.get::<ClientHeaders>().map(|c| ClientView {
            version: c.anthropic_version.as_deref(),
            beta: &c.anthropic_beta,
        });
        let responses = ResponsesBody::of(req).map(|b| Filtered(&b.body));
        let head = Head {
            v: KEY_VERSION,
            scope,
            client,
            responses,
        };
        // Writing into a hasher cannot fail, nor can serializing these types (no map has
        // non-string keys).
        let _ = serde_json::to_writer(&mut w, &head);
        let _ = match &req.body {
            RequestBody::Chat(c) => serde_json::to_writer(&mut w, &ChatView::new(c)),
            RequestBody::Completion(c) => serde_json::to_writer(&mut w, &CompletionView::new(c)),
            RequestBody::Embeddings(e) => serde_json::to_writer(&mut w, &EmbeddingsView::new(e)),
        };
        CacheKey(w.0.finalize().into())
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> CacheKey {
        CacheKey(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hexadecimal (64 characters), for stores keyed by strings.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..16])
    }
}

struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Serialize)]
struct Head<'a> {
    v: u8,
    scope: Option<&'a str>,
    client: Option<ClientView<'a>>,
    responses: Option<Filtered<'a>>,
}

#[derive(Serialize)]
struct ClientView<'a> {
    version: Option<&'a str>,
    beta: &'a [String],
}

/// A JSON object without the [`IGNORED`] fields.
struct Filtered<'a>(&'a Map<String, Value>);

impl Serialize for Filtered<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.0 {
            if !IGNORED.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct ChatView<'a> {
    op: &'static str,
    model: &'a str,
    messages: &'a [llm_tower_core::Message],
    tools: &'a [llm_tower_core::Tool],
    tool_choice: Option<&'a Value>,
    response_format: Option<&'a Value>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<u32>,
    stop: Option<&'a llm_tower_core::Stop>,
    presence_penalty: Option<f64>,
    frequency_penalty: Option<f64>,
    seed: Option<i64>,
    extra: Filtered<'a>,
}

impl<'a> ChatView<'a> {
    fn new(c: &'a ChatRequest) -> Self {
        ChatView {
            op: "chat",
            model: &c.model,
            messages: &c.messages,
            tools: &c.tools,
            tool_choice: c.tool_choice.as_ref(),
            response_format: c.response_format.as_ref(),
            max_tokens: c.max_tokens,
            temperature: c.temperature,
            top_p: c.top_p,
            n: c.n.filter(|&n| n != 1),
            stop: c.stop.as_ref(),
            presence_penalty: c.presence_penalty,
            frequency_penalty: c.frequency_penalty,
            seed: c.seed,
            extra: Filtered(&c.extra),
        }
    }
}

#[derive(Serialize)]
struct CompletionView<'a> {
    op: &'static str,
    model: &'a str,
    prompt: &'a llm_tower_core::Prompt,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Option<&'a llm_tower_core::Stop>,
    extra: Filtered<'a>,
}

impl<'a> CompletionView<'a> {
    fn new(c: &'a CompletionRequest) -> Self {
        CompletionView {
            op: "completion",
            model: &c.model,
            prompt: &c.prompt,
            max_tokens: c.max_tokens,
            temperature: c.temperature,
            top_p: c.top_p,
            stop: c.stop.as_ref(),
            extra: Filtered(&c.extra),
        }
    }
}

#[derive(Serialize)]
struct EmbeddingsView<'a> {
    op: &'static str,
    model: &'a str,
    input: &'a llm_tower_core::EmbeddingInput,
    encoding_format: Option<&'a str>,
    dimensions: Option<u32>,
    extra: Filtered<'a>,
}

impl<'a> EmbeddingsView<'a> {
    fn new(e: &'a EmbeddingsRequest) -> Self {
        EmbeddingsView {
            op: "embeddings",
            model: &e.model,
            input: &e.input,
            encoding_format: e.encoding_format.as_deref(),
            dimensions: e.dimensions,
            extra: Filtered(&e.extra),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_tower_core::{Message, StreamOptions};
    use serde_json::json;

    fn chat() -> ChatRequest {
        let mut c = ChatRequest::new("gpt-4o-mini", vec![Message::user("hi")]);
        c.temperature = Some(0.0);
        c
    }

    fn key(c: ChatRequest) -> CacheKey {
        CacheKey::of(&LlmRequest::chat(c), None)
    }

    #[test]
    fn streaming_user_and_metadata_do_not_change_the_key() {
        let base = key(chat());
        let mut c = chat().streaming();
        c.user = Some("u-1".into());
        c.extra.insert("metadata".into(), json!({"trace": "x"}));
        c.extra.insert("store".into(), json!(true));
        c.stream_options = Some(StreamOptions {
            include_usage: false,
            extra: Map::new(),
        });
        assert_eq!(key(c), base);
        let mut c = chat();
        c.n = Some(1);
        assert_eq!(key(c), base);
    }

    #[test]
    fn everything_that_changes_the_answer_changes_the_key() {
        let base = key(chat());
        type Change = Box<dyn Fn(&mut ChatRequest)>;
        let variants: Vec<Change> = vec![
            Box::new(|c| c.model = "gpt-4o".into()),
            Box::new(|c| c.messages.push(Message::user("more"))),
            Box::new(|c| c.temperature = Some(0.5)),
            Box::new(|c| c.temperature = None),
            Box::new(|c| c.top_p = Some(0.5)),
            Box::new(|c| c.max_tokens = Some(10)),
            Box::new(|c| c.n = Some(2)),
            Box::new(|c| c.seed = Some(7)),
            Box::new(|c| c.stop = Some(llm_tower_core::Stop::One("x".into()))),
            Box::new(|c| c.response_format = Some(json!({"type": "json_object"}))),
            Box::new(|c| c.tool_choice = Some(json!("none"))),
            Box::new(|c| {
                c.extra.insert("reasoning_effort".into(), json!("low"));
            }),
        ];
        let mut seen = std::collections::HashSet::new();
        seen.insert(base);
        for v in variants {
            let mut c = chat();
            v(&mut c);
            assert!(seen.insert(key(c)), "a variant collided");
        }
    }

    #[test]
    fn scope_operation_and_client_headers_separate_keys() {
        let req = LlmRequest::chat(chat());
        assert_ne!(CacheKey::of(&req, Some("a")), CacheKey::of(&req, Some("b")));
        assert_ne!(CacheKey::of(&req, Some("a")), CacheKey::of(&req, None));
        let mut with_beta = LlmRequest::chat(chat());
        let mut h = ClientHeaders::default();
        h.add_beta("x-1");
        with_beta.extensions.insert(h);
        assert_ne!(CacheKey::of(&with_beta, None), CacheKey::of(&req, None));
        let emb = LlmRequest::embeddings(EmbeddingsRequest {
            model: "gpt-4o-mini".into(),
            input: llm_tower_core::EmbeddingInput::One("hi".into()),
            encoding_format: None,
            dimensions: None,
            user: Some("u".into()),
            extra: Map::new(),
        });
        assert_ne!(CacheKey::of(&emb, None), CacheKey::of(&req, None));
        assert_eq!(CacheKey::of(&req, None).to_hex().len(), 64);
    }
}
