//! [`CacheDirective`] and [`CacheStatus`]: what a client asks of a response cache, and
//! what the cache did.

/// A client's instructions to a response cache, kept in
/// [`LlmRequest::extensions`](crate::LlmRequest::extensions).
///
/// The gateway fills it from the request's `Cache-Control` header (`no-cache`,
/// `max-age=0`, `no-store`); Rust callers insert it themselves. A request without one is
/// looked up and stored as usual.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CacheDirective {
    /// Do not answer from the cache (the answer may still be stored): `no-cache`.
    pub no_cache: bool,
    /// Neither answer from the cache nor store the answer: `no-store`.
    pub no_store: bool,
}

impl CacheDirective {
    /// A directive that keeps the request away from the cache entirely (neither looked up
    /// nor stored), e.g. for a route configured without cache.
    pub const BYPASS: CacheDirective = CacheDirective {
        no_cache: true,
        no_store: true,
    };

    /// The directive of `Cache-Control` header values: `no-cache` and `max-age=0` set
    /// [`no_cache`](Self::no_cache), `no-store` sets both flags (a response that may not
    /// be stored is not looked up either). Names are case-insensitive; other directives
    /// are ignored. `None` when nothing applies.
    pub fn from_cache_control<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut d = CacheDirective::default();
        for value in values {
            for directive in value.split(',').map(str::trim) {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                if name.eq_ignore_ascii_case("no-cache") {
                    d.no_cache = true;
                } else if name.eq_ignore_ascii_case("no-store") {
                    d.no_cache = true;
                    d.no_store = true;
                } else if name.eq_ignore_ascii_case("max-age") && arg == Some("0") {
                    d.no_cache = true;
                }
            }
        }
        (d != CacheDirective::default()).then_some(d)
    }
}

/// What a response cache did with a request ([`ResponseMeta::cache`](crate::ResponseMeta::cache)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Answered from the cache: no provider was called, nothing was spent.
    Hit,
    /// Not in the cache (or the client said `no-cache`): the provider answered, and the
    /// answer was stored when it could be.
    Miss,
    /// Not cacheable (sampled with a temperature above 0 without opting in, `no-store`,
    /// a route without cache): neither looked up nor stored.
    Bypass,
}

impl CacheStatus {
    /// `hit`, `miss` or `bypass` (the gateway's `x-llm-tower-cache` header, metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_directives_are_parsed() {
        assert_eq!(CacheDirective::from_cache_control(["max-age=60"]), None);
        assert_eq!(CacheDirective::from_cache_control([]), None);
        let no_cache = CacheDirective {
            no_cache: true,
            no_store: false,
        };
        assert_eq!(
            CacheDirective::from_cache_control(["No-Cache"]),
            Some(no_cache)
        );
        assert_eq!(
            CacheDirective::from_cache_control(["private, max-age=0"]),
            Some(no_cache)
        );
        assert_eq!(
            CacheDirective::from_cache_control(["max-age=0", "no-store"]),
            Some(CacheDirective::BYPASS)
        );
    }
}
