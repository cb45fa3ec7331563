//! The typed request context that the layers read and write.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::usage::{TokenEstimate, UsageMeter};

/// The identity of a caller, used for keyed rate limits and budgets (a gateway key's name,
/// a user id, a tenant). It is an identifier, never a secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallerKey(Arc<str>);

impl CallerKey {
    /// A caller key from a name.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        CallerKey(name.into())
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CallerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallerKey({})", self.0)
    }
}

impl fmt::Display for CallerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for CallerKey {
    fn from(s: &str) -> Self {
        CallerKey::new(s)
    }
}

impl From<String> for CallerKey {
    fn from(s: String) -> Self {
        CallerKey::new(s)
    }
}

/// A request id, unique within the process.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl RequestId {
    /// A new process-unique id (`req-<pid hex>-<counter hex>`).
    pub fn generate() -> Self {
        static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let pid = *PID.get_or_init(std::process::id);
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        RequestId(format!("req-{pid:x}-{n:x}").into())
    }

    /// An id given by the caller (e.g. from an `x-request-id` header).
    pub fn from_string(id: impl Into<Arc<str>>) -> Self {
        RequestId(id.into())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the layers know about a request besides its body.
///
/// Users set `caller`, `tags` and `deadline`; the token-count layer writes
/// `token_estimate` and `meter`; a router writes `provider`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestContext {
    /// Who is calling (keyed limits and budgets).
    pub caller: Option<CallerKey>,
    /// Free-form tags (team, feature, environment) for analytics.
    pub tags: BTreeMap<String, String>,
    /// The request id.
    pub request_id: RequestId,
    /// No work for this request is started or waited for after this instant.
    pub deadline: Option<Instant>,
    /// The provider that will serve the request, when a router has decided.
    pub provider: Option<Arc<str>>,
    /// The token-count layer's estimate.
    pub token_estimate: Option<TokenEstimate>,
    /// Counts streamed output tokens (set by the token-count layer).
    pub meter: Option<UsageMeter>,
}

impl Default for RequestContext {
    fn default() -> Self {
        RequestContext {
            caller: None,
            tags: BTreeMap::new(),
            request_id: RequestId::generate(),
            deadline: None,
            provider: None,
            token_estimate: None,
            meter: None,
        }
    }
}
