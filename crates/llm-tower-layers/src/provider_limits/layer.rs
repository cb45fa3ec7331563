//! [`AdaptiveLimitLayer`]: configuration and the state every service it builds shares.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dashmap::DashMap;
use llm_tower_core::{LlmRequest, SharedClock, TokioClock};
use tokio::sync::Notify;
use tower::Layer;

use super::service::AdaptiveLimit;
use super::state::Entry;
use super::store::{AdaptiveLimitStore, MemoryAdaptiveStore};
use crate::rate_limit::KeyExtractor;

/// The longest wait of [`AdaptiveMode::default`].
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// What a request does when the provider's limit is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdaptiveMode {
    /// Wait until the provider's reset, unless that is more than `max_wait` away or at or
    /// past the request's deadline: then fail at once.
    Wait {
        /// The longest wait accepted.
        max_wait: Duration,
    },
    /// Fail at once with a retryable `RateLimited` error (origin: provider) and the
    /// retry-after, so a router tries its next target.
    Reject,
}

impl Default for AdaptiveMode {
    /// `Wait` for at most [`DEFAULT_MAX_WAIT`].
    fn default() -> Self {
        AdaptiveMode::Wait {
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// The state of one target key: the count-down, and a notification for requests waiting
/// on an answer.
#[derive(Debug, Default)]
pub(crate) struct KeyState {
    entry: Mutex<Entry>,
    pub(crate) answered: Notify,
}

impl KeyState {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Entry> {
        self.entry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which key a request's target is tracked under.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// `{provider}/{model}` from the request (provider from `RequestContext::provider`).
    ProviderModel,
    /// One key for everything this layer wraps (one target), state resolved once.
    Fixed(Arc<str>, Arc<KeyState>),
    /// The user's extractor.
    Custom(Arc<dyn KeyExtractor>),
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) mode: AdaptiveMode,
    pub(crate) clock: SharedClock,
    pub(crate) store: Arc<dyn AdaptiveLimitStore>,
    /// `true` once the user chose a store (then `clock` leaves it alone).
    custom_store: bool,
    pub(crate) key: KeySource,
    pub(crate) default_output_tokens: u32,
    keys: Arc<DashMap<Box<str>, Arc<KeyState>>>,
}

impl Shared {
    /// The key of `req` and its state; `None` when the request is not tracked. A fixed
    /// key is borrowed (no allocation, no reference count on the hot path).
    pub(crate) fn key_state(
        &self,
        req: &LlmRequest,
    ) -> Option<(Cow<'_, str>, Cow<'_, Arc<KeyState>>)> {
        let key: String = match &self.key {
            KeySource::Fixed(k, s) => return Some((Cow::Borrowed(k), Cow::Borrowed(s))),
            KeySource::ProviderModel => match req.ctx.provider.as_deref() {
                Some(p)
                    if !req
                        .model()
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('/')) =>
                {
                    format!("{p}/{}", req.model())
                }
                _ => req.model().to_owned(),
            },
            KeySource::Custom(k) => k.extract(req)?.into_owned(),
        };
        let state = match self.keys.get(key.as_str()) {
            Some(s) => s.clone(),
            None => self.keys.entry(key.as_str().into()).or_default().clone(),
        };
        Some((Cow::Owned(key), Cow::Owned(state)))
    }
}

/// Holds requests back while the provider's own rate limit is exhausted; see the
/// [module docs](super).
///
/// # Clone
/// Every service this layer builds, and every clone of them, share one state per target
/// key (and the store).
#[derive(Clone)]
pub struct AdaptiveLimitLayer {
    pub(crate) shared: Arc<Shared>,
}

impl AdaptiveLimitLayer {
    /// `Wait` mode (30 s at most), keyed by `{provider}/{model}`, in memory, on tokio's
    /// clock.
    pub fn new() -> Self {
        let clock = TokioClock::shared();
        AdaptiveLimitLayer {
            shared: Arc::new(Shared {
                mode: AdaptiveMode::default(),
                store: Arc::new(MemoryAdaptiveStore::with_clock(clock.clone())),
                custom_store: false,
                clock,
                key: KeySource::ProviderModel,
                default_output_tokens: 0,
                keys: Arc::new(DashMap::new()),
            }),
        }
    }

    fn map(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Sets the mode.
    #[must_use]
    pub fn mode(self, mode: AdaptiveMode) -> Self {
        self.map(|s| s.mode = mode)
    }

    /// Tracks everything this layer wraps under one key: the layer sits in front of one
    /// target (one provider account and model), as the config builds it. The key names
    /// the target in the store and in metrics, so it must be the same on every instance
    /// that shares a store (for example `openai-eu/gpt-4o`).
    #[must_use]
    pub fn key(self, key: impl Into<Arc<str>>) -> Self {
        let key = key.into();
        self.map(|s| s.key = KeySource::Fixed(key, Arc::default()))
    }

    /// Tracks requests under the key your extractor returns (`None`: not tracked).
    #[must_use]
    pub fn key_with(self, key: impl KeyExtractor) -> Self {
        self.map(|s| s.key = KeySource::Custom(Arc::new(key)))
    }

    /// Keeps the blocks in `store` (for example Redis, shared by several instances).
    #[must_use]
    pub fn store(self, store: Arc<dyn AdaptiveLimitStore>) -> Self {
        self.map(|s| {
            s.store = store;
            s.custom_store = true;
        })
    }

    /// Uses `clock` for time and waiting; the default in-memory store follows it too (a
    /// store set with [`AdaptiveLimitLayer::store`] keeps its own time).
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.map(|s| {
            if !s.custom_store {
                s.store = Arc::new(MemoryAdaptiveStore::with_clock(clock.clone()));
            }
            s.clock = clock;
        })
    }

    /// The output tokens a request without `max_tokens` is counted with against the
    /// provider's token limits (default 0: only the prompt).
    #[must_use]
    pub fn default_output_tokens(self, n: u32) -> Self {
        self.map(|s| s.default_output_tokens = n)
    }

    /// The mode.
    pub fn get_mode(&self) -> AdaptiveMode {
        self.shared.mode
    }
}

impl Default for AdaptiveLimitLayer {
    fn default() -> Self {
        AdaptiveLimitLayer::new()
    }
}

impl fmt::Debug for AdaptiveLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        let key = match &s.key {
            KeySource::ProviderModel => "provider/model",
            KeySource::Fixed(k, _) => k,
            KeySource::Custom(_) => "custom",
        };
        f.debug_struct("AdaptiveLimitLayer")
            .field("mode", &s.mode)
            .field("key", &key)
            .field("store", &s.store)
            .finish()
    }
}

impl<S> Layer<S> for AdaptiveLimitLayer {
    type Service = AdaptiveLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit::new(inner, self.shared.clone())
    }
}
