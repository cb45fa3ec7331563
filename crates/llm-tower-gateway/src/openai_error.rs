//! Errors as HTTP responses in OpenAI's error shape.
//!
//! Every error the gateway answers with is
//!
//! ```json
//! {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}
//! ```
//!
//! with the status from [`Error::http_status`] and, for rate limits, `Retry-After`
//! (whole seconds, rounded up), `retry-after-ms` (which OpenAI's SDKs read first) and the
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers from [`Error::limits`],
//! with resets written as Go-style durations (`120ms`, `1.5s`, `6m0s`) as OpenAI does.
//!
//! | status | when | `type` | `code` |
//! |---|---|---|---|
//! | 400 | malformed body (with the JSON path in `param`), invalid request | `invalid_request_error` | `invalid_value`, `context_length_exceeded`, ... |
//! | 401 | missing or unknown gateway key | `invalid_request_error` | `invalid_api_key` |
//! | 402 | a budget has no room | `insufficient_quota` | `budget_exceeded` |
//! | 404 | unknown model or route | `invalid_request_error` | `model_not_found`, `unknown_url` |
//! | 413 | body larger than the limit | `invalid_request_error` | `request_too_large` |
//! | 429 | a rate limit (ours or the provider's) | `rate_limit_error` | `rate_limit_exceeded` |
//! | 502/503/504 | provider failure, overload, timeout | `server_error` | the error's [`label`](Error::label) |
//!
//! An exhausted budget is **402, not 429**, on purpose: OpenAI's SDKs retry 429 (and 5xx)
//! with backoff but do not retry 402, so a client stops at once instead of hammering a
//! budget that only resets at the end of its period.
//!
//! This module has no gateway state: any axum app can return [`OpenAiError`] (or
//! [`ApiError`]) from its handlers.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use llm_tower_core::{Error, ErrorKind, LimitState, ProviderLimits};
use serde::Serialize;

/// An error response in OpenAI's shape, with its status and rate-limit headers.
#[derive(Debug, Clone)]
pub struct OpenAiError {
    status: StatusCode,
    message: Cow<'static, str>,
    kind: &'static str,
    param: Option<Cow<'static, str>>,
    code: Option<&'static str>,
    retry_after: Option<Duration>,
    limits: Option<Box<ProviderLimits>>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl OpenAiError {
    /// An error with a status, a message, an OpenAI `type` and a `code`.
    pub fn new(
        status: StatusCode,
        message: impl Into<Cow<'static, str>>,
        kind: &'static str,
        code: Option<&'static str>,
    ) -> Self {
        OpenAiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code,
            retry_after: None,
            limits: None,
        }
    }

    /// 400 for a malformed request; `param` names the offending field (a JSON path such as
    /// `messages[0].role`).
    pub fn bad_request(
        message: impl Into<Cow<'static, str>>,
        param: Option<Cow<'static, str>>,
    ) -> Self {
        let mut e = OpenAiError::new(
            StatusCode::BAD_REQUEST,
            message,
            "invalid_request_error",
            Some("invalid_value"),
        );
        e.param = param;
        e
    }

    /// 401: no gateway key, or one the gateway does not know. The key itself is never
    /// echoed.
    pub fn unauthorized(missing: bool) -> Self {
        let message = if missing {
            "You didn't provide an API key. Send it as `Authorization: Bearer <key>` or `x-api-key: <key>`."
        } else {
            "Incorrect API key provided."
        };
        OpenAiError::new(
            StatusCode::UNAUTHORIZED,
            message,
            "invalid_request_error",
            Some("invalid_api_key"),
        )
    }

    /// 404 for a model the gateway does not serve.
    pub fn model_not_found(model: &str) -> Self {
        let mut e = OpenAiError::new(
            StatusCode::NOT_FOUND,
            format!("The model `{}` does not exist.", truncate(model, 128)),
            "invalid_request_error",
            Some("model_not_found"),
        );
        e.param = Some(Cow::Borrowed("model"));
        e
    }

    /// 404 for an unknown URL.
    pub fn unknown_route(method: &http::Method, path: &str) -> Self {
        OpenAiError::new(
            StatusCode::NOT_FOUND,
            format!("Unknown request URL: {method} {}.", truncate(path, 256)),
            "invalid_request_error",
            Some("unknown_url"),
        )
    }

