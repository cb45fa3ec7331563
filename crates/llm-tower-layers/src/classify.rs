//! One place that classifies outcomes, for retry, metrics and the gateway.
//!
//! Retryability and the HTTP status of an error are properties of its kind
//! ([`ErrorKind::is_retryable`](llm_tower_core::ErrorKind::is_retryable),
//! [`ErrorKind::http_status`](llm_tower_core::ErrorKind::http_status)); this module maps a
//! result to the [`Outcome`] label that metrics and logs use.

use llm_tower_core::{Error, ErrorKind, LlmResponse};

/// The class of a finished call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A response.
    Success,
    /// Refused by a rate limit (ours or the provider's).
    RateLimited,
    /// Refused by a budget.
    BudgetExceeded,
    /// The caller's fault (bad request, auth, context length): retrying cannot help.
    ClientError,
    /// The provider or the network failed in a way a retry may fix.
    Retryable,
    /// Anything else (config, store, internal).
    Failure,
}

impl Outcome {
    /// Classifies a result.
    pub fn of(result: Result<&LlmResponse, &Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => Outcome::of_error(e),
        }
    }

    /// Classifies an error.
    pub fn of_error(e: &Error) -> Outcome {
        match e.kind() {
            ErrorKind::RateLimited => Outcome::RateLimited,
            ErrorKind::BudgetExceeded => Outcome::BudgetExceeded,
            ErrorKind::InvalidRequest
            | ErrorKind::Unauthorized
            | ErrorKind::ContextLengthExceeded => Outcome::ClientError,
            k if k.is_retryable() => Outcome::Retryable,
            _ => Outcome::Failure,
        }
    }

    /// The label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::RateLimited => "rate_limited",
            Outcome::BudgetExceeded => "budget_exceeded",
            Outcome::ClientError => "client_error",
            Outcome::Retryable => "retryable_error",
            Outcome::Failure => "failure",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_kinds() {
        assert_eq!(
            Outcome::of_error(&Error::rate_limited("x", None)),
            Outcome::RateLimited
        );
        assert_eq!(
            Outcome::of_error(&Error::budget_exceeded("x")),
            Outcome::BudgetExceeded
        );
        assert_eq!(
            Outcome::of_error(&Error::invalid_request("x")),
            Outcome::ClientError
        );
        assert_eq!(
            Outcome::of_error(&Error::new(ErrorKind::Provider { status: 502 }, "x")),
            Outcome::Retryable
        );
        assert_eq!(Outcome::of_error(&Error::config("x")), Outcome::Failure);
    }
}
