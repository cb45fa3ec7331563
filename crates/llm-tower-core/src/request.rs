//! [`LlmRequest`]: what every provider service and layer takes.

use std::time::Instant;

use crate::chat::{ChatRequest, CompletionRequest, EmbeddingsRequest};
use crate::context::{CallerKey, RequestContext};

/// The operation a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBody {
    /// A chat completion.
    Chat(ChatRequest),
    /// A legacy text completion.
    Completion(CompletionRequest),
    /// Embeddings.
    Embeddings(EmbeddingsRequest),
}

/// The kind of operation, for labels (`gen_ai.operation.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `chat`.
    Chat,
    /// `text_completion`.
    Completion,
    /// `embeddings`.
    Embeddings,
}

impl Operation {
    /// The OpenTelemetry GenAI operation name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Completion => "text_completion",
            Operation::Embeddings => "embeddings",
        }
    }
}

/// A request to a language model, with its typed context and free extensions.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    /// What to do.
    pub body: RequestBody,
    /// What the layers know about the request.
    pub ctx: RequestContext,
    /// Free space for users' own layers.
    pub extensions: http::Extensions,
}

impl LlmRequest {
    /// A request with a body and a fresh context.
    pub fn new(body: RequestBody) -> Self {
        LlmRequest {
            body,
            ctx: RequestContext::default(),
            extensions: http::Extensions::new(),
        }
    }

    /// A chat request.
    pub fn chat(chat: ChatRequest) -> Self {
        LlmRequest::new(RequestBody::Chat(chat))
    }

    /// A completion request.
    pub fn completion(req: CompletionRequest) -> Self {
        LlmRequest::new(RequestBody::Completion(req))
    }

    /// An embeddings request.
    pub fn embeddings(req: EmbeddingsRequest) -> Self {
        LlmRequest::new(RequestBody::Embeddings(req))
    }

    /// Sets the caller key.
    #[must_use]
    pub fn with_caller(mut self, caller: impl Into<CallerKey>) -> Self {
        self.ctx.caller = Some(caller.into());
        self
    }

    /// Sets the deadline.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.ctx.deadline = Some(deadline);
        self
    }

    /// The model (or route alias) the request names.
    pub fn model(&self) -> &str {
        match &self.body {
            RequestBody::Chat(c) => &c.model,
            RequestBody::Completion(c) => &c.model,
            RequestBody::Embeddings(e) => &e.model,
        }
    }

    /// Replaces the model name (used by routers mapping an alias to a provider's model).
    pub fn set_model(&mut self, model: impl Into<String>) {
        let m = model.into();
        match &mut self.body {
            RequestBody::Chat(c) => c.model = m,
            RequestBody::Completion(c) => c.model = m,
            RequestBody::Embeddings(e) => e.model = m,
        }
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        match &self.body {
            RequestBody::Chat(_) => Operation::Chat,
            RequestBody::Completion(_) => Operation::Completion,
            RequestBody::Embeddings(_) => Operation::Embeddings,
        }
    }

    /// `true` for a streamed chat request.
    pub fn is_stream(&self) -> bool {
        matches!(&self.body, RequestBody::Chat(c) if c.stream)
    }

    /// The output bound the request sets (`max_tokens`), if any; embeddings produce none.
    pub fn max_output_tokens(&self) -> Option<u32> {
        match &self.body {
            RequestBody::Chat(c) => c.max_tokens,
            RequestBody::Completion(c) => c.max_tokens,
            RequestBody::Embeddings(_) => Some(0),
        }
    }
}
