//! [`Secret`]: an API key or token that never shows up in `Debug`, `Display`, logs or errors.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use http::HeaderValue;
use llm_tower_core::Error;

/// A secret string (API key, bearer token).
///
/// `Debug` prints `Secret([redacted])` and `Display` prints `[redacted]`; the value is only
/// reachable through [`Secret::expose`]. Providers put it only into header values marked
/// sensitive (`HeaderValue::set_sensitive(true)`), which hyper and `http` never print.
///
/// # Clone
///
/// Clones share one allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `true` when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A sensitive header value `{prefix}{secret}` (for example `Bearer sk-...`).
    ///
    /// # Errors
    ///
    /// `Config` when the secret contains characters a header cannot carry (the error
    /// never contains the secret).
    pub fn header_value(&self, prefix: &str) -> Result<HeaderValue, Error> {
        let mut v = String::with_capacity(prefix.len() + self.0.len());
        v.push_str(prefix);
        v.push_str(&self.0);
        let mut hv = HeaderValue::from_str(&v).map_err(|_| {
            Error::config("the API key contains characters that are not allowed in a header")
        })?;
        hv.set_sensitive(true);
        Ok(hv)
    }

    /// Replaces every occurrence of the secret in `text` with `[redacted]`.
    pub(crate) fn redact_in(&self, text: &str) -> String {
        if self.0.len() < MIN_SECRET_LEN || !text.contains(&*self.0) {
            return text.to_owned();
        }
        text.replace(&*self.0, "[redacted]")
    }
}

/// Every secret a provider sends (its key, secret extra headers, and the tokens it
/// obtains at run time), scrubbed from provider messages before they become errors.
///
/// The secrets given at construction stay for good; tokens added later with
/// [`Secrets::remember`] (Entra ID and Vertex AI access tokens, refreshed AWS
/// credentials) are kept for the last [`MAX_RUNTIME_SECRETS`] values, so a token that was
/// refreshed a moment ago is still scrubbed from a late error.
///
/// # Clone
///
/// Clones share one set: a secret remembered through one clone is scrubbed by all (the
/// stream parsers hold clones).
#[derive(Clone, Default)]
pub(crate) struct Secrets(Arc<SecretSet>);

/// How many run-time secrets (the most recent ones) are remembered.
pub(crate) const MAX_RUNTIME_SECRETS: usize = 8;

#[derive(Default)]
struct SecretSet {
    fixed: Box<[Secret]>,
    runtime: RwLock<VecDeque<Secret>>,
}

/// Shortest secret scrubbed (shorter values would scrub ordinary words).
const MIN_SECRET_LEN: usize = 4;

impl Secrets {
    /// The secrets, without empty ones and duplicates.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Self {
        let mut v: Vec<Secret> = Vec::new();
        for s in secrets {
            if !s.is_empty() && !v.contains(&s) {
                v.push(s);
            }
        }
        Secrets(Arc::new(SecretSet {
            fixed: v.into(),
            runtime: RwLock::default(),
        }))
    }

    /// Adds a secret obtained at run time (a fetched access token). Cheap when it is
    /// already known, as on every request that reuses a cached token.
    pub fn remember(&self, secret: &Secret) {
        if secret.0.len() < MIN_SECRET_LEN || self.0.fixed.contains(secret) {
            return;
        }
        if self
            .0
            .runtime
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(secret)
        {
            return;
        }
        let mut runtime = self
            .0
            .runtime
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if runtime.contains(secret) {
            return;
        }
        runtime.push_back(secret.clone());
        while runtime.len() > MAX_RUNTIME_SECRETS {
            runtime.pop_front();
        }
    }

    /// Replaces every occurrence of every secret in `text` with `[redacted]`.
    pub fn redact_in(&self, text: &str) -> String {
        let runtime = self
            .0
            .runtime
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<&Secret> = self.0.fixed.iter().chain(runtime.iter()).collect();
        // Longest first, so a secret containing another is replaced whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        let mut out = text.to_owned();
        for s in all {
            out = s.redact_in(&out);
        }
        out
    }

    /// How many secrets are known (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.fixed.len()
            + self
                .0
                .runtime
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let runtime = self.0.runtime.read().map(|r| r.len()).unwrap_or_default();
        write!(f, "Secrets([{} redacted])", self.0.fixed.len() + runtime)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("sk-very-secret-123");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.to_string(), "[redacted]");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            key: Secret,
        }
        let c = Config { key: s.clone() };
        assert!(!format!("{c:?}").contains("very-secret"));
        assert!(!format!("{c:#?}").contains("very-secret"));
        assert_eq!(s.expose(), "sk-very-secret-123");
    }

    #[test]
    fn header_value_is_sensitive_and_prefixed() {
        let s = Secret::new("abc123");
        let hv = s.header_value("Bearer ").unwrap();
        assert!(hv.is_sensitive());
        assert_eq!(hv.to_str().unwrap(), "Bearer abc123");
        assert!(!format!("{hv:?}").contains("abc123"));
    }

    #[test]
    fn header_value_rejects_newlines_without_echoing_the_key() {
        let s = Secret::new("abc\n123-secret");
        let e = s.header_value("").unwrap_err();
        assert!(!e.to_string().contains("123-secret"));
        assert!(!format!("{e:?}").contains("123-secret"));
    }

    #[test]
    fn secrets_redact_every_value() {
        let s = Secrets::new([
            Secret::new("key-1234"),
            Secret::new(""),
            Secret::new("gw-SECRET-value"),
            Secret::new("key-1234"),
        ]);
        assert_eq!(
            s.redact_in("got key-1234 and gw-SECRET-value"),
            "got [redacted] and [redacted]"
        );
        assert!(!format!("{s:?}").contains("SECRET"));
        assert_eq!(Secrets::default().redact_in("x"), "x");
    }

    #[test]
    fn remembered_secrets_are_shared_by_clones_and_bounded() {
        let s = Secrets::new([Secret::new("fixed-key-1")]);
        let parser_copy = s.clone();
        s.remember(&Secret::new("ya29.runtime-token"));
        s.remember(&Secret::new("ya29.runtime-token"));
        s.remember(&Secret::new("abc"));
        s.remember(&Secret::new("fixed-key-1"));
        assert_eq!(s.len(), 2);
        assert_eq!(
            parser_copy.redact_in("echo: Bearer ya29.runtime-token / fixed-key-1"),
            "echo: Bearer [redacted] / [redacted]"
        );
        for i in 0..MAX_RUNTIME_SECRETS {
            s.remember(&Secret::new(format!("later-token-{i}")));
        }
        assert_eq!(s.len(), 1 + MAX_RUNTIME_SECRETS);
        assert_eq!(s.redact_in("ya29.runtime-token"), "ya29.runtime-token");
        assert_eq!(
            s.redact_in("later-token-0 fixed-key-1"),
            "[redacted] [redacted]"
        );
        assert!(!format!("{s:?}").contains("token"));
    }

    #[test]
    fn redact_in_replaces_the_key() {
        let s = Secret::new("sk-abcdef");
        assert_eq!(
            s.redact_in("bad key sk-abcdef given"),
            "bad key [redacted] given"
        );
    }
}