    /// 405 for a known URL with the wrong method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        OpenAiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method {method} is not allowed on {}.", truncate(path, 256)),
            "invalid_request_error",
            Some("method_not_allowed"),
        )
    }

    /// 413 for a body larger than `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        OpenAiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than the limit of {limit} bytes."),
            "invalid_request_error",
            Some("request_too_large"),
        )
    }

    /// 408 for a client that did not send its body in time.
    pub fn body_timeout() -> Self {
        OpenAiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "The request body was not received in time.",
            "invalid_request_error",
            Some("request_timeout"),
        )
    }

    /// 429 with a retry-after and the limit's state.
    pub fn rate_limited(
        message: impl Into<Cow<'static, str>>,
        retry_after: Duration,
        limits: Option<ProviderLimits>,
    ) -> Self {
        let mut e = OpenAiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            message,
            "rate_limit_error",
            Some("rate_limit_exceeded"),
        );
        e.retry_after = Some(retry_after);
        e.limits = limits.map(Box::new);
        e
    }

    /// Maps an llm-tower [`Error`]: its status, an OpenAI `type` and `code`, and for rate
    /// limits the retry-after and limit headers.
    pub fn from_error(e: &Error) -> Self {
        if e.code() == Some(Error::MODEL_NOT_FOUND) {
            let mut oe = OpenAiError::new(
                StatusCode::NOT_FOUND,
                e.message().to_owned(),
                "invalid_request_error",
                Some("model_not_found"),
            );
            oe.param = Some(Cow::Borrowed("model"));
            return oe;
        }
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, code): (&'static str, &'static str) = match e.kind() {
            ErrorKind::RateLimited => ("rate_limit_error", "rate_limit_exceeded"),
            ErrorKind::BudgetExceeded => ("insufficient_quota", "budget_exceeded"),
            ErrorKind::ContextLengthExceeded => {
                ("invalid_request_error", "context_length_exceeded")
            }
            ErrorKind::InvalidRequest => ("invalid_request_error", "invalid_request"),
            ErrorKind::Unauthorized => ("server_error", "upstream_unauthorized"),
            _ if status.is_client_error() => ("invalid_request_error", e.label()),
            _ => ("server_error", e.label()),
        };
        // An upstream 401/403 is the gateway's credential problem, not the client's: a 401
        // would make clients think their gateway key is wrong.
        let status = if e.kind() == ErrorKind::Unauthorized {
            StatusCode::BAD_GATEWAY
        } else {
            status
        };
        let mut message = String::with_capacity(e.message().len() + 16);
        if let Some(p) = e.provider() {
            let _ = write!(message, "{p}: ");
        }
        message.push_str(e.message());
        let code = match (e.kind(), e.code()) {
            (ErrorKind::InvalidRequest, Some("invalid_value")) => "invalid_value",
            (ErrorKind::InvalidRequest, Some("budget_too_small")) => "budget_too_small",
            _ => code,
        };
        OpenAiError {
            status,
            message: Cow::Owned(message),
            kind,
            param: e.param().map(|p| Cow::Owned(p.to_owned())),
            code: Some(code),
            retry_after: e.retry_after().or_else(|| {
                (e.kind() == ErrorKind::RateLimited)
                    .then(|| e.limits().and_then(longest_reset))
                    .flatten()
            }),
            limits: e.limits().map(|l| Box::new(*l)),
        }
    }

    /// Sets `param`.
    #[must_use]
    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The `code` field.
    pub fn code(&self) -> Option<&'static str> {
        self.code
    }

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        let env = Envelope {
            error: ErrorFields {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        match serde_json::to_vec(&env) {
            Ok(v) => Bytes::from(v),
            Err(_) => Bytes::from_static(
                br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#,
            ),
        }
    }

    /// Writes `Retry-After`, `retry-after-ms` and `x-ratelimit-*` into `headers`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(ra) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(ra)));
            let ms = u64::try_from(ra.as_millis()).unwrap_or(u64::MAX);
            headers.insert(RETRY_AFTER_MS, HeaderValue::from(ms));
        }
        if let Some(l) = &self.limits {
            write_limit_headers(headers, l);
        }
    }
}

/// `retry-after-ms`, read by OpenAI's SDKs before `retry-after`.
pub const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");

/// The `Retry-After` value for a wait: whole seconds, rounded up (never 0 for a non-zero wait).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs();
    if wait.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

fn longest_reset(l: &ProviderLimits) -> Option<Duration> {
    [l.requests, l.tokens, l.input_tokens, l.output_tokens]
        .iter()
        .flatten()
        .filter(|s| s.remaining == Some(0))
        .filter_map(|s| s.reset)
        .max()
}

