//! An exact-match response cache: a repeated request is answered from a [`CacheStore`]
//! without calling the provider, streams included.
//!
//! ```
//! use std::time::Duration;
//! use llm_tower_layers::builder::ServiceBuilderExt;
//! use llm_tower_layers::cache::{MemoryCacheStore, ResponseCacheLayer};
//! # use llm_tower_core::{Error, LlmRequest, LlmResponse};
//!
//! # fn main() {
//! # let provider = tower::service_fn(|_r: LlmRequest| async { Err::<LlmResponse, _>(Error::internal("demo")) });
//! let store = MemoryCacheStore::builder().max_entries(10_000).max_bytes(64 << 20).build();
//! let stack = tower::ServiceBuilder::new()
//!     .llm_trace()
//!     .count_tokens()
//!     .llm_cache(ResponseCacheLayer::new(store).ttl(Duration::from_secs(600)))
//!     .service(provider);
//! # let _ = stack;
//! # }
//! ```
//!
//! # What is cached
//! Chat completions, legacy completions and embeddings whose answer is deterministic:
//! embeddings always, chat and completions only with `temperature: 0`. An unset
//! temperature is the provider's default (1 for OpenAI and Anthropic), so it is sampled
//! and not cached, like any temperature above 0, unless the layer is built with
//! [`cache_nondeterministic(true)`](ResponseCacheLayer::cache_nondeterministic) (then the
//! same question always gets the first answer until the entry expires).
//!
//! The key is the SHA-256 of the normalised request ([`CacheKey`]): the model as
//! requested, the messages, tools and sampling fields, and every provider-specific field,
//! but not `stream`, `user` or `metadata`, so a streamed request is served from a stored
//! whole answer and the other way round. Entries are per caller unless the scope is
//! [`CacheScope::Global`].
//!
//! Only whole, successful answers are stored: not errors, not a stream that failed, was
//! dropped or ended without a finish reason for every choice, not entries above
//! [`max_entry_bytes`](ResponseCacheLayer::max_entry_bytes), and not a provider's native
//! Responses API objects.
//!
//! # Hits
//! A hit is the stored response with its usage, `cost` zero, and
//! [`ResponseMeta::cache`](llm_tower_core::ResponseMeta::cache) =
//! [`CacheStatus::Hit`](llm_tower_core::CacheStatus); a streamed request gets it replayed
//! as chunks (`llm_tower_core::response_chunks`). Misses are marked `Miss`, requests the
//! cache does not consider `Bypass`.
//!
//! # Client directives
//! A [`CacheDirective`](llm_tower_core::CacheDirective) in the request's extensions (the
//! gateway sets it from `Cache-Control`): `no_cache` skips the lookup but stores the new
//! answer; `no_store` with `no_cache` keeps the request away from the cache.
//! [`bypass_if`](ResponseCacheLayer::bypass_if) does the same for requests a predicate
//! picks (a route configured without cache).
//!
//! # Where it goes
//! ```text
//! trace -> count_tokens -> cache -> rate_limit (per caller) -> route/router
//!       -> [per target] track_cost -> retry -> rate_limit (provider) -> timeout -> provider
//! ```
//! Outside the cost layer, so a hit reserves and spends nothing against budgets; outside
//! the caller's rate limits, so a hit spends no token quota; inside `count_tokens`, so
//! every request has its estimate and a replayed stream is counted like any other. A hit
//! still counts as a request for the caller's request limits when the layer is given
//! those limits with [`admit_hits`](ResponseCacheLayer::admit_hits) (over
//! [`HitAdmission`]): the hit then goes through them with a token estimate of 0. With
//! [`tracker`](ResponseCacheLayer::tracker) a hit is recorded in the cost tracker's
//! analytics as a request and a cache hit, with no tokens and no cost. The JSON config
//! builds it so.
//!
//! # Errors
//! Whatever the inner service returns, and the admission stack's errors (`RateLimited`)
//! for a hit. A failing store never fails a request: a lookup that fails is a miss, a
//! store that fails is logged (`llm_tower_cache_errors_total`).
//!
//! # Metrics
//! `llm_tower_cache_requests_total{result = hit|miss|bypass}`,
//! `llm_tower_cache_stores_total{result = stored|too_large|incomplete|unsupported|error}`,
//! `llm_tower_cache_stored_bytes_total`, `llm_tower_cache_errors_total{op = get|put}`;
//! the memory store adds `llm_tower_cache_entries`, `llm_tower_cache_bytes` and
//! `llm_tower_cache_evictions_total{cause}`.
//!
//! # Clone
//! The configuration and the store are behind `Arc`s made by the layer: every service it
//! builds and every clone share one cache.

mod entry;
mod key;
mod layer;
mod memory;
mod service;
mod store;
mod stream;
#[cfg(test)]
mod tests;

pub use key::CacheKey;
pub use layer::{
    BypassFilter, CacheScope, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_TTL, HitAdmission,
    ResponseCacheLayer,
};
pub use memory::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, MemoryCacheStore, MemoryCacheStoreBuilder,
};
pub use service::ResponseCache;
pub use store::CacheStore;
pub use stream::CacheStream;
