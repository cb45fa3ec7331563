//! Provider HTTP errors and error bodies mapped to [`Error`] kinds.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use llm_tower_core::{Error, ErrorKind, LimitOrigin, ProviderLimits};
use serde::Deserialize;
use serde_json::Value;

use crate::headers;
use crate::secret::Secrets;

/// Provider messages are truncated to this many characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 300;

/// What a provider's error body says, in any of the shapes OpenAI, Azure, Anthropic and
/// compatible servers use.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    /// `error.type` (OpenAI, Anthropic).
    pub kind: Option<String>,
    /// `error.code` (OpenAI, Azure), as a string.
    pub code: Option<String>,
    /// `error.status` (Google: `RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, ...).
    pub status: Option<String>,
    /// `error.details[].retryDelay` of a Google `RetryInfo` (`"37s"`).
    pub retry_delay: Option<Duration>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<Value>,
    #[serde(default)]
    detail: Option<Value>,
    /// OAuth2 token endpoints: `{"error": "invalid_grant", "error_description": "..."}`.
    #[serde(default)]
    error_description: Option<Value>,
}

fn value_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ErrorBody {
    /// Parses an error body; anything that is not JSON becomes its (lossy) text.
    pub fn parse(body: &[u8]) -> ErrorBody {
        // Google sometimes wraps the error in an array: `[{"error": {...}}]`.
        if body.trim_ascii_start().first() == Some(&b'[')
            && let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(body)
            && let Some(first) = items.first()
        {
            return ErrorBody::from_value(first);
        }
        if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
            return ErrorBody::from_envelope(env);
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        ErrorBody {
            message: (!text.is_empty()).then(|| text.to_owned()),
            ..ErrorBody::default()
        }
    }

    /// Parses the `error` object of an in-stream error event.
    pub fn from_value(v: &Value) -> ErrorBody {
        match serde_json::from_value::<Envelope>(v.clone()) {
            Ok(env) => ErrorBody::from_envelope(env),
            Err(_) => ErrorBody::default(),
        }
    }

    fn from_envelope(env: Envelope) -> ErrorBody {
        match env.error {
            Some(Value::Object(obj)) => ErrorBody {
                message: value_string(obj.get("message")),
                kind: value_string(obj.get("type")),
                code: value_string(obj.get("code")),
                status: value_string(obj.get("status")),
                retry_delay: google_retry_delay(obj.get("details")),
            },
            Some(Value::String(s)) => ErrorBody {
                message: Some(match value_string(env.error_description.as_ref()) {
                    Some(d) => format!("{s}: {d}"),
                    None => s,
                }),
                kind: value_string(env.kind.as_ref()),
                ..ErrorBody::default()
            },
            _ => ErrorBody {
                message: value_string(env.message.as_ref())
                    .or_else(|| value_string(env.detail.as_ref())),
                kind: value_string(env.kind.as_ref()),
                ..ErrorBody::default()
            },
        }
    }

    /// Google's "API key not valid" (sent as 400 `INVALID_ARGUMENT`).
    fn is_bad_api_key(&self) -> bool {
        self.message
            .as_deref()
            .is_some_and(|m| m.contains("API key not valid") || m.contains("API_KEY_INVALID"))
    }

    fn is_context_length(&self) -> bool {
        if self.code.as_deref() == Some("context_length_exceeded")
            || self.kind.as_deref() == Some("exceed_context_size_error")
        {
            return true;
        }
        let Some(m) = &self.message else { return false };
        let m = m.to_ascii_lowercase();
        [
            // Anthropic: "prompt is too long: 208310 tokens > 200000 maximum".
            "prompt is too long",
            // Anthropic: "input length and `max_tokens` exceed context limit: 188240 +
            // 21333 > 200000, decrease input length or `max_tokens` and try again".
            "exceed context limit",
            "exceeds context limit",
            "maximum context length",
            "context_length_exceeded",
            "context length exceeded",
            "exceeds the available context size",
            "exceeds the context window",
            // Gemini: "The input token count (1234567) exceeds the maximum number of tokens
            // allowed (1048576)."
            "exceeds the maximum number of tokens allowed",
        ]
        .iter()
        .any(|p| m.contains(p))
    }

    fn is_overloaded(&self) -> bool {
        self.kind.as_deref() == Some("overloaded_error")
            || self.status.as_deref() == Some("UNAVAILABLE")
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("overloaded"))
    }

    fn is_insufficient_quota(&self) -> bool {
        self.code.as_deref() == Some("insufficient_quota")
            || self.kind.as_deref() == Some("insufficient_quota")
    }
}