/// Writes `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the known parts of
/// `limits` (input/output-token limits as `-input-tokens` / `-output-tokens`).
pub fn write_limit_headers(headers: &mut HeaderMap, limits: &ProviderLimits) {
    const NAMES: [[HeaderName; 3]; 4] = [
        [
            HeaderName::from_static("x-ratelimit-limit-requests"),
            HeaderName::from_static("x-ratelimit-remaining-requests"),
            HeaderName::from_static("x-ratelimit-reset-requests"),
        ],
        [
            HeaderName::from_static("x-ratelimit-limit-tokens"),
            HeaderName::from_static("x-ratelimit-remaining-tokens"),
            HeaderName::from_static("x-ratelimit-reset-tokens"),
        ],
        [
            HeaderName::from_static("x-ratelimit-limit-input-tokens"),
            HeaderName::from_static("x-ratelimit-remaining-input-tokens"),
            HeaderName::from_static("x-ratelimit-reset-input-tokens"),
        ],
        [
            HeaderName::from_static("x-ratelimit-limit-output-tokens"),
            HeaderName::from_static("x-ratelimit-remaining-output-tokens"),
            HeaderName::from_static("x-ratelimit-reset-output-tokens"),
        ],
    ];
    let states = [
        limits.requests,
        limits.tokens,
        limits.input_tokens,
        limits.output_tokens,
    ];
    for (state, [limit, remaining, reset]) in states.iter().zip(NAMES) {
        let Some(LimitState {
            limit: l,
            remaining: r,
            reset: t,
        }) = *state
        else {
            continue;
        };
        if let Some(l) = l {
            headers.insert(limit, HeaderValue::from(l));
        }
        if let Some(r) = r {
            headers.insert(remaining, HeaderValue::from(r));
        }
        if let Some(t) = t
            && let Ok(v) = HeaderValue::from_str(&go_duration(t))
        {
            headers.insert(reset, v);
        }
    }
}

/// Formats a duration as Go does for OpenAI's reset headers: `0s`, `120ms`, `1.5s`,
/// `6m0s`, `1h2m3s` (milliseconds rounded up).
pub fn go_duration(d: Duration) -> String {
    let ms = u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    if frac == 0 {
        let _ = write!(out, "{s}s");
    } else {
        let f = format!("{frac:03}");
        let _ = write!(out, "{s}.{}s", f.trim_end_matches('0'));
    }
    out
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body()));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.write_headers(headers);
        resp
    }
}

impl From<&Error> for OpenAiError {
    fn from(e: &Error) -> Self {
        OpenAiError::from_error(e)
    }
}

impl From<Error> for OpenAiError {
    fn from(e: Error) -> Self {
        OpenAiError::from_error(&e)
    }
}

/// An llm-tower [`Error`] that axum handlers can return: `Result<T, ApiError>` answers
/// errors in OpenAI's shape (`?` converts an `Error`).
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        OpenAiError::from_error(&self.0).into_response()
    }
}

/// Turns a JSON parse failure into a 400 naming the field: `param` is the JSON path
/// (`messages[0].role`), the message repeats it with serde's reason.
pub fn json_error(e: &serde_path_to_error::Error<serde_json::Error>) -> OpenAiError {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() {
        return invalid_json(inner);
    }
    if path == "." || path.is_empty() || path.contains('?') {
        let what = if inner.is_syntax() || inner.is_eof() {
            "Invalid JSON body"
        } else {
            "Invalid request body"
        };
        OpenAiError::bad_request(format!("{what}: {inner}"), None)
    } else {
        OpenAiError::bad_request(format!("{path}: {inner}"), Some(Cow::Owned(path)))
    }
}

/// A 400 for a body that is not JSON: `Invalid JSON at line L, column C: reason`, with
/// no `param` (there is no field to name).
pub fn invalid_json(e: &serde_json::Error) -> OpenAiError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let reason = full.strip_suffix(&suffix).unwrap_or(&full);
    OpenAiError::bad_request(
        format!(
            "Invalid JSON at line {}, column {}: {reason}",
            e.line(),
            e.column()
        ),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_like_openai() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_micros(1)), "1ms");
        assert_eq!(go_duration(Duration::from_millis(120)), "120ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_millis(3_723_250)), "1h2m3.25s");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 0);
    }

    #[test]
    fn budget_is_402_and_rate_limit_429_with_headers() {
        let e = OpenAiError::from_error(&Error::budget_exceeded("monthly budget"));
        assert_eq!(e.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(e.code(), Some("budget_exceeded"));
        let limits = ProviderLimits {
            requests: Some(LimitState {
                limit: Some(3),
                remaining: Some(0),
                reset: Some(Duration::from_millis(1500)),
            }),
            ..Default::default()
        };
        let e =
            Error::rate_limited("slow down", Some(Duration::from_millis(1500))).with_limits(limits);
        let mut h = HeaderMap::new();
        let oe = OpenAiError::from_error(&e);
        assert_eq!(oe.status(), StatusCode::TOO_MANY_REQUESTS);
        oe.write_headers(&mut h);
        assert_eq!(h["retry-after"], "2");
        assert_eq!(h["retry-after-ms"], "1500");
        assert_eq!(h["x-ratelimit-limit-requests"], "3");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
        assert_eq!(h["x-ratelimit-reset-requests"], "1.5s");
        let v: serde_json::Value = serde_json::from_slice(&oe.body()).unwrap();
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["param"], serde_json::Value::Null);
    }

    #[test]
    fn upstream_unauthorized_is_not_a_client_401() {
        let e = Error::new(ErrorKind::Unauthorized, "bad upstream key").with_provider("openai");
        let oe = OpenAiError::from_error(&e);
        assert_eq!(oe.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(oe.message(), "openai: bad upstream key");
    }
}
