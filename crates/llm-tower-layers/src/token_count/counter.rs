//! The [`TokenCounter`] trait.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::sync::Arc;

use llm_tower_core::{ChatChunk, RequestBody, ResponseBody, UsageSource};

use super::prompt;

/// A number of tokens and whether it is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCount {
    /// The count.
    pub tokens: u64,
    /// `Counted` when exact (the model's own tokenizer), `Estimated` for a heuristic.
    pub source: UsageSource,
}

impl TokenCount {
    /// An exact count.
    pub fn exact(tokens: u64) -> Self {
        TokenCount {
            tokens,
            source: UsageSource::Counted,
        }
    }

    /// An estimate.
    pub fn estimate(tokens: u64) -> Self {
        TokenCount {
            tokens,
            source: UsageSource::Estimated,
        }
    }

    /// `true` when the count is exact.
    pub fn is_exact(&self) -> bool {
        self.source == UsageSource::Counted
    }

    /// The same number, marked as an estimate.
    #[must_use]
    pub fn into_estimate(self) -> Self {
        TokenCount::estimate(self.tokens)
    }
}

/// Sums the tokens; the sum is exact only when both parts are.
impl Add for TokenCount {
    type Output = TokenCount;

    fn add(self, rhs: TokenCount) -> TokenCount {
        let source =
            if self.source == UsageSource::Estimated || rhs.source == UsageSource::Estimated {
                UsageSource::Estimated
            } else if self.source == rhs.source {
                self.source
            } else {
                UsageSource::Counted
            };
        TokenCount {
            tokens: self.tokens.saturating_add(rhs.tokens),
            source,
        }
    }
}

impl AddAssign for TokenCount {
    fn add_assign(&mut self, rhs: TokenCount) {
        *self = *self + rhs;
    }
}

/// Counts tokens for a model.
///
/// Implement it to plug in your own tokenizer; [`Tokenizers`](super::Tokenizers) is the
/// default (exact for OpenAI models, a heuristic for others). Only
/// [`count_text`](TokenCounter::count_text) is required: the other methods apply OpenAI's
/// chat-message overhead formula and walk requests, responses and stream chunks, calling
/// `count_text` for every piece of text.
pub trait TokenCounter: Send + Sync + fmt::Debug + 'static {
    /// Tokens of a plain text for `model`.
    fn count_text(&self, model: &str, text: &str) -> TokenCount;

    /// Prompt tokens of a request, including per-message overhead for chat.
    ///
    /// Chat follows OpenAI's documented formula: 3 tokens per message, the role and every
    /// text counted as text, 1 more for a `name`, and 3 to prime the reply. Tool calls count
    /// their name and arguments, tool definitions their JSON, images 85 tokens (`detail: low`)
    /// or 765; those three are OpenAI's undocumented internals, so any of them makes the
    /// whole count an estimate. Completions sum their prompts; embeddings sum their inputs
    /// (token arrays count their length, exactly).
    fn count_prompt(&self, body: &RequestBody) -> TokenCount {
        let model = prompt::model_of(body);
        prompt::count_prompt(body, |text| self.count_text(model, text))
    }

    /// Output tokens of a complete (non-streamed) response body for `model`: the text of
    /// every choice plus the name and arguments of its tool calls; zero for embeddings and
    /// for a stream (streams are counted chunk by chunk, see
    /// [`count_chunk`](TokenCounter::count_chunk)).
    fn count_output(&self, model: &str, body: &ResponseBody) -> TokenCount {
        prompt::count_output(body, |text| self.count_text(model, text))
    }

    /// Output tokens of one streamed chunk for `model`: its delta text plus tool-call names
    /// and argument fragments, over all choices.
    fn count_chunk(&self, model: &str, chunk: &ChatChunk) -> TokenCount {
        prompt::count_chunk(chunk, |text| self.count_text(model, text))
    }
}

impl<T: TokenCounter + ?Sized> TokenCounter for Arc<T> {
    fn count_text(&self, model: &str, text: &str) -> TokenCount {
        (**self).count_text(model, text)
    }

    fn count_prompt(&self, body: &RequestBody) -> TokenCount {
        (**self).count_prompt(body)
    }

    fn count_output(&self, model: &str, body: &ResponseBody) -> TokenCount {
        (**self).count_output(model, body)
    }

    fn count_chunk(&self, model: &str, chunk: &ChatChunk) -> TokenCount {
        (**self).count_chunk(model, chunk)
    }
}
