//! Request and response bodies in the OpenAI-compatible shape that every provider maps to.
//!
//! The serde representation is OpenAI's wire format, so the gateway can parse a request
//! body straight into these types. Nothing is lost on the way: fields a provider
//! understands but we do not model land in an `extra` map at every level (request,
//! message, content part, tool, response, choice, chunk) and pass through untouched;
//! content parts and tools of types we do not know are kept as raw JSON.
//!
//! Beyond OpenAI's own fields, the shape carries what other providers send back, in the
//! names OpenAI-compatible servers use for them:
//! - `reasoning_content`: reasoning text (DeepSeek, vLLM, and the text of Anthropic's
//!   thinking), on messages and stream deltas;
//! - `thinking_blocks`: Anthropic's `thinking` and `redacted_thinking` blocks with their
//!   signatures, which must be sent back unchanged on the next turn;
//! - `cache_control` (Anthropic prompt caching) in the `extra` map of a system or user
//!   message, a content part or a tool.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::money::Money;
use crate::usage::Usage;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System instructions.
    System,
    /// Developer instructions (OpenAI's newer name for system).
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

impl Role {
    /// The role as OpenAI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// The content of a message: plain text or a list of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<ContentPart>),
}

impl Content {
    /// All text of the content, parts joined without separator.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Content::Text(t) => std::borrow::Cow::Borrowed(t),
            Content::Parts(parts) => {
                let mut s = String::new();
                for p in parts {
                    if let ContentPart::Text { text, .. } = p {
                        s.push_str(text);
                    }
                }
                std::borrow::Cow::Owned(s)
            }
        }
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Content::Text(s.to_owned())
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Content::Text(s)
    }
}

