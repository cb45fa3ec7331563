//! [`LlmResponse`]: what every provider service and layer returns.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_core::Stream;

use crate::cache::CacheStatus;
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
    /// For a streamed response under a cost layer: the cost of the whole request, set
    /// when the stream ends, fails or is dropped (see [`StreamCost`]). `None` for
    /// complete responses (their cost is [`LlmResponse::cost`]) and without a cost layer.
    pub stream_cost: Option<StreamCost>,
    /// What a response cache did with the request (`None` without a cache layer): a
    /// [`CacheStatus::Hit`] was answered from the cache at no cost.
    pub cache: Option<CacheStatus>,
}

/// The cost of a streamed response, known once its reservation settles.
///
/// A streamed [`LlmResponse`] has no `cost` when it is returned: the request is still
/// running. The cost layer puts a `StreamCost` into [`ResponseMeta::stream_cost`] and
/// fills it once, when the stream ends, fails, or is dropped before its end (then with
/// the output counted so far). The chunk that carries the usage carries the same amount
/// in [`ChatChunk::cost`]. Clones share the value, so keep one before consuming the
/// stream:
///
/// ```
/// # use llm_tower_core::{LlmResponse, Money, ResponseBody, StreamCost};
/// # let mut resp = LlmResponse::new(ResponseBody::Stream(Box::pin(futures_util::stream::empty())));
/// # resp.meta.stream_cost = Some(StreamCost::new());
/// let cost = resp.stream_cost().expect("a cost layer is in the stack");
/// let stream = resp.into_stream();
/// // ... read the stream to its end, or drop it ...
/// # drop(stream);
/// # cost.settle(Some(Money::from_nanos(42)));
/// if let Some(usd) = cost.get() {
///     println!("the stream cost ${usd}");
/// }
/// ```
#[derive(Clone, Default)]
pub struct StreamCost(Arc<OnceLock<Option<Money>>>);

impl StreamCost {
    /// An unsettled handle.
    pub fn new() -> Self {
        StreamCost::default()
    }

    /// The settled cost; `None` while the stream runs, or when the model has no price.
    pub fn get(&self) -> Option<Money> {
        self.0.get().copied().flatten()
    }

    /// `true` once the stream's reservation has settled (priced or not).
    pub fn is_settled(&self) -> bool {
        self.0.get().is_some()
    }

    /// Records the settled cost (`None`: the model has no price). Only the first call
    /// counts; returns `true` if this call set it.
    pub fn settle(&self, cost: Option<Money>) -> bool {
        self.0.set(cost).is_ok()
    }
}

impl fmt::Debug for StreamCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get() {
            None => f.write_str("StreamCost(pending)"),
            Some(None) => f.write_str("StreamCost(unpriced)"),
            Some(Some(m)) => write!(f, "StreamCost({m:?})"),
        }
    }
}

/// A response from a language model.
#[derive(Debug)]
pub struct LlmResponse {
    /// The answer.
    pub body: ResponseBody,
    /// Tokens used (for streams: `None` here, see the last chunk).
    pub usage: Option<Usage>,
    /// What the request cost, when the cost layer knows the price (for streams: `None`
    /// here, see [`LlmResponse::stream_cost`] and the last chunk's `cost`).
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

    /// The handle to a streamed response's cost ([`ResponseMeta::stream_cost`]), set by
    /// the cost layer; take it before [`into_stream`](Self::into_stream).
    pub fn stream_cost(&self) -> Option<StreamCost> {
        self.meta.stream_cost.clone()
    }

    /// Takes the stream out of a streamed response.
    pub fn into_stream(self) -> Option<ChatStream> {
        match self.body {
            ResponseBody::Stream(s) => Some(s),
            _ => None,
        }
    }
}
