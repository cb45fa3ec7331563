//! Token counting: the prompt estimate before the call, the usage after it.
//!
//! [`CountTokensLayer`] counts the tokens of every request with a [`TokenCounter`]
//! ([`Tokenizers`] by default) and records them where the other layers look:
//!
//! | when | reads | writes |
//! |---|---|---|
//! | before the call | the request body (model, messages, tools, prompts, inputs) and `max_tokens` | `req.ctx.token_estimate` = [`TokenEstimate`] `{ prompt_tokens, max_output_tokens, source }`, and a fresh `req.ctx.meter` ([`UsageMeter`]) |
//! | after a complete response | `resp.usage` | `resp.usage`, when the provider sent none: the prompt count plus the counted output |
//! | during a stream | every chunk | the chunk's output tokens, added to the meter; at the end, one last chunk with the usage when no chunk carried it |
//!
//! It sits outermost in the stack (after tracing) so every later layer sees the estimate:
//! token rate limits weigh requests by it, and the cost layer reserves with it.
//!
//! # Counters
//!
//! - [`Tokenizers`]: exact for OpenAI models (`o200k_base` for GPT-4o, GPT-4.1, GPT-4.5,
//!   GPT-5, o1, o3, o4 and gpt-oss; `cl100k_base` for GPT-4, GPT-3.5 and the embedding
//!   models; see [`Encoding::for_model`]), the same counts as `tiktoken`. Every other model
//!   (Claude, Llama, Mistral, a route alias, an unknown name) gets the [`Heuristic`]
//!   estimate, marked [`UsageSource::Estimated`].
//! - [`Heuristic`]: an allocation-free estimate for any model, within about 15% of
//!   `o200k_base` on English prose, never 0 for non-empty text.
//! - Your own: implement [`TokenCounter::count_text`]; the chat formula, responses and
//!   chunks come with the trait's provided methods.
//!
//! Chat prompts follow OpenAI's documented formula: 3 tokens per message, the role and
//! every text counted as text, 1 more for a `name`, and 3 to prime the reply. Tool calls
//! count their name and arguments, tool definitions their JSON, and images 85 tokens
//! (`detail: "low"`) or 765 (otherwise); OpenAI does not document those, so they make the
//! count [`Estimated`](llm_tower_core::UsageSource::Estimated). Completions count the sum of their prompts,
//! embeddings the sum of their inputs (token arrays count their length).
//!
//! A usage this layer fills in is [`Counted`](llm_tower_core::UsageSource::Counted) only when both the
//! prompt and the output were counted exactly; a provider's usage is never replaced. The
//! output is counted for the model the response names (`meta.model`, then the body's
//! `model`), the prompt for the model the request names; when the request names a route
//! alias, the prompt count is therefore an estimate.
//!
//! # Streams
//!
//! A streamed body is wrapped: every chunk's delta text and tool-call name and argument
//! fragments are counted and added to the request's meter as the chunk passes, so inner
//! layers that settle a stream (the cost layer) read the output counted so far when it
//! ends, fails or is dropped. Streamed output is the sum of per-chunk counts; providers
//! chunk on token boundaries, so in practice this matches counting the whole text. If the
//! stream ends without any chunk carrying usage, one more chunk follows with the same `id`,
//! `model` and `created` as the last chunk, no choices, and the usage (prompt estimate and
//! counted output), plus the cost a cost layer inside settled for it
//! ([`ChatChunk::cost`](llm_tower_core::ChatChunk::cost)).
//!
//! # Errors
//!
//! The layer makes no errors of its own: counting never fails and never panics, whatever the
//! text. Errors of the inner service pass through unchanged, and so do errors inside a
//! stream; after a stream error no usage chunk is added.
//!
//! # Clone
//!
//! The layer and the service hold the counter in an [`Arc`](std::sync::Arc) that all
//! clones share; counting is stateless, so sharing it is free. Each request gets its own
//! meter. [`Tokenizers`]' vocabularies are static tables that `build.rs` compiles into the
//! binary: nothing is built or loaded at run time, and the first count only pages in the
//! part of the tables it touches (about a millisecond; a few MB resident once warm).
//! [`Tokenizers::warm_up`] sets both encoders up at startup, if even that should not fall
//! on the first request.
//!
//! # Example
//!
//! ```
//! use llm_tower_core::{
//!     ChatChoice, ChatRequest, ChatResponse, Error, LlmRequest, LlmResponse, Message,
//!     ResponseBody, UsageSource,
//! };
//! use llm_tower_layers::token_count::CountTokensLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio_test::block_on(async {
//! // A provider that answers without usage, like many local servers.
//! let provider = tower::service_fn(|req: LlmRequest| async move {
//!     // The estimate is already in the context.
//!     let estimate = req.ctx.token_estimate.expect("written by the layer");
//!     assert_eq!(estimate.source, UsageSource::Counted);
//!     assert_eq!(estimate.max_output_tokens, Some(20));
//!     let choice = ChatChoice::new(0, Message::assistant("Hello!"), Some("stop".into()));
//!     Ok::<_, Error>(LlmResponse::new(ResponseBody::Chat(ChatResponse::new(
//!         "chatcmpl-1",
//!         "gpt-4o-mini",
//!         0,
//!         vec![choice],
//!     ))))
//! });
//!
//! let service = ServiceBuilder::new()
//!     .layer(CountTokensLayer::default())
//!     .service(provider);
//! let request = LlmRequest::chat(
//!     ChatRequest::new("gpt-4o-mini", vec![Message::user("Say hello")]).max_tokens(20),
//! );
//! let response = service.oneshot(request).await?;
//! let usage = response.usage.expect("counted by the layer");
//! assert_eq!(usage.source, UsageSource::Counted);
//! assert_eq!(usage.completion_tokens, 2); // "Hello" "!"
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```
//!
//! [`TokenEstimate`]: llm_tower_core::TokenEstimate
//! [`UsageMeter`]: llm_tower_core::UsageMeter
//! [`UsageSource::Estimated`]: llm_tower_core::UsageSource::Estimated
//! [`UsageSource`]: llm_tower_core::UsageSource

mod counter;
mod exact;
pub mod future;
mod heuristic;
mod layer;
mod prompt;
mod service;
mod stream;
mod tokenizers;

pub use counter::{TokenCount, TokenCounter};
pub use heuristic::Heuristic;
pub use layer::CountTokensLayer;
pub use service::CountTokens;
pub use tokenizers::{Encoding, Tokenizers};

#[cfg(test)]
mod tests;