/// One part of a multi-part message.
///
/// Serialized as OpenAI's tagged object (`{"type": "text", "text": ...}`); fields beyond
/// the modelled ones (such as Anthropic's `cache_control`) are kept in `extra`, and a part
/// of a type not modelled here is kept whole as [`ContentPart::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    /// A text part.
    Text {
        /// The text.
        text: String,
        /// Other fields of the part (`cache_control`, ...).
        extra: Map<String, Value>,
    },
    /// An image by URL (`https://` or a `data:` URL).
    ImageUrl {
        /// The image.
        image_url: ImageUrl,
        /// Other fields of the part.
        extra: Map<String, Value>,
    },
    /// Audio input (`{"type": "input_audio", "input_audio": {"data", "format"}}`).
    InputAudio {
        /// The audio.
        input_audio: InputAudio,
        /// Other fields of the part.
        extra: Map<String, Value>,
    },
    /// A file: a PDF or another document (`{"type": "file", "file": {...}}`).
    File {
        /// The file.
        file: FileData,
        /// Other fields of the part.
        extra: Map<String, Value>,
    },
    /// A part of another type, kept as it came.
    Other(Value),
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text {
            text: text.into(),
            extra: Map::new(),
        }
    }

    /// An image part by URL.
    pub fn image_url(url: impl Into<String>) -> Self {
        ContentPart::ImageUrl {
            image_url: ImageUrl {
                extra: Default::default(),
                url: url.into(),
                detail: None,
            },
            extra: Map::new(),
        }
    }

    /// The part's `type`.
    pub fn kind(&self) -> &str {
        match self {
            ContentPart::Text { .. } => "text",
            ContentPart::ImageUrl { .. } => "image_url",
            ContentPart::InputAudio { .. } => "input_audio",
            ContentPart::File { .. } => "file",
            ContentPart::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// The part's other fields (`cache_control`, ...); `None` for [`ContentPart::Other`].
    pub fn extra(&self) -> Option<&Map<String, Value>> {
        match self {
            ContentPart::Text { extra, .. }
            | ContentPart::ImageUrl { extra, .. }
            | ContentPart::InputAudio { extra, .. }
            | ContentPart::File { extra, .. } => Some(extra),
            ContentPart::Other(_) => None,
        }
    }

    /// Mutable access to the part's other fields; `None` for [`ContentPart::Other`].
    pub fn extra_mut(&mut self) -> Option<&mut Map<String, Value>> {
        match self {
            ContentPart::Text { extra, .. }
            | ContentPart::ImageUrl { extra, .. }
            | ContentPart::InputAudio { extra, .. }
            | ContentPart::File { extra, .. } => Some(extra),
            ContentPart::Other(_) => None,
        }
    }
}

impl Serialize for ContentPart {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (kind, field, value, extra): (&str, &str, Value, &Map<String, Value>) = match self {
            ContentPart::Other(v) => return v.serialize(serializer),
            ContentPart::Text { text, extra } => {
                ("text", "text", Value::String(text.clone()), extra)
            }
            ContentPart::ImageUrl { image_url, extra } => (
                "image_url",
                "image_url",
                serde_json::to_value(image_url).map_err(serde::ser::Error::custom)?,
                extra,
            ),
            ContentPart::InputAudio { input_audio, extra } => (
                "input_audio",
                "input_audio",
                serde_json::to_value(input_audio).map_err(serde::ser::Error::custom)?,
                extra,
            ),
            ContentPart::File { file, extra } => (
                "file",
                "file",
                serde_json::to_value(file).map_err(serde::ser::Error::custom)?,
                extra,
            ),
        };
        let mut map = serializer.serialize_map(Some(2 + extra.len()))?;
        map.serialize_entry("type", kind)?;
        map.serialize_entry(field, &value)?;
        for (k, v) in extra {
            if k != "type" && k != field {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = Value::deserialize(deserializer)?;
        let Value::Object(mut map) = value else {
            return Err(D::Error::custom("a content part must be an object"));
        };
        let kind = match map.get("type") {
            Some(Value::String(k)) => k.clone(),
            Some(_) => {
                return Err(D::Error::custom(
                    "`type` of a content part must be a string",
                ));
            }
            None => return Err(D::Error::missing_field("type")),
        };
        let mut take = |field: &'static str| {
            map.remove(field)
                .ok_or_else(|| D::Error::missing_field(field))
        };
        let part = match kind.as_str() {
            "text" => match take("text")? {
                Value::String(text) => ContentPart::Text {
                    text,
                    extra: Map::new(),
                },
                _ => return Err(D::Error::custom("`text` of a text part must be a string")),
            },
            "image_url" => ContentPart::ImageUrl {
                image_url: serde_json::from_value(take("image_url")?).map_err(D::Error::custom)?,
                extra: Map::new(),
            },
            "input_audio" => ContentPart::InputAudio {
                input_audio: serde_json::from_value(take("input_audio")?)
                    .map_err(D::Error::custom)?,
                extra: Map::new(),
            },
            "file" => ContentPart::File {
                file: serde_json::from_value(take("file")?).map_err(D::Error::custom)?,
                extra: Map::new(),
            },
            _ => return Ok(ContentPart::Other(Value::Object(map))),
        };
        map.remove("type");
        Ok(match part {
            ContentPart::Text { text, .. } => ContentPart::Text { text, extra: map },
            ContentPart::ImageUrl { image_url, .. } => ContentPart::ImageUrl {
                image_url,
                extra: map,
            },
            ContentPart::InputAudio { input_audio, .. } => ContentPart::InputAudio {
                input_audio,
                extra: map,
            },
            ContentPart::File { file, .. } => ContentPart::File { file, extra: map },
            other => other,
        })
    }
}

/// An image reference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// `https://...` or `data:image/png;base64,...`.
    pub url: String,
    /// `low`, `high` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Audio input: base64 data and its format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputAudio {
    /// Base64 of the audio.
    pub data: String,
    /// `wav`, `mp3`, ...
    pub format: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A file sent with a message: an uploaded file's id, or the file's data inline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileData {
    /// An uploaded file's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// The file as a `data:` URL (`data:application/pdf;base64,...`) or base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<String>,
    /// The file's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A reasoning block of Anthropic's extended thinking, kept with its signature so it can be
/// sent back unchanged on the next turn (the API verifies it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock {
    /// Visible thinking.
    Thinking {
        /// The thinking text.
        thinking: String,
        /// The signature of the block (empty while a stream has not delivered it).
        #[serde(default)]
        signature: String,
    },
    /// Thinking the provider encrypted.
    RedactedThinking {
        /// The encrypted data.
        data: String,
    },
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The author.
    pub role: Role,
    /// The content; `None` for an assistant message that only calls tools.
    #[serde(default)]
    pub content: Option<Content>,
    /// An optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls made by the assistant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// A refusal by the model (OpenAI), apart from the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Reasoning text (DeepSeek's and vLLM's `reasoning_content`; the text of Anthropic's
    /// thinking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Anthropic thinking blocks with their signatures, in order; an assistant message
    /// sends them back before its text and tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock>,
    /// Other fields of the message (`annotations`, `audio`, `cache_control`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message of `role` with no content.
    pub fn empty(role: Role) -> Self {
        Message {
            role,
            content: None,
            name: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            refusal: None,
            reasoning_content: None,
            thinking_blocks: Vec::new(),
            extra: Map::new(),
        }
    }

    fn plain(role: Role, text: impl Into<String>) -> Self {
        Message {
            content: Some(Content::Text(text.into())),
            ..Message::empty(role)
        }
    }

    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Message::plain(Role::System, text)
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Message::plain(Role::User, text)
    }

    /// An assistant message.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::plain(Role::Assistant, text)
    }

    /// A tool result answering `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        let mut m = Message::plain(Role::Tool, text);
        m.tool_call_id = Some(tool_call_id.into());
        m
    }

    /// The text of the message (empty when it has none).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        self.content.as_ref().map(Content::text).unwrap_or_default()
    }
}

