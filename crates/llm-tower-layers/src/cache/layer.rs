//! [`ResponseCacheLayer`]: the cache's configuration.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use llm_tower_core::{
    CacheDirective, Error, LlmRequest, LlmResponse, RequestBody, ResponseBody, SharedClock,
    TokioClock,
};
use tower::{Layer, Service};

use super::key::CacheKey;
use super::service::ResponseCache;
use super::store::CacheStore;
use crate::builder::BoxLlmService;
use crate::cost::CostTracker;

/// The default time an entry is kept: 10 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// The default largest entry stored: 1 MiB.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 1024 * 1024;

/// Whose requests share entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CacheScope {
    /// Each caller (`RequestContext::caller`) has its own entries; requests without a
    /// caller share one scope. The default: a hit cannot tell one caller what another
    /// one asked.
    #[default]
    Caller,
    /// Every caller shares the entries: more hits, but a caller can learn from a hit
    /// (its speed, the `hit` header) that somebody asked the same question before.
    Global,
}

/// A predicate that keeps requests away from the cache (`true`: bypass), e.g. for the
/// routes configured without cache.
pub type BypassFilter = Arc<dyn Fn(&LlmRequest) -> bool + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn CacheStore>,
    pub(crate) ttl: Duration,
    pub(crate) nondeterministic: bool,
    pub(crate) scope: CacheScope,
    pub(crate) max_entry_bytes: u64,
    pub(crate) tracker: Option<CostTracker>,
    pub(crate) admit: Option<BoxLlmService>,
    pub(crate) bypass: Option<BypassFilter>,
    pub(crate) clock: SharedClock,
}

/// What the cache does with one request.
pub(crate) enum Plan {
    /// Neither looked up nor stored.
    Bypass,
    /// Looked up (unless `no-cache`) and stored (unless `no-store`).
    Use {
        key: CacheKey,
        lookup: bool,
        store: bool,
    },
}

impl Shared {
    pub(crate) fn plan(&self, req: &LlmRequest) -> Plan {
        let d = req
            .extensions
            .get::<CacheDirective>()
            .copied()
            .unwrap_or_default();
        if (d.no_cache && d.no_store)
            || self.bypass.as_ref().is_some_and(|f| f(req))
            || !(self.nondeterministic || deterministic(req))
        {
            return Plan::Bypass;
        }
        let scope = match self.scope {
            CacheScope::Global => None,
            CacheScope::Caller => Some(req.ctx.caller.as_ref().map_or("", |c| c.as_str())),
        };
        Plan::Use {
            key: CacheKey::of(req, scope),
            lookup: !d.no_cache,
            store: !d.no_store,
        }
    }
}

/// `true` when the request asks for a deterministic answer: embeddings, and chat or
/// completions with `temperature: 0`. An unset temperature is the provider's default,
/// 1 for OpenAI and Anthropic: sampled.
fn deterministic(req: &LlmRequest) -> bool {
    let zero = |t: Option<f64>| t.is_some_and(|t| t <= 0.0);
    match &req.body {
        RequestBody::Chat(c) => zero(c.temperature),
        RequestBody::Completion(c) => zero(c.temperature),
        RequestBody::Embeddings(_) => true,
    }
}

/// Answers repeated requests from a [`CacheStore`]. See the [module docs](super).
///
/// # Clone
/// Cheap: the configuration is behind an `Arc`; every service built shares the store.
#[derive(Clone)]
pub struct ResponseCacheLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("ResponseCacheLayer")
            .field("store", &s.store)
            .field("ttl", &s.ttl)
            .field("nondeterministic", &s.nondeterministic)
            .field("scope", &s.scope)
            .field("max_entry_bytes", &s.max_entry_bytes)
            .field("tracker", &s.tracker.is_some())
            .field("admit", &s.admit.is_some())
            .field("bypass", &s.bypass.is_some())
            .finish()
    }
}

impl ResponseCacheLayer {
    /// A cache over `store`: entries kept 10 minutes, at most 1 MiB each, per caller,
    /// deterministic requests only.
    pub fn new(store: impl CacheStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A cache over a shared store.
    pub fn from_arc(store: Arc<dyn CacheStore>) -> Self {
        ResponseCacheLayer {
            shared: Arc::new(Shared {
                store,
                ttl: DEFAULT_TTL,
                nondeterministic: false,
                scope: CacheScope::Caller,
                max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
                tracker: None,
                admit: None,
                bypass: None,
                clock: TokioClock::shared(),
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// How long entries are kept (default 10 minutes).
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        self.with(|s| s.ttl = ttl)
    }

    /// Also caches sampled requests (a temperature above 0, or unset): the same question
    /// then always gets the first answer. Off by default.
    #[must_use]
    pub fn cache_nondeterministic(self, on: bool) -> Self {
        self.with(|s| s.nondeterministic = on)
    }

    /// Whose requests share entries (default [`CacheScope::Caller`]).
    #[must_use]
    pub fn scope(self, scope: CacheScope) -> Self {
        self.with(|s| s.scope = scope)
    }

    /// Stores no entry above `n` bytes, encoded (default 1 MiB). A streamed answer stops
    /// being collected once it passes the bound.
    #[must_use]
    pub fn max_entry_bytes(self, n: u64) -> Self {
        self.with(|s| s.max_entry_bytes = n)
    }

    /// Records every hit in `tracker`'s analytics (a request and a cache hit, no tokens,
    /// no cost). Without it hits appear in no analytics: the cost layer never sees them.
    #[must_use]
    pub fn tracker(self, tracker: CostTracker) -> Self {
        self.with(|s| s.tracker = Some(tracker))
    }

    /// Sends every hit through `admit` before answering it, with a token estimate of 0:
    /// give it the caller's rate limits over [`HitAdmission`], so a hit counts as a
    /// request but spends no token quota. An error from `admit` (`RateLimited`) is the
    /// request's error. The request `admit` sees carries the context, the extensions and
    /// the model, not the messages.
    #[must_use]
    pub fn admit_hits(self, admit: BoxLlmService) -> Self {
        self.with(|s| s.admit = Some(admit))
    }

    /// Keeps the requests for which `bypass` is `true` away from the cache (neither
    /// looked up nor stored), e.g. the routes configured without cache. A request
    /// carrying [`CacheDirective::BYPASS`] is kept away too.
    #[must_use]
    pub fn bypass_if(self, bypass: impl Fn(&LlmRequest) -> bool + Send + Sync + 'static) -> Self {
        self.with(|s| s.bypass = Some(Arc::new(bypass)))
    }

    /// Reads time (latency of hits) through `clock`.
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.with(|s| s.clock = clock)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.shared.store
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> ResponseCache<S> {
        ResponseCache::new(inner, self.shared.clone())
    }
}

/// The end of an admission stack ([`ResponseCacheLayer::admit_hits`]): answers every
/// request at once with an empty response, which the cache replaces with the hit.
#[derive(Debug, Clone, Copy, Default)]
pub struct HitAdmission;

impl Service<LlmRequest> for HitAdmission {
    type Response = LlmResponse;
    type Error = Error;
    type Future = std::future::Ready<Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: LlmRequest) -> Self::Future {
        std::future::ready(Ok(LlmResponse::new(ResponseBody::Stream(Box::pin(
            futures_util::stream::empty(),
        )))))
    }
}
