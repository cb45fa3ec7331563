//! Anthropic's Messages API wire format: the response and stream event types.
//!
//! Requests are built as JSON maps in [`convert`](super::convert) (content blocks,
//! tools and `system` pass through in shapes this crate does not model, such as
//! `document` blocks, server tools or blocks with `cache_control`). Response content
//! blocks are kept as raw JSON and read by [`convert::response_block`](super::convert::response_block),
//! so a block of an unknown type or with a malformed field never fails the response.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::openai::wire::nullable;

/// Token usage as Anthropic reports it (input excludes cache reads and writes).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// The split of `cache_creation_input_tokens` by cache lifetime.
    #[serde(default)]
    pub cache_creation: Option<CacheCreation>,
    /// `standard`, `priority` or `batch`.
    #[serde(default)]
    pub service_tier: Option<String>,
}

/// `usage.cache_creation`.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct CacheCreation {
    #[serde(default)]
    pub ephemeral_5m_input_tokens: Option<u64>,
    #[serde(default)]
    pub ephemeral_1h_input_tokens: Option<u64>,
}

/// A `POST /v1/messages` response.
#[derive(Debug, Deserialize)]
pub(crate) struct MessagesResponse {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    /// Content blocks, read one by one by [`convert::response_block`](super::convert::response_block).
    #[serde(default, deserialize_with = "nullable")]
    pub content: Vec<Value>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    /// Every other top-level field (`type`, `role`, `container`, fields added later).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One event of a streamed response (the `type` field of the SSE data).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StreamEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        #[serde(default)]
        index: u32,
        #[serde(default)]
        content_block: Value,
    },
    ContentBlockDelta {
        #[serde(default)]
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        #[serde(default)]
        index: u32,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        #[serde(default)]
        error: Value,
    },
    #[serde(other)]
    Unknown,
}

/// `message_start.message`.
#[derive(Debug, Deserialize)]
pub(crate) struct StartMessage {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub model: String,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

/// `content_block_delta.delta`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockDelta {
    TextDelta {
        #[serde(default)]
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    ThinkingDelta {
        #[serde(default)]
        thinking: String,
    },
    SignatureDelta {
        #[serde(default)]
        signature: String,
    },
    #[serde(other)]
    Other,
}

/// `message_delta.delta`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Code execution's container (`{id, expires_at}`).
    #[serde(default)]
    pub container: Option<Value>,
}
