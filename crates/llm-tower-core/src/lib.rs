#![doc = "The vocabulary of llm-tower: requests, responses, streams, usage, money, errors and time."]
#![doc = ""]
#![doc = "Every provider is a `tower::Service<LlmRequest, Response = LlmResponse, Error = Error>`,"]
#![doc = "and every layer of `llm-tower-layers` wraps such a service. This crate holds only"]
#![doc = "types; `tokio` is used only behind [`clock::TokioClock`]."]
#![forbid(unsafe_code)]

pub mod accumulate;
pub mod cache;
pub mod chat;
pub mod client_headers;
pub mod clock;
pub mod context;
pub mod error;
pub mod limits;
pub mod money;
pub mod native;
pub mod request;
pub mod response;
pub mod usage;

pub use accumulate::{ChatStreamAccumulator, collect_chat_stream, response_chunks};
pub use cache::{CacheDirective, CacheStatus};
pub use chat::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, CompletionChoice,
    CompletionRequest, CompletionResponse, Content, ContentPart, Delta, Embedding, EmbeddingInput,
    EmbeddingVector, EmbeddingsRequest, EmbeddingsResponse, FileData, FunctionCall,
    FunctionCallDelta, FunctionDef, ImageUrl, InputAudio, Message, Prompt, Role, Stop,
    StreamOptions, ThinkingBlock, Tool, ToolCall, ToolCallDelta,
};
pub use client_headers::ClientHeaders;
pub use clock::{Clock, ManualClock, SharedClock, TokioClock};
pub use context::{CallerKey, RequestContext, RequestId};
pub use error::{BoxError, Error, ErrorKind, LimitOrigin};
pub use limits::{LimitState, ProviderLimits};
pub use money::{Money, MoneyParseError, Price, PriceError};
pub use native::{AnthropicMessagesClient, ResponsesBody};
pub use request::{LlmRequest, MAX_CHOICES, Operation, RequestBody};
pub use response::{ChatStream, LlmResponse, ResponseBody, ResponseMeta, StreamCost};
pub use usage::{TokenEstimate, Usage, UsageMeter, UsageSource};

/// The result type of the stack.
pub type Result<T, E = Error> = std::result::Result<T, E>;
