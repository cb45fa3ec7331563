//! Token usage, its origin, and the meter that streamed responses are counted into.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Where a [`Usage`] came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// Reported by the provider.
    #[default]
    Provider,
    /// Counted here with the model's exact tokenizer.
    Counted,
    /// Estimated here with a heuristic (no public tokenizer for the model, or an unknown model).
    Estimated,
}

/// Tokens used by one request.
///
/// `prompt_tokens` counts every input token, whatever it is billed at: the cached reads and
/// cache writes below are parts of it (Anthropic reports them apart from `input_tokens`;
/// the Anthropic provider adds them up). Likewise `reasoning_tokens` and
/// `audio_completion_tokens` are parts of `completion_tokens`, as OpenAI reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, including cached reads and cache writes.
    pub prompt_tokens: u64,
    /// Output tokens, including reasoning tokens.
    pub completion_tokens: u64,
    /// Input tokens read from the provider's prompt cache (part of `prompt_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_prompt_tokens: u64,
    /// Input tokens written to a prompt cache kept 5 minutes (Anthropic's default cache
    /// write; part of `prompt_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_5m_tokens: u64,
    /// Input tokens written to a prompt cache kept 1 hour (part of `prompt_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h_tokens: u64,
    /// Output tokens spent on reasoning (part of `completion_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
    /// Audio input tokens (part of `prompt_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audio_prompt_tokens: u64,
    /// Audio output tokens (part of `completion_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audio_completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: u64,
    /// Where the numbers came from.
    #[serde(default)]
    pub source: UsageSource,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Usage with the total computed.
    pub fn new(prompt_tokens: u64, completion_tokens: u64, source: UsageSource) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            source,
            ..Usage::default()
        }
    }

    /// Sets the cached part of the prompt.
    #[must_use]
    pub fn with_cached(mut self, cached: u64) -> Self {
        self.cached_prompt_tokens = cached.min(self.prompt_tokens);
        self
    }

    /// Sets the parts of the prompt written to a prompt cache (5-minute and 1-hour).
    #[must_use]
    pub fn with_cache_writes(mut self, five_minutes: u64, one_hour: u64) -> Self {
        let room = self.prompt_tokens.saturating_sub(self.cached_prompt_tokens);
        self.cache_write_5m_tokens = five_minutes.min(room);
        self.cache_write_1h_tokens = one_hour.min(room - self.cache_write_5m_tokens);
        self
    }

    /// Sets the part of the output spent on reasoning.
    #[must_use]
    pub fn with_reasoning(mut self, reasoning: u64) -> Self {
        self.reasoning_tokens = reasoning.min(self.completion_tokens);
        self
    }

    /// Sets the audio parts of input and output.
    #[must_use]
    pub fn with_audio(mut self, prompt: u64, completion: u64) -> Self {
        self.audio_prompt_tokens = prompt.min(self.prompt_tokens);
        self.audio_completion_tokens = completion.min(self.completion_tokens);
        self
    }

    /// Input tokens billed at the plain input price: the prompt less cached reads and
    /// cache writes.
    pub fn uncached_prompt_tokens(&self) -> u64 {
        self.prompt_tokens
            .saturating_sub(self.cached_prompt_tokens)
            .saturating_sub(self.cache_write_5m_tokens)
            .saturating_sub(self.cache_write_1h_tokens)
    }
}

/// The token-count layer's estimate for a request, written into the request context
/// before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEstimate {
    /// Prompt tokens (exact for OpenAI models with a known tokenizer).
    pub prompt_tokens: u64,
    /// The request's `max_tokens`, if it set one (a bound on each output).
    pub max_output_tokens: Option<u32>,
    /// How many outputs the request asks for (`n`, times the prompts of a legacy
    /// completion; see `LlmRequest::output_choices`). 0 is read as 1.
    pub output_choices: u64,
    /// `Counted` when the prompt count is exact, `Estimated` otherwise.
    pub source: UsageSource,
}

impl TokenEstimate {
    /// The weight of the request for token rate limits: prompt plus the output bound
    /// (`max_tokens`, else `default_output`) for each of the `output_choices` outputs.
    pub fn weight(&self, default_output: u32) -> u64 {
        let per_output = u64::from(self.max_output_tokens.unwrap_or(default_output));
        self.prompt_tokens
            .saturating_add(per_output.saturating_mul(self.output_choices.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_bounds_every_requested_output() {
        let e = TokenEstimate {
            prompt_tokens: 10,
            max_output_tokens: Some(100),
            output_choices: 3,
            source: UsageSource::Counted,
        };
        assert_eq!(e.weight(7), 310);
        let e = TokenEstimate {
            max_output_tokens: None,
            output_choices: 0,
            ..e
        };
        assert_eq!(e.weight(7), 17);
        let e = TokenEstimate {
            prompt_tokens: u64::MAX,
            max_output_tokens: Some(u32::MAX),
            output_choices: u64::MAX,
            source: UsageSource::Estimated,
        };
        assert_eq!(e.weight(0), u64::MAX);
    }
}

/// A shared counter of output tokens observed in a stream so far.
///
/// The token-count layer creates it, puts it in the request context, and adds every
/// streamed chunk's tokens to it; inner layers (cost) read it when a stream ends, fails or
/// is dropped, so partial output is settled with what was counted.
#[derive(Debug, Clone, Default)]
pub struct UsageMeter {
    completion: Arc<AtomicU64>,
}

impl UsageMeter {
    /// A meter at zero.
    pub fn new() -> Self {
        UsageMeter::default()
    }

    /// Adds output tokens.
    pub fn add_completion(&self, tokens: u64) {
        self.completion.fetch_add(tokens, Ordering::Relaxed);
    }

    /// Output tokens counted so far.
    pub fn completion_tokens(&self) -> u64 {
        self.completion.load(Ordering::Relaxed)
    }
}
