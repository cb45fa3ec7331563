//! The one error type of the stack.
//!
//! [`Error`] is an opaque struct; what happened is its [`ErrorKind`], and the methods
//! [`Error::is_retryable`], [`Error::retry_after`], [`Error::http_status`] and
//! [`Error::label`] answer the questions every layer asks. Messages never contain
//! secrets: providers and layers build them from non-secret parts only.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::limits::ProviderLimits;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, at the granularity the layers and the gateway act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A rate limit refused the request (ours or the provider's).
    RateLimited,
    /// A budget has no room for the request.
    BudgetExceeded,
    /// The request or an attempt ran past its deadline.
    Timeout,
    /// The provider answered with an HTTP error status not covered by a finer kind.
    Provider {
        /// The HTTP status the provider returned.
        status: u16,
    },
    /// The connection failed (DNS, connect, TLS, reset, truncated body).
    Transport,
    /// The request is malformed or names something that does not exist.
    InvalidRequest,
    /// The credentials were refused.
    Unauthorized,
    /// The prompt plus the requested output does not fit the model's context window.
    ContextLengthExceeded,
    /// The provider is overloaded (Anthropic 529, OpenAI 503 "overloaded").
    Overloaded,
    /// A shared state store (Redis) failed.
    Store,
    /// The configuration is invalid.
    Config,
    /// A bug or an unexpected state inside llm-tower.
    Internal,
}

impl ErrorKind {
    /// `true` if trying the same request again may succeed.
    ///
    /// Exhaustive on purpose: a new kind must decide here.
    pub fn is_retryable(self) -> bool {
        match self {
            ErrorKind::RateLimited
            | ErrorKind::Timeout
            | ErrorKind::Transport
            | ErrorKind::Overloaded => true,
            ErrorKind::Provider { status } => status >= 500 || status == 408 || status == 409,
            ErrorKind::BudgetExceeded
            | ErrorKind::InvalidRequest
            | ErrorKind::Unauthorized
            | ErrorKind::ContextLengthExceeded
            | ErrorKind::Store
            | ErrorKind::Config
            | ErrorKind::Internal => false,
        }
    }

    /// The HTTP status a gateway answers with for this kind.
    ///
    /// An exhausted budget is `402 Payment Required`, which OpenAI's SDKs do not retry
    /// (they retry 429), so a client does not hammer a budget that resets next month.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::RateLimited => 429,
            ErrorKind::BudgetExceeded => 402,
            ErrorKind::Timeout => 504,
            ErrorKind::Provider { status } if status >= 500 => 502,
            ErrorKind::Provider { status } if (400..500).contains(&status) => status,
            ErrorKind::Provider { .. } => 502,
            ErrorKind::Transport => 502,
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::ContextLengthExceeded => 400,
            ErrorKind::Overloaded => 503,
            ErrorKind::Store => 503,
            ErrorKind::Config => 500,
            ErrorKind::Internal => 500,
        }
    }

    /// A short, low-cardinality name for metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Provider { status } if status >= 500 => "provider_5xx",
            ErrorKind::Provider { .. } => "provider_4xx",
            ErrorKind::Transport => "transport",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::ContextLengthExceeded => "context_length_exceeded",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Store => "store",
            ErrorKind::Config => "config",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Provider { status } => write!(f, "provider error (HTTP {status})"),
            other => f.write_str(&other.label().replace('_', " ")),
        }
    }
}

/// Where a rate-limit refusal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitOrigin {
    /// One of llm-tower's own rate limits.
    Local,
    /// The provider's rate limit (HTTP 429).
    Provider,
}

