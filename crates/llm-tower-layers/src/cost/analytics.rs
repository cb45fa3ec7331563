//! Totals of requests, tokens, cost and errors per model, provider and caller.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dashmap::DashMap;
use llm_tower_core::Money;
use serde::Serialize;

/// Totals for one model, provider or caller (or everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Requests settled.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Spend.
    pub cost: Money,
    /// Requests answered by the response cache (counted in `requests` too, with no
    /// tokens and no cost: nothing was spent on them).
    pub cache_hits: u64,
}

#[derive(Default)]
struct Cell {
    requests: AtomicU64,
    errors: AtomicU64,
    prompt: AtomicU64,
    completion: AtomicU64,
    cost: AtomicI64,
    cache_hits: AtomicU64,
}

/// Adds `n` to a counter, stopping at `u64::MAX` instead of wrapping.
fn saturating_add_u64(a: &AtomicU64, n: u64) {
    if n == 0 {
        return;
    }
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_add(n))
    });
}

impl Cell {
    fn add(&self, r: &Record) {
        saturating_add_u64(&self.requests, 1);
        if r.cache_hit {
            saturating_add_u64(&self.cache_hits, 1);
        }
        if r.error {
            saturating_add_u64(&self.errors, 1);
        }
        saturating_add_u64(&self.prompt, r.prompt_tokens);
        saturating_add_u64(&self.completion, r.completion_tokens);
        let cost = r.cost.as_nanos();
        if cost != 0 {
            let _ = self
                .cost
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_add(cost))
                });
        }
    }

    fn totals(&self) -> Totals {
        Totals {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            prompt_tokens: self.prompt.load(Ordering::Relaxed),
            completion_tokens: self.completion.load(Ordering::Relaxed),
            cost: Money::from_nanos(self.cost.load(Ordering::Relaxed)),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct Record<'a> {
    pub model: &'a str,
    pub provider: Option<&'a str>,
    pub caller: Option<&'a str>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Money,
    pub error: bool,
    pub cache_hit: bool,
}

/// A point-in-time copy of the analytics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnalyticsSnapshot {
    /// Everything.
    pub total: Totals,
    /// Per model.
    pub by_model: BTreeMap<String, Totals>,
    /// Per provider.
    pub by_provider: BTreeMap<String, Totals>,
    /// Per caller key.
    pub by_caller: BTreeMap<String, Totals>,
}

#[derive(Default)]
pub(crate) struct Analytics {
    total: Cell,
    by_model: DashMap<String, Arc<Cell>>,
    by_provider: DashMap<String, Arc<Cell>>,
    by_caller: DashMap<String, Arc<Cell>>,
}

fn cell(map: &DashMap<String, Arc<Cell>>, key: &str) -> Arc<Cell> {
    if let Some(c) = map.get(key) {
        return c.clone();
    }
    map.entry(key.to_owned()).or_default().clone()
}

impl Analytics {
    pub(crate) fn record(&self, r: &Record<'_>) {
        self.total.add(r);
        cell(&self.by_model, r.model).add(r);
        if let Some(p) = r.provider {
            cell(&self.by_provider, p).add(r);
        }
        if let Some(c) = r.caller {
            cell(&self.by_caller, c).add(r);
        }
    }

    pub(crate) fn snapshot(&self) -> AnalyticsSnapshot {
        let collect = |m: &DashMap<String, Arc<Cell>>| {
            m.iter()
                .map(|e| (e.key().clone(), e.value().totals()))
                .collect()
        };
        AnalyticsSnapshot {
            total: self.total.totals(),
            by_model: collect(&self.by_model),
            by_provider: collect(&self.by_provider),
            by_caller: collect(&self.by_caller),
        }
    }
}
