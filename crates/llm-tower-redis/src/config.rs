//! [`RedisConfig`]: where Redis is, how keys are named, and what happens when it fails.

use std::fmt;
use std::time::Duration;

use llm_tower_core::Error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keys::validate_prefix;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "llm-tower";
/// The default time limit of one Redis call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default time between two reconnect checks while Redis is unreachable.
pub const DEFAULT_RECONNECT_INTERVAL: Duration = Duration::from_secs(1);

/// What a store does when Redis cannot be reached (connection refused or lost, a call
/// timed out, the server is loading or read-only).
///
/// Both policies log a warning once when Redis goes away and once when it is back, never
/// per request; neither ever lets requests through unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Refuse: every decision fails with an `ErrorKind::Store` error (HTTP 503 at the
    /// gateway) until Redis is back. The shared limits are never exceeded.
    #[default]
    FailClosed,
    /// Decide locally: fall back to an in-memory store of this process
    /// (`MemoryStore` / `MemoryBudgetStore`) with the same limits, and go back to Redis
    /// once a reconnect check succeeds. During an outage each instance enforces the
    /// limits on its own, so N instances may together admit up to N times a limit.
    FailOpenLocal,
}

impl FailurePolicy {
    /// The name used in configuration files (`fail_closed`, `fail_open_local`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::FailClosed => "fail_closed",
            FailurePolicy::FailOpenLocal => "fail_open_local",
        }
    }
}

impl fmt::Display for FailurePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to reach Redis and how to behave when it is unreachable.
///
/// In JSON (the `store` section of the llm-tower config, whose `"type": "redis"` tag is
/// read by the config crate):
///
/// ```json
/// { "url": "redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0", "prefix": "llm-tower",
///   "on_error": "fail_closed", "timeout_ms": 1000, "reconnect_interval_ms": 1000 }
/// ```
///
/// Only `url` is required. Unknown fields are errors. `Debug` output and log lines show
/// the URL with its password replaced by `***` ([`redact_url`]).
///
/// ```
/// use std::time::Duration;
/// use llm_tower_redis::{FailurePolicy, RedisConfig};
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379/")
///     .prefix("my-app")
///     .failure_policy(FailurePolicy::FailOpenLocal)
///     .timeout(Duration::from_millis(250));
/// assert_eq!(config.failure_policy, FailurePolicy::FailOpenLocal);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The server URL: `redis://[[user]:password@]host[:port][/db]`, `rediss://` is not
    /// supported by this build (no TLS feature), `redis+unix:///path?pass=...` is.
    pub url: String,
    /// The first part of every key (default `llm-tower`); no braces.
    pub prefix: String,
    /// What happens when Redis is unreachable (default [`FailurePolicy::FailClosed`]).
    pub failure_policy: FailurePolicy,
    /// The longest one Redis call (connect included) may take before it counts as a
    /// failure (default 1 s).
    pub timeout: Duration,
    /// While Redis is unreachable, how often one request tries it again (default 1 s);
    /// the others fail or decide locally at once, without waiting.
    pub reconnect_interval: Duration,
}

impl RedisConfig {
    /// A configuration for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            failure_policy: FailurePolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            reconnect_interval: DEFAULT_RECONNECT_INTERVAL,
        }
    }

    /// Sets the key prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the failure policy.
    #[must_use]
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Sets the time limit of one call.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the time between reconnect checks while Redis is unreachable.
    #[must_use]
    pub fn reconnect_interval(mut self, interval: Duration) -> Self {
        self.reconnect_interval = interval;
        self
    }

    /// The URL with its password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// Checks the configuration without connecting.
    ///
    /// # Errors
    /// `Config` when the URL does not parse, the prefix is empty or has braces or
    /// whitespace, or the timeout is zero.
    pub fn validate(&self) -> Result<(), Error> {
        validate_prefix(&self.prefix)?;
        if self.timeout.is_zero() {
            return Err(Error::config("redis store: timeout must be > 0"));
        }
        redis::Client::open(self.url.as_str()).map_err(|e| {
            Error::config(format!(
                "redis store: invalid url {}: {}",
                self.redacted_url(),
                e.category()
            ))
        })?;
        Ok(())
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("prefix", &self.prefix)
            .field("failure_policy", &self.failure_policy)
            .field("timeout", &self.timeout)
            .field("reconnect_interval", &self.reconnect_interval)
            .finish()
    }
}

/// The JSON shape of [`RedisConfig`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisConfig {
    url: String,
    #[serde(default = "default_prefix")]
    prefix: String,
    #[serde(default)]
    on_error: FailurePolicy,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_reconnect_ms")]
    reconnect_interval_ms: u64,
}

