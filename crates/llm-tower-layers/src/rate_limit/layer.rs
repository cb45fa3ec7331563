//! [`RateLimitLayer`]: configuration shared by every service it builds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use llm_tower_core::{Error, SharedClock, TokioClock};
use tower::Layer;

use super::algorithm::Algorithm;
use super::key::{KeyBy, KeyExtractor};
use super::memory::MemoryStore;
use super::service::RateLimit;
use super::store::RateLimitStore;

/// What a request weighs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Every request weighs 1.
    #[default]
    Requests,
    /// A request weighs its token estimate: prompt tokens plus `max_tokens` (or the
    /// limiter's default output bound). Needs the token-count layer outside this one.
    Tokens,
}

/// What happens when the limit is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Fail at once with `RateLimited` and the exact retry-after.
    #[default]
    Reject,
    /// Wait for a slot, first come first served per key; reject at once when the wait
    /// would pass `max_wait` or the request's deadline.
    Wait {
        /// The longest wait accepted.
        max_wait: Duration,
    },
}

pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) algorithm: Algorithm,
    /// [`Algorithm::validate`]'s verdict, checked once here instead of per request.
    pub(crate) invalid: Option<Error>,
    pub(crate) unit: Unit,
    pub(crate) mode: Mode,
    pub(crate) key: Arc<dyn KeyExtractor>,
    pub(crate) key_desc: String,
    pub(crate) store: Arc<dyn RateLimitStore>,
    /// `true` once the user chose a store (then `clock` leaves it alone).
    pub(crate) custom_store: bool,
    pub(crate) clock: SharedClock,
    pub(crate) default_output_tokens: u32,
}

/// Applies a rate limit to the services it wraps.
///
/// The state lives in the store, which every service built by this layer, and every
/// clone of those services, shares.
#[derive(Clone)]
pub struct RateLimitLayer {
    pub(crate) shared: Arc<Shared>,
}

impl RateLimitLayer {
    /// A limiter with `algorithm`, by requests, global key, `Reject` mode, in memory.
    pub fn new(algorithm: Algorithm) -> Self {
        let clock = TokioClock::shared();
        RateLimitLayer {
            shared: Arc::new(Shared {
                name: Arc::from("rate_limit"),
                algorithm,
                invalid: algorithm.validate().err(),
                unit: Unit::Requests,
                mode: Mode::Reject,
                key: Arc::new(KeyBy::Global),
                key_desc: format!("{:?}", KeyBy::Global),
                store: Arc::new(MemoryStore::with_clock(clock.clone())),
                custom_store: false,
                clock,
                default_output_tokens: 1024,
            }),
        }
    }

    fn map(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut s = match Arc::try_unwrap(self.shared) {
            Ok(s) => s,
            Err(arc) => Shared {
                name: arc.name.clone(),
                algorithm: arc.algorithm,
                invalid: arc.invalid.clone(),
                unit: arc.unit,
                mode: arc.mode,
                key: arc.key.clone(),
                key_desc: arc.key_desc.clone(),
                store: arc.store.clone(),
                custom_store: arc.custom_store,
                clock: arc.clock.clone(),
                default_output_tokens: arc.default_output_tokens,
            },
        };
        f(&mut s);
        RateLimitLayer {
            shared: Arc::new(s),
        }
    }

    /// Names the limiter (metrics label, log field, and the namespace of its keys in the
    /// store). Two limiters sharing a store must have different names.
    #[must_use]
    pub fn name(self, name: impl Into<Arc<str>>) -> Self {
        let name = name.into();
        self.map(|s| s.name = name)
    }

    /// Weighs requests by their token estimate.
    #[must_use]
    pub fn by_tokens(self) -> Self {
        self.unit(Unit::Tokens)
    }

    /// Sets the unit.
    #[must_use]
    pub fn unit(self, unit: Unit) -> Self {
        self.map(|s| s.unit = unit)
    }

    /// Sets the mode.
    #[must_use]
    pub fn mode(self, mode: Mode) -> Self {
        self.map(|s| s.mode = mode)
    }

    /// Keys requests with a built-in key.
    #[must_use]
    pub fn key(self, key: KeyBy) -> Self {
        self.map(|s| {
            s.key = Arc::new(key);
            s.key_desc = format!("{key:?}");
        })
    }

    /// Keys requests with your own extractor.
    #[must_use]
    pub fn key_with(self, key: impl KeyExtractor) -> Self {
        self.map(|s| {
            s.key = Arc::new(key);
            s.key_desc = "custom".to_owned();
        })
    }

    /// Keeps state in `store` (for example a Redis store shared by several instances).
    #[must_use]
    pub fn store(self, store: Arc<dyn RateLimitStore>) -> Self {
        self.map(|s| {
            s.store = store;
            s.custom_store = true;
        })
    }

    /// Uses `clock` for waiting and deadlines; the default in-memory store follows it too
    /// (a store set with [`RateLimitLayer::store`] keeps its own time).
    #[must_use]
    pub fn clock(self, clock: SharedClock) -> Self {
        self.map(|s| {
            if !s.custom_store {
                s.store = Arc::new(MemoryStore::with_clock(clock.clone()));
            }
            s.clock = clock;
        })
    }

    /// The output bound used for token weights when a request sets no `max_tokens`.
    #[must_use]
    pub fn default_output_tokens(self, n: u32) -> Self {
        self.map(|s| s.default_output_tokens = n)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.shared.algorithm
    }
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("RateLimitLayer")
            .field("name", &s.name)
            .field("algorithm", &s.algorithm)
            .field("unit", &s.unit)
            .field("mode", &s.mode)
            .field("key", &s.key_desc)
            .field("store", &s.store)
            .finish()
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.shared.clone())
    }
}
