//! [`ClientHeaders`]: provider headers a client sent to the gateway, for the provider to
//! forward.

/// Provider-specific HTTP headers a client sent with its request, kept in
/// [`LlmRequest::extensions`](crate::LlmRequest::extensions) so a provider of the same
/// API can forward them upstream.
///
/// The gateway's Anthropic Messages route (`POST /v1/messages`) fills it from the
/// client's `anthropic-version` and `anthropic-beta` headers (Claude Code, the Anthropic
/// SDKs); the Anthropic provider may forward them. Other providers ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHeaders {
    /// `anthropic-version` (e.g. `2023-06-01`), when the client sent one.
    pub anthropic_version: Option<String>,
    /// The features of every `anthropic-beta` header, split at commas, trimmed, in order,
    /// without empty or duplicate entries (e.g. `interleaved-thinking-2025-05-14`).
    pub anthropic_beta: Vec<String>,
}

impl ClientHeaders {
    /// `true` when no header was kept.
    pub fn is_empty(&self) -> bool {
        self.anthropic_version.is_none() && self.anthropic_beta.is_empty()
    }

    /// Adds the features of one `anthropic-beta` header value (comma-separated).
    pub fn add_beta(&mut self, value: &str) {
        for feature in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if !self.anthropic_beta.iter().any(|b| b == feature) {
                self.anthropic_beta.push(feature.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_features_are_split_trimmed_and_deduplicated() {
        let mut h = ClientHeaders::default();
        assert!(h.is_empty());
        h.add_beta("a-1, b-2,,a-1");
        h.add_beta(" c-3 ");
        assert_eq!(h.anthropic_beta, ["a-1", "b-2", "c-3"]);
        assert!(!h.is_empty());
    }
}