/// A tool the model may call: a function, or a tool of another type (`custom`, a
/// provider's built-in tool) whose fields are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `function`, `custom`, ...
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function, for a `function` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDef>,
    /// Other fields (`custom: {...}`, `cache_control`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tool {
    /// A function tool.
    pub fn function(function: FunctionDef) -> Self {
        Tool {
            kind: function_type(),
            function: Some(function),
            extra: Map::new(),
        }
    }

    /// The tool's name: the function's, or `name` inside the tool type's own object
    /// (`{"type": "custom", "custom": {"name": ...}}`), or a top-level `name`.
    pub fn name(&self) -> Option<&str> {
        if let Some(f) = &self.function {
            return Some(&f.name);
        }
        self.extra
            .get(&self.kind)
            .and_then(|v| v.get("name"))
            .or_else(|| self.extra.get("name"))
            .and_then(Value::as_str)
    }
}

fn function_type() -> String {
    "function".to_owned()
}

/// A function definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    /// The function's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// OpenAI structured-output strictness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl FunctionDef {
    /// A function with a name and nothing else.
    pub fn new(name: impl Into<String>) -> Self {
        FunctionDef {
            name: name.into(),
            description: None,
            parameters: None,
            strict: None,
            extra: Map::new(),
        }
    }
}

/// A call of a tool by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, echoed by the tool result.
    pub id: String,
    /// `function`, or another tool type (`custom`), whose fields are in `extra`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Name and JSON arguments (empty for a call of another type).
    #[serde(default, skip_serializing_if = "FunctionCall::is_empty")]
    pub function: FunctionCall,
    /// Other fields (`custom: {"name", "input"}`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ToolCall {
    /// A function call.
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            kind: function_type(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
            extra: Map::new(),
        }
    }
}

/// The function part of a tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON document as a string.
    pub arguments: String,
}

impl FunctionCall {
    /// `true` when both name and arguments are empty.
    pub fn is_empty(&self) -> bool {
        self.name.is_empty() && self.arguments.is_empty()
    }
}

/// Whether and which tool the model must call: `"none"`, `"auto"`, `"required"` or an object.
pub type ToolChoice = Value;

/// Stop sequences: one string or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The stop sequences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

