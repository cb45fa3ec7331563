//! OpenAI's chat-completions, completions and embeddings wire format (serde types).
//!
//! Requests borrow from our types; responses are parsed leniently (missing fields and
//! `null`s default) because OpenAI-compatible servers differ in what they send.

use llm_tower_core::{Embedding, Message, Stop, Tool};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `null` or missing -> `T::default()`.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A Unix time that some servers send as a float.
pub(crate) fn unix_secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.is_finite())
                    .map(|f| f as u64)
            })
            .unwrap_or(0),
        _ => 0,
    })
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `stream_options`.
#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    #[serde(skip_serializing_if = "is_false")]
    pub include_usage: bool,
    /// The client's other stream options (`include_obfuscation`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A chat completion request body.
#[derive(Debug, Serialize)]
pub(crate) struct ChatCompletionRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    #[serde(skip_serializing_if = "<[Tool]>::is_empty")]
    pub tools: &'a [Tool],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<&'a Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<&'a Value>,
    #[serde(skip_serializing_if = "is_false")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(flatten)]
    pub extra: &'a Map<String, Value>,
}

/// Token usage as OpenAI reports it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default, deserialize_with = "nullable")]
    pub prompt_tokens: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub completion_tokens: u64,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    #[serde(default)]
    pub audio_tokens: Option<u64>,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CompletionTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
    #[serde(default)]
    pub audio_tokens: Option<u64>,
}

/// A chat completion response body.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletionResponse {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default, deserialize_with = "unix_secs")]
    pub created: u64,
    #[serde(deserialize_with = "nullable")]
    pub choices: Vec<WireChoice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    #[serde(default)]
    pub service_tier: Option<String>,
    /// Everything else the server sent (`object` is dropped when converting).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One choice of a chat completion.
#[derive(Debug, Deserialize)]
pub(crate) struct WireChoice {
    #[serde(default, deserialize_with = "nullable")]
    pub index: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub message: WireMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The assistant message of a choice.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireMessage {
    /// Read so that it does not land in `extra` (the role is always the assistant's).
    #[serde(default)]
    #[allow(dead_code)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub tool_calls: Vec<WireToolCall>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    /// vLLM and some other servers call it `reasoning`.
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub thinking_blocks: Vec<llm_tower_core::ThinkingBlock>,
    /// `annotations`, `audio`, `function_call`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool call in a response.
#[derive(Debug, Deserialize)]
pub(crate) struct WireToolCall {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub function: WireFunction,
    /// `custom: {name, input}` of a custom tool call, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The function of a tool call; some servers send `arguments` as an object.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireFunction {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// One chunk of a streamed chat completion (or an error some servers send in its place).
#[derive(Debug, Deserialize)]
pub(crate) struct ChatCompletionChunk {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default, deserialize_with = "unix_secs")]
    pub created: u64,
    #[serde(default, deserialize_with = "nullable")]
    pub choices: Vec<WireChunkChoice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    /// `{"error": {...}}` sent inside the stream.
    #[serde(default)]
    pub error: Option<Value>,
    /// vLLM sends `{"object": "error", "message": ...}`.
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub message: Option<Value>,
    #[serde(default, rename = "type")]
    pub kind: Option<Value>,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    #[serde(default)]
    pub service_tier: Option<String>,
}

/// One choice's delta in a chunk.
#[derive(Debug, Deserialize)]
pub(crate) struct WireChunkChoice {
    #[serde(default, deserialize_with = "nullable")]
    pub index: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub delta: WireDelta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(default)]
    pub logprobs: Option<Value>,
}

/// What a chunk adds.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireDelta {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    pub tool_calls: Vec<WireToolCallDelta>,
    #[serde(default, deserialize_with = "nullable")]
    pub thinking_blocks: Vec<llm_tower_core::ThinkingBlock>,
}

/// A tool-call fragment.
#[derive(Debug, Deserialize)]
pub(crate) struct WireToolCallDelta {
    #[serde(default, deserialize_with = "nullable")]
    pub index: u32,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub function: Option<WireFunctionDelta>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Name and argument fragment.
#[derive(Debug, Deserialize)]
pub(crate) struct WireFunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// A legacy completion response body.
#[derive(Debug, Deserialize)]
pub(crate) struct CompletionResponse {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default, deserialize_with = "unix_secs")]
    pub created: u64,
    #[serde(deserialize_with = "nullable")]
    pub choices: Vec<WireCompletionChoice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

/// One choice of a legacy completion.
#[derive(Debug, Deserialize)]
pub(crate) struct WireCompletionChoice {
    #[serde(default, deserialize_with = "nullable")]
    pub index: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub text: String,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// An embeddings response body.
#[derive(Debug, Deserialize)]
pub(crate) struct EmbeddingsResponse {
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    pub data: Vec<Embedding>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}
