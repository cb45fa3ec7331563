//! Gateway keys: who is calling.
//!
//! The gateway reads `Authorization: Bearer <key>` or `x-api-key: <key>` (Anthropic's
//! header; either works on every route) and asks an [`Authenticator`] for the
//! key's [`CallerKey`] (its *name*, never the secret), which becomes
//! `RequestContext::caller`, so the stack's per-caller limits and budgets apply to it.

use std::collections::HashMap;
use std::fmt;

use llm_tower_core::CallerKey;

/// Maps a presented bearer token to the caller it belongs to, or `None` when unknown.
///
/// Implemented for any `Fn(&str) -> Option<CallerKey> + Send + Sync` closure. An
/// implementation must not log or keep the token.
pub trait Authenticator: Send + Sync + 'static {
    /// The caller of `token`, `None` if the token is not a valid key.
    fn authenticate(&self, token: &str) -> Option<CallerKey>;
}

impl<F> Authenticator for F
where
    F: Fn(&str) -> Option<CallerKey> + Send + Sync + 'static,
{
    fn authenticate(&self, token: &str) -> Option<CallerKey> {
        self(token)
    }
}

/// Nobody is known: every token is refused (use with `auth_required = false`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeys;

impl Authenticator for NoKeys {
    fn authenticate(&self, _token: &str) -> Option<CallerKey> {
        None
    }
}

/// A fixed table of keys, for tests and embedding. `Debug` shows the caller names only.
#[derive(Clone, Default)]
pub struct StaticKeys {
    keys: HashMap<String, CallerKey>,
}

impl StaticKeys {
    /// An empty table.
    pub fn new() -> Self {
        StaticKeys::default()
    }

    /// Adds `token` for the caller `name`.
    #[must_use]
    pub fn with(mut self, token: impl Into<String>, name: impl Into<CallerKey>) -> Self {
        self.keys.insert(token.into(), name.into());
        self
    }
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.keys.values()).finish()
    }
}

impl Authenticator for StaticKeys {
    fn authenticate(&self, token: &str) -> Option<CallerKey> {
        self.keys.get(token).cloned()
    }
}
