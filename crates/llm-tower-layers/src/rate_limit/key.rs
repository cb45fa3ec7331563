//! Which key a request is limited under.

use std::borrow::Cow;

use llm_tower_core::LlmRequest;

/// Picks the key a request is limited under.
///
/// Implemented for [`KeyBy`] and for any
/// `Fn(&LlmRequest) -> Option<String> + Send + Sync + 'static` closure. Returning `None`
/// exempts the request from this limiter.
///
/// ```
/// use std::time::Duration;
/// use llm_tower_core::LlmRequest;
/// use llm_tower_layers::rate_limit::{Algorithm, RateLimitLayer};
///
/// # fn main() -> Result<(), llm_tower_core::Error> {
/// // 10 requests per minute per team tag; untagged requests are not limited here.
/// let per_team = RateLimitLayer::new(Algorithm::sliding_window(10, Duration::from_secs(60))?)
///     .key_with(|r: &LlmRequest| r.ctx.tags.get("team").cloned());
/// # let _ = per_team;
/// # Ok(()) }
/// ```
pub trait KeyExtractor: Send + Sync + 'static {
    /// The key of `req`, or `None` to let it pass unlimited.
    fn extract<'a>(&self, req: &'a LlmRequest) -> Option<Cow<'a, str>>;
}

/// The built-in keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum KeyBy {
    /// One limit for everything.
    #[default]
    Global,
    /// One limit per model name.
    Model,
    /// One limit per provider (`RequestContext::provider`; `"default"` when unset).
    Provider,
    /// One limit per caller key (`RequestContext::caller`; callers without a key share
    /// the key `"anonymous"`).
    Caller,
}

impl KeyExtractor for KeyBy {
    fn extract<'a>(&self, req: &'a LlmRequest) -> Option<Cow<'a, str>> {
        Some(match self {
            KeyBy::Global => Cow::Borrowed(""),
            KeyBy::Model => Cow::Borrowed(req.model()),
            KeyBy::Provider => Cow::Borrowed(req.ctx.provider.as_deref().unwrap_or("default")),
            KeyBy::Caller => {
                Cow::Borrowed(req.ctx.caller.as_ref().map_or("anonymous", |c| c.as_str()))
            }
        })
    }
}

impl<F> KeyExtractor for F
where
    F: Fn(&LlmRequest) -> Option<String> + Send + Sync + 'static,
{
    fn extract<'a>(&self, req: &'a LlmRequest) -> Option<Cow<'a, str>> {
        self(req).map(Cow::Owned)
    }
}