/// Streaming options (`stream_options`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the usage of the whole request.
    #[serde(default)]
    pub include_usage: bool,
    /// Other options (`include_obfuscation`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A chat completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name or route alias.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Maximum output tokens (`max_tokens`; `max_completion_tokens` is accepted too).
    #[serde(
        default,
        alias = "max_completion_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Number of choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Seed for sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Response format (`{"type":"json_object"}`, JSON schema, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Stream the answer as chunks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Streaming options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Provider-specific fields, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// A request with a model and messages and nothing else set.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            tools: Vec::new(),
            tool_choice: None,
            max_tokens: None,
            temperature: None,
            top_p: None,
            n: None,
            stop: None,
            presence_penalty: None,
            frequency_penalty: None,
            seed: None,
            response_format: None,
            stream: false,
            stream_options: None,
            user: None,
            extra: Map::new(),
        }
    }

    /// Sets `max_tokens`.
    #[must_use]
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = Some(n);
        self
    }

    /// Asks for a streamed answer with usage in the last chunk.
    #[must_use]
    pub fn streaming(mut self) -> Self {
        self.stream = true;
        self.stream_options = Some(StreamOptions {
            extra: Default::default(),
            include_usage: true,
        });
        self
    }
}

/// Why the model stopped.
pub type FinishReason = String;

/// A chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Response id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// The choices.
    pub choices: Vec<ChatChoice>,
    /// Backend fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// The service tier that served the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Other fields the provider sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The provider's own response JSON, when it answered a request in a wire format the
    /// client also speaks (an OpenAI Responses API object for a request carrying a
    /// [`ResponsesBody`](crate::ResponsesBody)); the gateway passes it on unchanged. Not
    /// serialized.
    #[serde(skip)]
    pub native: Option<Arc<Value>>,
}

impl ChatResponse {
    /// A response with its choices and nothing else.
    pub fn new(
        id: impl Into<String>,
        model: impl Into<String>,
        created: u64,
        choices: Vec<ChatChoice>,
    ) -> Self {
        ChatResponse {
            id: id.into(),
            model: model.into(),
            created,
            choices,
            system_fingerprint: None,
            service_tier: None,
            extra: Map::new(),
            native: None,
        }
    }

    /// The text of the first choice.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        self.choices
            .first()
            .map(|c| c.message.text())
            .unwrap_or_default()
    }
}

/// One choice of a chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Choice index.
    pub index: u32,
    /// The assistant message.
    pub message: Message,
    /// `stop`, `length`, `tool_calls`, `content_filter`.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Other fields of the choice.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatChoice {
    /// A choice with a message and a finish reason.
    pub fn new(index: u32, message: Message, finish_reason: Option<FinishReason>) -> Self {
        ChatChoice {
            index,
            message,
            finish_reason,
            logprobs: None,
            extra: Map::new(),
        }
    }
}

/// One chunk of a streamed chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Response id (the same in every chunk).
    pub id: String,
    /// The model that answers.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// Deltas, one per choice (empty in the final usage chunk).
    pub choices: Vec<ChunkChoice>,
    /// Usage of the whole request, in the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// What the whole request cost, in the chunk that carries [`usage`](Self::usage),
    /// when a cost layer priced it. Providers leave it `None`; the cost layer fills it (and
    /// the token-count layer copies it into the usage chunk it appends). The same amount
    /// is in [`ResponseMeta::stream_cost`](crate::ResponseMeta::stream_cost) once the
    /// stream has ended, failed or been dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Money>,
    /// Other fields the provider sent (`system_fingerprint`, `service_tier`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The provider's own stream event this chunk was made from, when it answered in a
    /// wire format the client also speaks (an OpenAI Responses API event for a request
    /// carrying a [`ResponsesBody`](crate::ResponsesBody)); the gateway passes it on
    /// unchanged. Such a stream has a chunk (maybe without choices) for every event. Not
    /// serialized.
    #[serde(skip)]
    pub native: Option<Arc<Value>>,
}