/// The `retryDelay` of the first `google.rpc.RetryInfo` in Google's `error.details`.
fn google_retry_delay(details: Option<&Value>) -> Option<Duration> {
    let Value::Array(items) = details? else {
        return None;
    };
    items.iter().find_map(|d| {
        let ty = d.get("@type")?.as_str()?;
        if !ty.ends_with("google.rpc.RetryInfo") {
            return None;
        }
        parse_google_duration(d.get("retryDelay")?.as_str()?)
    })
}

/// A protobuf JSON duration: `"37s"`, `"1.5s"`.
pub(crate) fn parse_google_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    if !(0.0..=86_400.0).contains(&secs) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// The error kind for an HTTP status and error body.
pub(crate) fn kind_for_status(status: u16, body: &ErrorBody) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::InvalidRequest,
        400 if body.is_bad_api_key() => ErrorKind::Unauthorized,
        400 | 413 | 422 if body.is_context_length() => ErrorKind::ContextLengthExceeded,
        400 | 413 | 422 => ErrorKind::InvalidRequest,
        429 if body.is_insufficient_quota() => ErrorKind::Provider { status },
        429 => ErrorKind::RateLimited,
        529 => ErrorKind::Overloaded,
        503 if body.is_overloaded() => ErrorKind::Overloaded,
        _ if body.kind.as_deref() == Some("overloaded_error") => ErrorKind::Overloaded,
        _ => ErrorKind::Provider { status },
    }
}

/// The error kind for an error reported inside a stream (no HTTP status), by its type.
pub(crate) fn kind_for_stream_error(body: &ErrorBody) -> ErrorKind {
    if body.is_context_length() {
        return ErrorKind::ContextLengthExceeded;
    }
    match body.status.as_deref() {
        Some("RESOURCE_EXHAUSTED") => return ErrorKind::RateLimited,
        Some("UNAVAILABLE") => return ErrorKind::Overloaded,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "NOT_FOUND" | "OUT_OF_RANGE") => {
            return ErrorKind::InvalidRequest;
        }
        Some("UNAUTHENTICATED" | "PERMISSION_DENIED") => return ErrorKind::Unauthorized,
        Some("DEADLINE_EXCEEDED") => return ErrorKind::Timeout,
        _ => {}
    }
    match body.kind.as_deref() {
        Some("overloaded_error") => ErrorKind::Overloaded,
        Some("rate_limit_error" | "rate_limit_exceeded" | "requests" | "tokens") => {
            ErrorKind::RateLimited
        }
        Some("authentication_error" | "permission_error") => ErrorKind::Unauthorized,
        Some("invalid_request_error" | "not_found_error" | "request_too_large") => {
            ErrorKind::InvalidRequest
        }
        Some("timeout_error") => ErrorKind::Timeout,
        _ if body.is_overloaded() => ErrorKind::Overloaded,
        _ => ErrorKind::Provider { status: 500 },
    }
}

/// Truncates to [`MAX_MESSAGE_CHARS`] and removes anything that looks like a key.
pub(crate) fn clean_message(message: &str, secrets: Option<&Secrets>) -> String {
    let redacted: Cow<'_, str> = match secrets {
        Some(s) => Cow::Owned(s.redact_in(message)),
        None => Cow::Borrowed(message),
    };
    let mut out = String::with_capacity(redacted.len().min(MAX_MESSAGE_CHARS + 3));
    for (i, word) in redacted.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        if bare.starts_with("sk-") && bare.len() > 6 {
            out.push_str(&word[..word.len() - bare.len()]);
            out.push_str("sk-[redacted]");
        } else {
            out.push_str(word);
        }
    }
    let out: String = out
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    if out.chars().count() > MAX_MESSAGE_CHARS {
        let mut t: String = out.chars().take(MAX_MESSAGE_CHARS).collect();
        t.push_str("...");
        t
    } else {
        out
    }
}

/// Everything needed to turn a failed HTTP response into an [`Error`].
pub(crate) struct HttpFailure<'a> {
    pub status: StatusCode,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub limits: Option<ProviderLimits>,
    pub now: SystemTime,
    pub secret: Option<&'a Secrets>,
}

