//! The `cache` section: validation into a [`CacheSpec`].

use std::time::Duration;

use llm_tower_layers::cache::{
    CacheScope, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_ENTRY_BYTES, DEFAULT_TTL,
};

use crate::duration::parse_duration;
use crate::error::{Problems, join};
use crate::raw::{RawCacheScope, RawConfig, RawStoreKind};

/// Where the cache keeps its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheStoreSpec {
    Memory {
        max_bytes: u64,
        max_entries: u64,
    },
    /// The Redis of the config's `store`.
    Redis,
}

/// The validated `cache` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheSpec {
    pub(crate) store: CacheStoreSpec,
    pub(crate) ttl: Duration,
    pub(crate) max_entry_bytes: u64,
    pub(crate) nondeterministic: bool,
    pub(crate) scope: CacheScope,
}

/// Most bytes an entry may be: what the memory store's weigher and Redis's strings take.
const MAX_ENTRY_BYTES: u64 = 512 * 1024 * 1024;

/// Validates `cache`; `None` when there is none or it is disabled (or has problems,
/// which go to `p` with their JSON paths).
pub(crate) fn cache(p: &mut Problems, raw: &RawConfig) -> Option<CacheSpec> {
    let c = raw.cache.as_ref()?;
    let path = |field: &str| join("cache", field);
    let before = p.list.len();
    let ttl = match &c.ttl {
        None => DEFAULT_TTL,
        Some(s) => match parse_duration(s) {
            Ok(d) if d.is_zero() => {
                p.push(path("ttl"), "must be > 0");
                DEFAULT_TTL
            }
            Ok(d) => d,
            Err(e) => {
                p.push(path("ttl"), e);
                DEFAULT_TTL
            }
        },
    };
    for (field, value) in [
        ("max_bytes", c.max_bytes),
        ("max_entries", c.max_entries),
        ("max_entry_bytes", c.max_entry_bytes),
    ] {
        if value == Some(0) {
            p.push(path(field), "must be > 0");
        }
    }
    let max_entry_bytes = c.max_entry_bytes.unwrap_or(DEFAULT_MAX_ENTRY_BYTES);
    if max_entry_bytes > MAX_ENTRY_BYTES {
        p.push(
            path("max_entry_bytes"),
            format!("must be at most {MAX_ENTRY_BYTES} (512 MiB)"),
        );
    }
    let kind = c.store.unwrap_or_default();
    let store = match kind {
        RawStoreKind::Memory => {
            let max_bytes = c.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
            if c.max_bytes.is_some_and(|b| b < max_entry_bytes) && c.max_bytes != Some(0) {
                p.push(
                    path("max_bytes"),
                    format!("must be at least max_entry_bytes ({max_entry_bytes})"),
                );
            }
            CacheStoreSpec::Memory {
                max_bytes,
                max_entries: c.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES),
            }
        }
        RawStoreKind::Redis => {
            let redis_store = raw
                .store
                .as_ref()
                .is_some_and(|s| s.kind == RawStoreKind::Redis);
            if !redis_store {
                p.push(
                    path("store"),
                    "\"redis\" keeps entries in the Redis of `store`: set `store.type` to \"redis\" (or use \"memory\")",
                );
            }
            for (field, present) in [
                ("max_bytes", c.max_bytes.is_some()),
                ("max_entries", c.max_entries.is_some()),
            ] {
                if present {
                    p.push(
                        path(field),
                        "only for store memory (Redis evicts by its own maxmemory policy)",
                    );
                }
            }
            CacheStoreSpec::Redis
        }
    };
    if p.list.len() > before || !c.enabled.unwrap_or(true) {
        return None;
    }
    Some(CacheSpec {
        store,
        ttl,
        max_entry_bytes,
        nondeterministic: c.nondeterministic.unwrap_or(false),
        scope: match c.scope.unwrap_or_default() {
            RawCacheScope::Caller => CacheScope::Caller,
            RawCacheScope::Global => CacheScope::Global,
        },
    })
}