/// The single error type of llm-tower.
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    retry_after: Option<Duration>,
    provider: Option<Arc<str>>,
    origin: Option<LimitOrigin>,
    limits: Option<ProviderLimits>,
    attempts: u32,
    code: Option<Cow<'static, str>>,
    param: Option<Cow<'static, str>>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                retry_after: None,
                provider: None,
                origin: None,
                limits: None,
                attempts: 0,
                code: None,
                param: None,
                source: None,
            }),
        }
    }

    /// `RateLimited` from one of our own limits, with the exact time until it may pass.
    pub fn rate_limited(
        message: impl Into<Cow<'static, str>>,
        retry_after: Option<Duration>,
    ) -> Self {
        let mut e = Error::new(ErrorKind::RateLimited, message);
        e.inner.retry_after = retry_after;
        e.inner.origin = Some(LimitOrigin::Local);
        e
    }

    /// `BudgetExceeded`.
    pub fn budget_exceeded(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::BudgetExceeded, message)
    }

    /// `Timeout`.
    pub fn timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Timeout, message)
    }

    /// `InvalidRequest` for a model (or route alias) nobody serves, with the code
    /// [`Error::MODEL_NOT_FOUND`]: a gateway answers it with 404.
    pub fn model_not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidRequest, message).with_code(Error::MODEL_NOT_FOUND)
    }

    /// `InvalidRequest`.
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidRequest, message)
    }

    /// `Internal`.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// `Store`.
    pub fn store(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Store, message)
    }

    /// `Config`.
    pub fn config(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// The code of a request naming a model nobody serves.
    pub const MODEL_NOT_FOUND: &'static str = "model_not_found";

    /// Sets a machine-readable code (OpenAI's `error.code`, e.g. `model_not_found`).
    #[must_use]
    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.inner.code = Some(code.into());
        self
    }

    /// The machine-readable code, when one was set.
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// Names the request field at fault (OpenAI's `error.param`, a JSON path such as
    /// `max_tokens` or `messages[0].role`).
    #[must_use]
    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.inner.param = Some(param.into());
        self
    }

    /// The request field at fault, when one was named.
    pub fn param(&self) -> Option<&str> {
        self.inner.param.as_deref()
    }

    /// Sets the time after which the request may succeed.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.inner.retry_after = Some(retry_after);
        self
    }

    /// Names the provider that produced the error.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<Arc<str>>) -> Self {
        self.inner.provider = Some(provider.into());
        self
    }

    /// Marks where a rate-limit refusal came from.
    #[must_use]
    pub fn with_origin(mut self, origin: LimitOrigin) -> Self {
        self.inner.origin = Some(origin);
        self
    }

    /// Attaches the provider's rate-limit state from the failing response.
    #[must_use]
    pub fn with_limits(mut self, limits: ProviderLimits) -> Self {
        self.inner.limits = Some(limits);
        self
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Arc::new(source));
        self
    }

    /// Records how many attempts were made before giving up (set by the retry layer).
    pub fn set_attempts(&mut self, attempts: u32) {
        self.inner.attempts = attempts;
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The human-readable message (no secrets).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// `true` if the same request may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        self.inner.kind.is_retryable()
    }

    /// How long to wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The provider that produced the error, when known.
    pub fn provider(&self) -> Option<&str> {
        self.inner.provider.as_deref()
    }

    /// Where a rate-limit refusal came from, when this is one.
    pub fn origin(&self) -> Option<LimitOrigin> {
        self.inner.origin
    }

    /// The provider's rate-limit state, when the failing response carried it.
    pub fn limits(&self) -> Option<&ProviderLimits> {
        self.inner.limits.as_ref()
    }

    /// Attempts made (0 when no retry layer saw the error).
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// The HTTP status a gateway answers with: the kind's, except 404 for
    /// [`Error::MODEL_NOT_FOUND`].
    pub fn http_status(&self) -> u16 {
        if self.code() == Some(Error::MODEL_NOT_FOUND) {
            return 404;
        }
        self.inner.kind.http_status()
    }

    /// A short, low-cardinality name for metrics labels.
    pub fn label(&self) -> &'static str {
        self.inner.kind.label()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(r) = self.inner.retry_after {
            d.field("retry_after", &r);
        }
        if let Some(p) = &self.inner.provider {
            d.field("provider", p);
        }
        if self.inner.attempts > 0 {
            d.field("attempts", &self.inner.attempts);
        }
        if let Some(c) = &self.inner.code {
            d.field("code", c);
        }
        if let Some(p) = &self.inner.param {
            d.field("param", p);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.inner.provider {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}: {}", self.inner.kind, self.inner.message)?;
        if let Some(r) = self.inner.retry_after {
            write!(f, " (retry after {:.3}s)", r.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// Converts any boxed error into an [`Error`]: an `Error` inside is unwrapped,
    /// anything else becomes `Internal` with its message.
    pub fn from_boxed(e: BoxError) -> Error {
        match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(e) => Error::internal(e.to_string()),
        }
    }
}

impl From<crate::money::MoneyParseError> for Error {
    /// A money string that does not parse is a `Config` error (amounts come from
    /// configuration: budgets, prices, limits).
    fn from(e: crate::money::MoneyParseError) -> Error {
        Error::config(e.to_string()).with_source(e)
    }
}

impl From<crate::money::PriceError> for Error {
    /// An invalid price is a `Config` error.
    fn from(e: crate::money::PriceError) -> Error {
        Error::config(format!("invalid price: {e}")).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds() {
        assert!(ErrorKind::RateLimited.is_retryable());
        assert!(ErrorKind::Provider { status: 500 }.is_retryable());
        assert!(ErrorKind::Provider { status: 529 }.is_retryable());
        assert!(ErrorKind::Provider { status: 408 }.is_retryable());
        assert!(
            !ErrorKind::Provider { status: 429 }.is_retryable(),
            "insufficient_quota 429 maps here"
        );
        assert!(!ErrorKind::Provider { status: 400 }.is_retryable());
        assert!(!ErrorKind::BudgetExceeded.is_retryable());
        assert!(!ErrorKind::Unauthorized.is_retryable());
    }

    #[test]
    fn statuses_and_labels() {
        assert_eq!(Error::budget_exceeded("x").http_status(), 402);
        assert_eq!(Error::rate_limited("x", None).http_status(), 429);
        assert_eq!(
            Error::new(ErrorKind::Provider { status: 503 }, "x").http_status(),
            502
        );
        assert_eq!(
            Error::new(ErrorKind::Provider { status: 503 }, "x").label(),
            "provider_5xx"
        );
        assert_eq!(Error::timeout("x").label(), "timeout");
    }

    #[test]
    fn model_not_found_is_a_404_invalid_request() {
        let e = Error::model_not_found("no such model");
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(e.code(), Some(Error::MODEL_NOT_FOUND));
        assert_eq!(e.http_status(), 404);
        assert_eq!(Error::invalid_request("x").http_status(), 400);
    }

    #[test]
    fn boxed_error_round_trip() {
        let e: BoxError = Box::new(Error::budget_exceeded("no room"));
        assert_eq!(Error::from_boxed(e).kind(), ErrorKind::BudgetExceeded);
        let e: BoxError = "boom".into();
        assert_eq!(Error::from_boxed(e).kind(), ErrorKind::Internal);
    }

    #[test]
    fn money_and_price_errors_convert_with_question_mark() {
        fn budget() -> Result<crate::Money, Error> {
            Ok("0.0002".parse::<crate::Money>()? + crate::Money::from_usd_str("1.5")?)
        }
        fn bad_money() -> Result<crate::Money, Error> {
            Ok("two dollars".parse::<crate::Money>()?)
        }
        fn bad_price() -> Result<crate::Price, Error> {
            Ok(crate::Price::parse_per_million("-1")?)
        }
        assert_eq!(budget().unwrap().as_nanos(), 1_500_200_000);
        let e = bad_money().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("invalid USD amount"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(bad_price().unwrap_err().kind(), ErrorKind::Config);
    }

    #[test]
    fn display_names_provider_and_retry_after() {
        let e = Error::rate_limited("too many", Some(Duration::from_millis(1500)))
            .with_provider("openai");
        assert_eq!(
            e.to_string(),
            "openai: rate limited: too many (retry after 1.500s)"
        );
    }
}