fn default_prefix() -> String {
    DEFAULT_PREFIX.to_owned()
}

fn default_timeout_ms() -> u64 {
    millis(DEFAULT_TIMEOUT)
}

fn default_reconnect_ms() -> u64 {
    millis(DEFAULT_RECONNECT_INTERVAL)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<'de> Deserialize<'de> for RedisConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawRedisConfig::deserialize(deserializer)?;
        Ok(RedisConfig {
            url: raw.url,
            prefix: raw.prefix,
            failure_policy: raw.on_error,
            timeout: Duration::from_millis(raw.timeout_ms),
            reconnect_interval: Duration::from_millis(raw.reconnect_interval_ms),
        })
    }
}

impl Serialize for RedisConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawRedisConfig {
            url: self.url.clone(),
            prefix: self.prefix.clone(),
            on_error: self.failure_policy,
            timeout_ms: millis(self.timeout),
            reconnect_interval_ms: millis(self.reconnect_interval),
        }
        .serialize(serializer)
    }
}

/// Replaces the secrets of a Redis URL with `***`: the password of the user info
/// (`redis://user:***@host`, `redis://:***@host`; a lone user-info part, which some
/// clients read as a password, is hidden whole) and `pass`/`password` query parameters
/// (`redis+unix:///tmp/redis.sock?pass=***`). A string that is not a URL is hidden whole.
///
/// ```
/// assert_eq!(
///     llm_tower_redis::redact_url("redis://:hunter2@cache:6379/0"),
///     "redis://:***@cache:6379/0"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "[redacted: not a url]".to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str("***"),
            }
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..q + 1]);
            let query = &tail[q + 1..];
            let (query, fragment) = match query.find('#') {
                Some(h) => query.split_at(h),
                None => (query, ""),
            };
            let mut first = true;
            for pair in query.split('&') {
                if !first {
                    out.push('&');
                }
                first = false;
                let name = pair.split('=').next().unwrap_or("");
                if pair.contains('=')
                    && matches!(name.to_ascii_lowercase().as_str(), "pass" | "password")
                {
                    out.push_str(name);
                    out.push_str("=***");
                } else {
                    out.push_str(pair);
                }
            }
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_and_keeps_the_rest() {
        assert_eq!(
            redact_url("redis://:secret@host:6379/"),
            "redis://:***@host:6379/"
        );
        assert_eq!(
            redact_url("redis://user:secret@host/2"),
            "redis://user:***@host/2"
        );
        assert_eq!(redact_url("redis://secret@host"), "redis://***@host");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(redact_url("redis://u:p@ss@host/"), "redis://u:***@host/");
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock?db=1&pass=secret"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
        assert_eq!(
            redact_url("redis://h/?Password=x#frag"),
            "redis://h/?Password=***#frag"
        );
        assert_eq!(redact_url("secret-but-not-a-url"), "[redacted: not a url]");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = RedisConfig::new("redis://:hunter2@10.0.0.1:6379/0");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("redis://:***@10.0.0.1:6379/0"), "{dbg}");
    }

    #[test]
    fn json_defaults_and_names() {
        let c: RedisConfig = serde_json::from_str(r#"{"url": "redis://127.0.0.1/"}"#).unwrap();
        assert_eq!(c, RedisConfig::new("redis://127.0.0.1/"));
        let c: RedisConfig = serde_json::from_str(
            r#"{"url": "redis://h/", "prefix": "p", "on_error": "fail_open_local", "timeout_ms": 250, "reconnect_interval_ms": 5000}"#,
        )
        .unwrap();
        assert_eq!(c.prefix, "p");
        assert_eq!(c.failure_policy, FailurePolicy::FailOpenLocal);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.reconnect_interval, Duration::from_secs(5));
        let back: RedisConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn json_rejects_unknown_fields_and_policies() {
        assert!(
            serde_json::from_str::<RedisConfig>(r#"{"url": "redis://h/", "urls": []}"#).is_err()
        );
        assert!(
            serde_json::from_str::<RedisConfig>(r#"{"url": "redis://h/", "on_error": "ignore"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<RedisConfig>(r#"{"prefix": "p"}"#).is_err());
    }

    #[test]
    fn validation() {
        assert!(
            RedisConfig::new("redis://127.0.0.1:6379/")
                .validate()
                .is_ok()
        );
        let e = RedisConfig::new("not a url :secret@")
            .validate()
            .unwrap_err();
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::Config);
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(
            RedisConfig::new("redis://h/")
                .prefix("a{b}")
                .validate()
                .is_err()
        );
        assert!(
            RedisConfig::new("redis://h/")
                .timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
    }
}
