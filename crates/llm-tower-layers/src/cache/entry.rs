//! The encoded form of a cached response.

use bytes::Bytes;
use llm_tower_core::{
    ChatResponse, CompletionResponse, EmbeddingsResponse, LlmResponse, ResponseBody, Usage,
};
use serde::{Deserialize, Serialize};

/// Version of the entry encoding; entries of another version are misses.
pub(crate) const ENTRY_VERSION: u8 = 1;

/// What a store holds for one key (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) v: u8,
    pub(crate) body: StoredBody,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub(crate) enum StoredBody {
    Chat(ChatResponse),
    Completion(CompletionResponse),
    Embeddings(EmbeddingsResponse),
}

impl Entry {
    /// The entry of a whole response; `None` for a stream, or a response carrying the
    /// provider's own wire JSON (`native`, the Responses API path), which is not kept.
    pub(crate) fn of(resp: &LlmResponse) -> Option<Entry> {
        let body = match &resp.body {
            ResponseBody::Chat(c) if c.native.is_none() => StoredBody::Chat(c.clone()),
            ResponseBody::Completion(c) => StoredBody::Completion(c.clone()),
            ResponseBody::Embeddings(e) => StoredBody::Embeddings(e.clone()),
            ResponseBody::Chat(_) | ResponseBody::Stream(_) => return None,
        };
        Some(Entry::new(body, resp))
    }

    pub(crate) fn new(body: StoredBody, resp: &LlmResponse) -> Entry {
        Entry {
            v: ENTRY_VERSION,
            body,
            usage: resp.usage,
            provider: resp.meta.provider.as_deref().map(str::to_owned),
            model: resp.meta.model.clone(),
        }
    }

    pub(crate) fn encode(&self) -> Option<Bytes> {
        serde_json::to_vec(self).ok().map(Bytes::from)
    }

    /// The entry in `bytes`; `None` when they do not decode or are of another version.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Entry> {
        serde_json::from_slice::<Entry>(bytes)
            .ok()
            .filter(|e| e.v == ENTRY_VERSION)
    }
}
