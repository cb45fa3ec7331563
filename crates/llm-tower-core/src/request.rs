//! [`LlmRequest`]: what every provider service and layer takes.

use std::time::Instant;

use crate::chat::{ChatRequest, CompletionRequest, EmbeddingsRequest};
use crate::context::{CallerKey, RequestContext};
use crate::error::Error;

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

    /// Names the provider that will serve the request (`RequestContext::provider`), as a
    /// router does. Provider-keyed rate limits and provider-scope budgets read it.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<std::sync::Arc<str>>) -> Self {
        self.ctx.provider = Some(provider.into());
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

    /// How many outputs the request asks for, each bounded by
    /// [`LlmRequest::max_output_tokens`]: `n` for chat; for legacy completions
    /// `max(n, best_of)` (from the pass-through fields) per prompt, times the number of
    /// prompts; 1 for embeddings. Never 0.
    pub fn output_choices(&self) -> u64 {
        match &self.body {
            RequestBody::Chat(c) => u64::from(c.n.unwrap_or(1).max(1)),
            RequestBody::Completion(c) => {
                let field = |name: &str| c.extra.get(name).and_then(serde_json::Value::as_u64);
                let per_prompt = field("n").max(field("best_of")).unwrap_or(1).max(1);
                let prompts = match &c.prompt {
                    crate::chat::Prompt::One(_) => 1,
                    crate::chat::Prompt::Many(v) => u64::try_from(v.len()).unwrap_or(u64::MAX),
                };
                per_prompt.saturating_mul(prompts.max(1))
            }
            RequestBody::Embeddings(_) => 1,
        }
    }

    /// The output bound the request sets (`max_tokens`), if any; embeddings produce none.
    /// It bounds each output: see [`LlmRequest::output_choices`].
    pub fn max_output_tokens(&self) -> Option<u32> {
        match &self.body {
            RequestBody::Chat(c) => c.max_tokens,
            RequestBody::Completion(c) => c.max_tokens,
            RequestBody::Embeddings(_) => Some(0),
        }
    }

    /// Checks the sampling and size fields against the ranges OpenAI accepts:
    /// `temperature` in [0, 2], `top_p` in [0, 1] (both finite), `n` in
    /// 1..=[`MAX_CHOICES`], `max_tokens` above 0.
    ///
    /// # Errors
    /// `InvalidRequest` with code `invalid_value` and [`Error::param`] naming the field.
    pub fn check_ranges(&self) -> Result<(), Error> {
        let (temperature, top_p, n, max_tokens) = match &self.body {
            RequestBody::Chat(c) => (c.temperature, c.top_p, c.n, c.max_tokens),
            RequestBody::Completion(c) => (
                c.temperature,
                c.top_p,
                c.extra
                    .get("n")
                    .and_then(serde_json::Value::as_u64)
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                c.max_tokens,
            ),
            RequestBody::Embeddings(_) => return Ok(()),
        };
        let bad = |param: &'static str, msg: String| {
            Err(Error::invalid_request(format!("{param}: {msg}"))
                .with_code("invalid_value")
                .with_param(param))
        };
        if let Some(t) = temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return bad(
                "temperature",
                format!("{t} is not a number between 0 and 2"),
            );
        }
        if let Some(p) = top_p
            && !(p.is_finite() && (0.0..=1.0).contains(&p))
        {
            return bad("top_p", format!("{p} is not a number between 0 and 1"));
        }
        if let Some(n) = n
            && !(1..=MAX_CHOICES).contains(&n)
        {
            return bad("n", format!("{n} is not between 1 and {MAX_CHOICES}"));
        }
        if max_tokens == Some(0) {
            return bad("max_tokens", "must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// The most outputs (`n`) one request may ask for, as OpenAI's API allows.
pub const MAX_CHOICES: u32 = 128;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Message, Prompt};

    #[test]
    fn output_choices_count_n_and_prompts() {
        let mut chat = ChatRequest::new("m", vec![Message::user("hi")]);
        assert_eq!(LlmRequest::chat(chat.clone()).output_choices(), 1);
        chat.n = Some(4);
        assert_eq!(LlmRequest::chat(chat.clone()).output_choices(), 4);
        chat.n = Some(0);
        assert_eq!(LlmRequest::chat(chat).output_choices(), 1);

        let completion: CompletionRequest = serde_json::from_value(serde_json::json!({
            "model": "m",
            "prompt": ["a", "b", "c"],
            "n": 2,
            "best_of": 5
        }))
        .unwrap();
        assert_eq!(
            LlmRequest::completion(completion.clone()).output_choices(),
            15
        );
        let one = CompletionRequest {
            prompt: Prompt::One("a".into()),
            extra: serde_json::Map::new(),
            ..completion
        };
        assert_eq!(LlmRequest::completion(one).output_choices(), 1);
    }

    #[test]
    fn with_provider_sets_the_context() {
        let r = LlmRequest::chat(ChatRequest::new("m", vec![Message::user("hi")]))
            .with_provider("openai");
        assert_eq!(r.ctx.provider.as_deref(), Some("openai"));
    }
}
