//! Errors in Anthropic's shape.
//!
//! ```json
//! {"type": "error", "error": {"type": "invalid_request_error", "message": "..."}, "request_id": "..."}
//! ```
//!
//! with the same HTTP status and headers as the OpenAI routes (429 keeps `Retry-After`,
//! `retry-after-ms` and `x-ratelimit-*`). The `error.type` follows Anthropic's list:
//!
//! | status | `error.type` |
//! |---|---|
//! | 400 (and 405, 408, other 4xx) | `invalid_request_error` |
//! | 401 | `authentication_error` |
//! | 402 (a budget has no room) | `billing_error` |
//! | 403 | `permission_error` |
//! | 404 | `not_found_error` |
//! | 413 | `request_too_large` |
//! | 429 | `rate_limit_error` |
//! | 503, 529 | `overloaded_error` |
//! | 504 | `timeout_error` |
//! | other 5xx | `api_error` |
//!
//! An exhausted budget stays **402** with Anthropic's `billing_error` type (its API lists
//! `billing_error` among its error types): the Anthropic SDKs, like OpenAI's, retry 408,
//! 409, 429 and 5xx but not 402, so a client stops at once instead of retrying against a
//! budget that only resets at the end of its period.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use llm_tower_core::Error;
use serde::Serialize;

use crate::openai_error::OpenAiError;

/// An error response in Anthropic's shape.
#[derive(Debug, Clone)]
pub struct AnthropicError {
    inner: OpenAiError,
    request_id: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Fields<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Fields<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

impl AnthropicError {
    /// The same error as an OpenAI-shaped one (status, message, headers).
    pub fn from_openai(inner: OpenAiError) -> Self {
        AnthropicError {
            inner,
            request_id: None,
        }
    }

    /// Maps an llm-tower [`Error`].
    pub fn from_error(e: &Error) -> Self {
        AnthropicError::from_openai(OpenAiError::from_error(e))
    }

    /// Adds the `request_id` field of the body.
    #[must_use]
    pub fn with_request_id(mut self, id: Option<&str>) -> Self {
        self.request_id = id.map(str::to_owned);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// Anthropic's `error.type` for this error.
    pub fn error_type(&self) -> &'static str {
        match self.inner.status().as_u16() {
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            s if s >= 500 => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        self.inner.message()
    }

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        let env = Envelope {
            kind: "error",
            error: Fields {
                kind: self.error_type(),
                message: self.inner.message(),
            },
            request_id: self.request_id.as_deref(),
        };
        match serde_json::to_vec(&env) {
            Ok(v) => Bytes::from(v),
            Err(_) => Bytes::from_static(
                br#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#,
            ),
        }
    }
}

impl From<OpenAiError> for AnthropicError {
    fn from(e: OpenAiError) -> Self {
        AnthropicError::from_openai(e)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body()));
        *resp.status_mut() = self.inner.status();
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.inner.write_headers(headers);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn types_follow_the_status() {
        let e = AnthropicError::from_error(&Error::budget_exceeded("monthly"));
        assert_eq!(e.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(e.error_type(), "billing_error");
        let e =
            AnthropicError::from_error(&Error::rate_limited("slow", Some(Duration::from_secs(2))));
        assert_eq!(e.error_type(), "rate_limit_error");
        let resp = e.into_response();
        assert_eq!(resp.headers()["retry-after"], "2");
        let e = AnthropicError::from_openai(OpenAiError::unauthorized(true))
            .with_request_id(Some("r1"));
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["request_id"], "r1");
        let e = AnthropicError::from_error(&Error::timeout("late"));
        assert_eq!(e.error_type(), "timeout_error");
    }
}
