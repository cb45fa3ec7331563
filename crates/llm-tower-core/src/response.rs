//! [`LlmResponse`]: what every provider service and layer returns.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;

use crate::chat::{ChatChunk, ChatResponse, CompletionResponse, EmbeddingsResponse};
use crate::error::Error;
use crate::limits::ProviderLimits;
use crate::money::Money;
use crate::usage::Usage;

/// A streamed chat completion: chunks, or an error that ends the stream.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, Error>> + Send + 'static>>;

/// The body of a response.
pub enum ResponseBody {
    /// A chat completion.
    Chat(ChatResponse),
    /// A legacy completion.
    Completion(CompletionResponse),
    /// Embeddings.
    Embeddings(EmbeddingsResponse),
    /// A streamed chat completion. Usage arrives in the last chunk (`ChatChunk::usage`).
    Stream(ChatStream),
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseBody::Chat(c) => f.debug_tuple("Chat").field(c).finish(),
            ResponseBody::Completion(c) => f.debug_tuple("Completion").field(c).finish(),
            ResponseBody::Embeddings(e) => f.debug_tuple("Embeddings").field(e).finish(),
            ResponseBody::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// Facts about how a response was produced.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ResponseMeta {
    /// The provider that answered.
    pub provider: Option<Arc<str>>,
    /// The model that actually answered (may differ from the requested alias).
    pub model: Option<String>,
    /// Attempts made, 1 when the first one succeeded (0 when no retry layer counted).
    pub attempts: u32,
    /// Time from sending the request to the response (headers, for streams).
    pub latency: Duration,
    /// Time to the first streamed token, when known.
    pub time_to_first_token: Option<Duration>,
    /// The provider's own rate-limit state from its headers.
    pub provider_limits: Option<ProviderLimits>,
}

/// A response from a language model.
#[derive(Debug)]
pub struct LlmResponse {
    /// The answer.
    pub body: ResponseBody,
    /// Tokens used (for streams: `None` here, see the last chunk).
    pub usage: Option<Usage>,
    /// What the request cost, when the cost layer knows the price.
    pub cost: Option<Money>,
    /// How it was produced.
    pub meta: ResponseMeta,
}

impl LlmResponse {
    /// A response with a body and nothing else set.
    pub fn new(body: ResponseBody) -> Self {
        LlmResponse {
            body,
            usage: None,
            cost: None,
            meta: ResponseMeta::default(),
        }
    }

    /// `true` for a streamed body.
    pub fn is_stream(&self) -> bool {
        matches!(self.body, ResponseBody::Stream(_))
    }

    /// The chat completion, if the body is one.
    pub fn as_chat(&self) -> Option<&ChatResponse> {
        match &self.body {
            ResponseBody::Chat(c) => Some(c),
            _ => None,
        }
    }

    /// Takes the stream out of a streamed response.
    pub fn into_stream(self) -> Option<ChatStream> {
        match self.body {
            ResponseBody::Stream(s) => Some(s),
            _ => None,
        }
    }
}