impl ChatChunk {
    /// A chunk with no choices, usage or cost.
    pub fn new(id: impl Into<String>, model: impl Into<String>, created: u64) -> Self {
        ChatChunk {
            id: id.into(),
            model: model.into(),
            created,
            choices: Vec::new(),
            usage: None,
            cost: None,
            extra: Map::new(),
            native: None,
        }
    }

    /// Adds a choice's delta.
    #[must_use]
    pub fn with_choice(mut self, choice: ChunkChoice) -> Self {
        self.choices.push(choice);
        self
    }

    /// All delta text of the chunk.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.choices {
            if let Some(t) = &c.delta.content {
                s.push_str(t);
            }
        }
        s
    }
}

/// One choice's delta in a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Choice index.
    pub index: u32,
    /// What is new.
    pub delta: Delta,
    /// Set in the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities of this chunk's tokens, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
}

impl ChunkChoice {
    /// A choice's delta.
    pub fn new(index: u32, delta: Delta, finish_reason: Option<FinishReason>) -> Self {
        ChunkChoice {
            index,
            delta,
            finish_reason,
            logprobs: None,
        }
    }
}

/// What a chunk adds to a choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Set in the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// New text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// New or continued tool calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
    /// New refusal text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// New reasoning text (of the current thinking block, for Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Thinking blocks completed in this chunk, whole, with their signatures (their text
    /// came before as `reasoning_content`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock>,
}

/// A piece of a tool call in a stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which tool call of the choice this continues.
    pub index: u32,
    /// Set in the call's first delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, in the first delta.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name (first delta) and argument fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
    /// Other fields (a custom tool call's `custom` object, ...); the fold keeps the first
    /// value of each.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Name and argument fragment of a tool-call delta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// The function name (first delta only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A fragment of the JSON arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// A prompt: one string or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    /// One prompt.
    One(String),
    /// Several prompts.
    Many(Vec<String>),
}

impl Prompt {
    /// The prompts as string slices.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Prompt::One(s) => vec![s.as_str()],
            Prompt::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A legacy text completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// Model name or route alias.
    pub model: String,
    /// The prompt(s).
    pub prompt: Prompt,
    /// Maximum output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Streaming is not supported for legacy completions; must be false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Provider-specific fields, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A legacy text completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// Response id.
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// The choices.
    pub choices: Vec<CompletionChoice>,
}

/// One choice of a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// Choice index.
    pub index: u32,
    /// The text.
    pub text: String,
    /// Why it stopped.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
}

/// Embedding input: text(s) or token arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
    /// One token array.
    Tokens(Vec<u32>),
    /// Several token arrays.
    ManyTokens(Vec<Vec<u32>>),
}

/// An embeddings request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsRequest {
    /// Model name or route alias.
    pub model: String,
    /// What to embed.
    pub input: EmbeddingInput,
    /// `float` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    /// Output dimensions (text-embedding-3 models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// End-user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Provider-specific fields, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An embeddings response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResponse {
    /// The model used.
    pub model: String,
    /// One embedding per input.
    pub data: Vec<Embedding>,
}

/// One embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Input index.
    pub index: u32,
    /// The vector.
    pub embedding: EmbeddingVector,
}

/// An embedding vector, as floats or as base64 of little-endian `f32`s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// Floats.
    Float(Vec<f32>),
    /// Base64 of little-endian `f32`s.
    Base64(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_request_parses_openai_json_and_keeps_unknown_fields() {
        let body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "max_completion_tokens": 50,
            "stream": true,
            "stream_options": {"include_usage": true},
            "logprobs": true,
            "reasoning_effort": "low"
        });
        let req: ChatRequest = serde_json::from_value(body).unwrap();
        assert_eq!(req.max_tokens, Some(50));
        assert!(req.stream);
        assert_eq!(req.extra.get("reasoning_effort"), Some(&json!("low")));
        assert_eq!(req.messages[1].text(), "what is this?");
        assert_eq!(req.messages[2].tool_calls[0].function.name, "f");
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["logprobs"], json!(true));
    }
}