impl HttpFailure<'_> {
    /// The error, with kind, message, retry-after, limits and origin set (the caller adds
    /// the provider name).
    pub fn into_error(self) -> Error {
        let body = ErrorBody::parse(self.body);
        let status = self.status.as_u16();
        let kind = kind_for_status(status, &body);
        let detail = body
            .message
            .as_deref()
            .map(|m| clean_message(m, self.secret))
            .unwrap_or_else(|| {
                self.status
                    .canonical_reason()
                    .unwrap_or("no error message")
                    .to_owned()
            });
        let prefix = match (status, kind) {
            (404, _) => "model or endpoint not found: ",
            (_, ErrorKind::Provider { status: 429 }) => "quota exhausted: ",
            _ => "",
        };
        let mut err = Error::new(kind, format!("HTTP {status}: {prefix}{detail}"));
        let retry = headers::retry_after(self.headers, self.now).or_else(|| {
            if body.retry_delay.is_some() && kind.is_retryable() {
                body.retry_delay
            } else if kind == ErrorKind::RateLimited {
                self.limits.as_ref().and_then(headers::exhausted_reset)
            } else {
                None
            }
        });
        if let Some(r) = retry {
            err = err.with_retry_after(r);
        }
        if kind == ErrorKind::RateLimited {
            err = err.with_origin(LimitOrigin::Provider);
        }
        if let Some(l) = self.limits {
            err = err.with_limits(l);
        }
        err
    }
}

/// An error reported inside a stream (`{"error": {...}}` data, Anthropic `error` event).
pub(crate) fn stream_error(body: &ErrorBody, secret: Option<&Secrets>) -> Error {
    let kind = kind_for_stream_error(body);
    let msg = body
        .message
        .as_deref()
        .map(|m| clean_message(m, secret))
        .unwrap_or_else(|| "unknown error".to_owned());
    let mut e = Error::new(kind, format!("error in stream: {msg}"));
    if kind == ErrorKind::RateLimited {
        e = e.with_origin(LimitOrigin::Provider);
    }
    e
}

/// A `Transport` error for a body that could not be parsed.
pub(crate) fn invalid_body(what: &str, err: &serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Transport,
        format!("invalid {what} from provider: {err}"),
    )
}

