//! Stored responses: what `previous_response_id` and `GET /v1/responses/{id}` read.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use llm_tower_core::Error;
use serde_json::Value;
use tokio::time::Instant;

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The caller that created it (a gateway key's name); only the same caller may read it.
    /// `None` when the gateway has no keys.
    pub caller: Option<String>,
    /// The conversation up to this response, as Responses input items: the items of the
    /// previous responses it continued, then its own input.
    pub input: Vec<Value>,
    /// Its instructions (not carried over to a continuation, as with OpenAI).
    pub instructions: Option<String>,
    /// Its output items.
    pub output: Vec<Value>,
    /// The response object, as `POST /v1/responses` answered it.
    pub response: Value,
}

impl StoredResponse {
    /// The conversation a continuation starts from: the input items, then the output.
    pub fn conversation(&self) -> impl Iterator<Item = &Value> {
        self.input.iter().chain(self.output.iter())
    }
}

/// Where responses are kept between requests.
pub trait ResponseStore: Send + Sync + 'static {
    /// The response stored under `id`, if it is still there.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Arc<StoredResponse>>, Error>>;

    /// Stores `response` under `id`.
    fn put(&self, id: String, response: StoredResponse) -> BoxFuture<'_, Result<(), Error>>;
}

/// A bounded in-memory store: at most `max_entries` responses, each kept for `ttl`; the
/// oldest goes first when it is full. Per gateway instance (not shared between several).
pub struct MemoryResponseStore {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, (Instant, Arc<StoredResponse>)>,
    /// Ids in the order they were stored (all with the same TTL: also expiry order).
    order: VecDeque<(Instant, String)>,
}

impl fmt::Debug for MemoryResponseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryResponseStore")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

impl Default for MemoryResponseStore {
    /// 10,000 responses for one hour.
    fn default() -> Self {
        MemoryResponseStore::new(10_000, Duration::from_secs(3600))
    }
}

impl MemoryResponseStore {
    /// A store of at most `max_entries` (at least one) responses, each kept for `ttl`.
    pub fn new(max_entries: usize, ttl: Duration) -> Self {
        MemoryResponseStore {
            ttl,
            max_entries: max_entries.max(1),
            inner: Mutex::new(Entries::default()),
        }
    }

    /// How many responses are held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|e| e.map.len()).unwrap_or(0)
    }

    /// `true` when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, Error> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("the response store is poisoned"))
    }

    fn get_now(&self, id: &str) -> Result<Option<Arc<StoredResponse>>, Error> {
        let now = Instant::now();
        let entries = self.lock()?;
        Ok(entries
            .map
            .get(id)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, r)| r.clone()))
    }

    fn put_now(&self, id: String, response: StoredResponse) -> Result<(), Error> {
        let now = Instant::now();
        let expires = now.checked_add(self.ttl).unwrap_or(now);
        let mut entries = self.lock()?;
        let Entries { map, order } = &mut *entries;
        // Drop the expired, then the oldest while full.
        while let Some(at) = order.front().map(|(at, _)| *at) {
            if at > now && map.len() < self.max_entries {
                break;
            }
            if let Some((_, old)) = order.pop_front() {
                // Only if the entry is still the one this slot recorded.
                if map.get(&old).is_some_and(|(e, _)| *e <= at) {
                    map.remove(&old);
                }
            }
        }
        map.insert(id.clone(), (expires, Arc::new(response)));
        order.push_back((expires, id));
        Ok(())
    }
}

impl ResponseStore for MemoryResponseStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Arc<StoredResponse>>, Error>> {
        let r = self.get_now(id);
        Box::pin(async move { r })
    }

    fn put(&self, id: String, response: StoredResponse) -> BoxFuture<'_, Result<(), Error>> {
        let r = self.put_now(id, response);
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stored(n: u64) -> StoredResponse {
        StoredResponse {
            caller: None,
            input: vec![Value::from(n)],
            instructions: None,
            output: Vec::new(),
            response: Value::Null,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_and_expiring() {
        let s = MemoryResponseStore::new(2, Duration::from_secs(10));
        s.put("a".into(), stored(1)).await.unwrap();
        s.put("b".into(), stored(2)).await.unwrap();
        s.put("c".into(), stored(3)).await.unwrap();
        assert!(s.get("a").await.unwrap().is_none(), "the oldest went");
        assert_eq!(s.get("c").await.unwrap().unwrap().input[0], 3);
        assert_eq!(s.len(), 2);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(s.get("b").await.unwrap().is_none(), "expired");
        s.put("d".into(), stored(4)).await.unwrap();
        assert_eq!(s.len(), 1, "expired entries are dropped on put");
    }
}
