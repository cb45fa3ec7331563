//! [`HttpRateLimitLayer`].

use std::fmt;
use std::sync::Arc;

use llm_tower_core::{SharedClock, TokioClock};
use llm_tower_layers::rate_limit::{Algorithm, MemoryStore, Mode, RateLimitStore};
use tower::Layer;

use super::service::HttpRateLimit;
use crate::key::{Global, HttpKeyExtractor};

pub(crate) struct Shared<K> {
    pub(crate) name: Arc<str>,
    pub(crate) algorithm: Algorithm,
    pub(crate) mode: Mode,
    pub(crate) key: Arc<K>,
    pub(crate) store: Arc<dyn RateLimitStore>,
    pub(crate) clock: SharedClock,
}

/// Applies a rate limit to HTTP requests. See the [module docs](super).
///
/// A small configuration value: the state is in the store, which every clone of the layer
/// and every service it builds share.
pub struct HttpRateLimitLayer<K = Global> {
    name: Arc<str>,
    algorithm: Algorithm,
    mode: Mode,
    key: Arc<K>,
    store: Arc<dyn RateLimitStore>,
    clock: SharedClock,
}

impl<K> Clone for HttpRateLimitLayer<K> {
    fn clone(&self) -> Self {
        HttpRateLimitLayer {
            name: self.name.clone(),
            algorithm: self.algorithm,
            mode: self.mode,
            key: self.key.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<K> fmt::Debug for HttpRateLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRateLimitLayer")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("mode", &self.mode)
            .field("store", &self.store)
            .finish()
    }
}

impl HttpRateLimitLayer<Global> {
    /// A limit with `algorithm`: one global key, `Reject` mode, an in-memory store on
    /// tokio's clock, named `http`.
    pub fn new(algorithm: Algorithm) -> Self {
        let clock = TokioClock::shared();
        HttpRateLimitLayer {
            name: Arc::from("http"),
            algorithm,
            mode: Mode::Reject,
            key: Arc::new(Global),
            store: Arc::new(MemoryStore::with_clock(clock.clone())),
            clock,
        }
    }
}

impl<K> HttpRateLimitLayer<K> {
    /// Keys requests with `key` (e.g. [`Header`](crate::key::Header)).
    #[must_use]
    pub fn key<K2: HttpKeyExtractor>(self, key: K2) -> HttpRateLimitLayer<K2> {
        HttpRateLimitLayer {
            name: self.name,
            algorithm: self.algorithm,
            mode: self.mode,
            key: Arc::new(key),
            store: self.store,
            clock: self.clock,
        }
    }

    /// Names the limiter: the namespace of its keys in the store, and the `limiter` label
    /// of `llm_tower_rate_limited_total`. Limiters sharing a store need different names.
    #[must_use]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the mode (`Reject` by default).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Keeps the state in `store` (e.g. a Redis store shared by several instances).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.store = store;
        self
    }

    /// Uses `clock` for waits, and a new in-memory store on that clock.
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.store = Arc::new(MemoryStore::with_clock(clock.clone()));
        self.clock = clock;
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl<S, K> Layer<S> for HttpRateLimitLayer<K> {
    type Service = HttpRateLimit<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpRateLimit::new(
            inner,
            Arc::new(Shared {
                name: self.name.clone(),
                algorithm: self.algorithm,
                mode: self.mode,
                key: self.key.clone(),
                store: self.store.clone(),
                clock: self.clock.clone(),
            }),
        )
    }
}