/// Maps a hyper client error to `Transport` (or `Timeout` when the connect timed out).
pub(crate) fn transport(err: &(dyn std::error::Error + 'static)) -> Error {
    let mut msg = err.to_string();
    let mut src = err.source();
    let mut timed_out = false;
    while let Some(s) = src {
        let text = s.to_string();
        if text.contains("timed out") || text.contains("timeout") {
            timed_out = true;
        }
        msg.push_str(": ");
        msg.push_str(&text);
        src = s.source();
    }
    let msg = clean_message(&msg, None);
    if timed_out {
        Error::timeout(format!("connection timed out: {msg}"))
    } else {
        Error::new(ErrorKind::Transport, msg)
    }
}

/// `Duration` formatted for messages (`1.5s`).
pub(crate) fn fmt_duration(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn fail(status: u16, body: &str, hdrs: &[(&'static str, &str)]) -> Error {
        let mut h = HeaderMap::new();
        for (k, v) in hdrs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        HttpFailure {
            status: StatusCode::from_u16(status).unwrap(),
            headers: &h,
            body: body.as_bytes(),
            limits: headers::openai_limits(&h),
            now: SystemTime::UNIX_EPOCH,
            secret: None,
        }
        .into_error()
    }

    #[test]
    fn statuses_map_to_kinds() {
        let oa = |code: &str, msg: &str| {
            format!(
                r#"{{"error":{{"message":"{msg}","type":"invalid_request_error","param":null,"code":"{code}"}}}}"#
            )
        };
        assert_eq!(
            fail(401, &oa("invalid_api_key", "bad"), &[]).kind(),
            ErrorKind::Unauthorized
        );
        assert_eq!(fail(403, "", &[]).kind(), ErrorKind::Unauthorized);
        assert_eq!(
            fail(404, &oa("model_not_found", "no"), &[]).kind(),
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            fail(400, &oa("context_length_exceeded", "too long"), &[]).kind(),
            ErrorKind::ContextLengthExceeded
        );
        assert_eq!(
            fail(
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
                &[]
            )
            .kind(),
            ErrorKind::ContextLengthExceeded
        );
        assert_eq!(
            fail(400, &oa("", "bad param"), &[]).kind(),
            ErrorKind::InvalidRequest
        );
        assert_eq!(fail(422, "{}", &[]).kind(), ErrorKind::InvalidRequest);
        assert_eq!(
            fail(408, "", &[]).kind(),
            ErrorKind::Provider { status: 408 }
        );
        assert_eq!(
            fail(409, "", &[]).kind(),
            ErrorKind::Provider { status: 409 }
        );
        assert_eq!(
            fail(500, "oops", &[]).kind(),
            ErrorKind::Provider { status: 500 }
        );
        assert!(fail(502, "<html>bad gateway</html>", &[]).is_retryable());
        assert_eq!(
            fail(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                &[]
            )
            .kind(),
            ErrorKind::Overloaded
        );
        assert_eq!(
            fail(503, r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error"}}"#, &[]).kind(),
            ErrorKind::Overloaded
        );
        assert_eq!(
            fail(503, "unavailable", &[]).kind(),
            ErrorKind::Provider { status: 503 }
        );
    }

    #[test]
    fn anthropic_context_limit_messages_are_context_length_exceeded() {
        let anthropic = |msg: &str| {
            format!(
                r#"{{"type":"error","error":{{"type":"invalid_request_error","message":{}}}}}"#,
                serde_json::to_string(msg).unwrap()
            )
        };
        for msg in [
            "prompt is too long: 208310 tokens > 200000 maximum",
            "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length or `max_tokens` and try again",
        ] {
            let e = fail(400, &anthropic(msg), &[]);
            assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded, "{msg}");
            assert!(!e.is_retryable());
            assert!(e.message().contains(&msg[..20]), "{}", e.message());
            let body = ErrorBody::from_value(&serde_json::from_str(&anthropic(msg)).unwrap());
            assert_eq!(
                stream_error(&body, None).kind(),
                ErrorKind::ContextLengthExceeded
            );
        }
        // An unrelated invalid request stays one.
        let e = fail(400, &anthropic("max_tokens: field required"), &[]);
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    }

    #[test]
    fn rate_limit_429_is_provider_origin_with_retry_after_and_limits() {
        let e = fail(
            429,
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
            &[
                ("retry-after", "3"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "20ms"),
            ],
        );
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.origin(), Some(LimitOrigin::Provider));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.limits().unwrap().requests.unwrap().remaining, Some(0));
        assert!(e.is_retryable());
    }

    #[test]
    fn rate_limit_without_retry_after_uses_exhausted_reset() {
        let e = fail(
            429,
            "{}",
            &[
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "1.5s"),
                ("x-ratelimit-remaining-requests", "10"),
                ("x-ratelimit-reset-requests", "9s"),
            ],
        );
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn insufficient_quota_is_not_retryable() {
        let e = fail(
            429,
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
            &[],
        );
        assert_eq!(e.kind(), ErrorKind::Provider { status: 429 });
        assert!(!e.is_retryable());
        assert!(e.message().contains("exceeded your current quota"));
    }

    #[test]
    fn messages_are_truncated_and_keys_redacted() {
        let long = "x".repeat(1000);
        let e = fail(400, &format!(r#"{{"error":{{"message":"{long}"}}}}"#), &[]);
        assert!(e.message().len() < 350);
        let e = fail(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-proj-abcd****wxyz. You can find your API key at https://example.invalid.","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            &[],
        );
        assert!(!e.message().contains("abcd"), "{}", e.message());
        assert!(e.message().contains("sk-[redacted]"));
        let secret = Secrets::new([crate::secret::Secret::new("my-key-123456")]);
        assert_eq!(
            clean_message("the key my-key-123456 is wrong", Some(&secret)),
            "the key [redacted] is wrong"
        );
    }

    #[test]
    fn azure_and_plain_error_shapes() {
        let b = ErrorBody::parse(br#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#);
        assert_eq!(b.code.as_deref(), Some("DeploymentNotFound"));
        let b = ErrorBody::parse(br#"{"error":{"code":429,"message":"slow down"}}"#);
        assert_eq!(b.code.as_deref(), Some("429"));
        let b = ErrorBody::parse(br#"{"error":"model 'x' not found"}"#);
        assert_eq!(b.message.as_deref(), Some("model 'x' not found"));
        let b = ErrorBody::parse(b"\xff\xfe not json");
        assert!(b.message.is_some());
        let b = ErrorBody::parse(br#"{"detail":"Not Found"}"#);
        assert_eq!(b.message.as_deref(), Some("Not Found"));
    }

    #[test]
    fn stream_error_kinds() {
        let v: Value = serde_json::from_str(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .unwrap();
        let body = ErrorBody::from_value(&v);
        assert_eq!(stream_error(&body, None).kind(), ErrorKind::Overloaded);
        let body = ErrorBody {
            kind: Some("rate_limit_error".into()),
            ..ErrorBody::default()
        };
        let e = stream_error(&body, None);
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.origin(), Some(LimitOrigin::Provider));
        assert_eq!(
            stream_error(&ErrorBody::default(), None).kind(),
            ErrorKind::Provider { status: 500 }
        );
    }
}
