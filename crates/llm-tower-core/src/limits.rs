//! The provider's own rate-limit state, parsed from its response headers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One dimension of a provider's rate limit (requests, tokens, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitState {
    /// The limit for the current window, when the provider sends it.
    pub limit: Option<u64>,
    /// What is left in the current window.
    pub remaining: Option<u64>,
    /// Time until the window resets (relative to when the response was received).
    #[serde(
        with = "opt_duration_ms",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reset: Option<Duration>,
}

impl LimitState {
    /// `true` when no field is known.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }
}

/// The rate-limit state a provider reported with its response
/// (`x-ratelimit-*`, `anthropic-ratelimit-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderLimits {
    /// Request limit.
    pub requests: Option<LimitState>,
    /// Token limit (all tokens).
    pub tokens: Option<LimitState>,
    /// Input-token limit (Anthropic).
    pub input_tokens: Option<LimitState>,
    /// Output-token limit (Anthropic).
    pub output_tokens: Option<LimitState>,
}

impl ProviderLimits {
    /// `true` when the provider reported nothing.
    pub fn is_empty(&self) -> bool {
        [
            self.requests,
            self.tokens,
            self.input_tokens,
            self.output_tokens,
        ]
        .iter()
        .all(|s| s.is_none_or(|s| s.is_empty()))
    }
}

mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
