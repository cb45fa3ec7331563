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
    /// The earlier turns it continues (`previous_response_id`), oldest first: each turn's
    /// input items then its output items. Shared with the responses they came from, so a
    /// long chain does not copy its history into every entry.
    pub history: Vec<Arc<[Value]>>,
    /// Its own input items.
    pub input: Vec<Value>,
    /// Its instructions (not carried over to a continuation, as with OpenAI).
    pub instructions: Option<String>,
    /// Its output items.
    pub output: Vec<Value>,
    /// The response object, as `POST /v1/responses` answered it.
    pub response: Value,
    /// About how many bytes it keeps alive: its whole conversation (earlier turns
    /// included) and the response object. What [`MemoryResponseStore`] bounds.
    pub size: usize,
}

impl StoredResponse {
    /// The conversation a continuation starts from: the earlier turns, the input items,
    /// then the output.
    pub fn conversation(&self) -> impl Iterator<Item = &Value> {
        self.history
            .iter()
            .flat_map(|t| t.iter())
            .chain(self.input.iter())
            .chain(self.output.iter())
    }

    /// The history of a continuation of this response: its history and its own turn.
    pub fn continued_history(&self) -> Vec<Arc<[Value]>> {
        let mut h = self.history.clone();
        let turn: Vec<Value> = self
            .input
            .iter()
            .chain(self.output.iter())
            .cloned()
            .collect();
        h.push(Arc::from(turn));
        h
    }
}

/// Where responses are kept between requests.
pub trait ResponseStore: Send + Sync + 'static {
    /// The response stored under `id`, if it is still there.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Arc<StoredResponse>>, Error>>;

    /// Stores `response` under `id`.
    fn put(&self, id: String, response: StoredResponse) -> BoxFuture<'_, Result<(), Error>>;
}

/// A bounded in-memory store: at most `max_entries` responses and about `max_bytes` (by
/// [`StoredResponse::size`]), each kept for `ttl`; the oldest go first when it is full.
/// Per gateway instance (not shared between several).
pub struct MemoryResponseStore {
    ttl: Duration,
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, (Instant, Arc<StoredResponse>)>,
    bytes: usize,
    /// Ids in the order they were stored (all with the same TTL: also expiry order).
    order: VecDeque<(Instant, String)>,
}

impl fmt::Debug for MemoryResponseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryResponseStore")
            .field("ttl", &self.ttl)
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl Default for MemoryResponseStore {
    /// 10,000 responses (256 MiB at most) for one hour.
    fn default() -> Self {
        MemoryResponseStore::new(10_000, Duration::from_secs(3600))
    }
}

impl MemoryResponseStore {
    /// The default bound on bytes: 256 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 256 << 20;

    /// A store of at most `max_entries` (at least one) responses and
    /// [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES), each kept for `ttl`.
    pub fn new(max_entries: usize, ttl: Duration) -> Self {
        MemoryResponseStore {
            ttl,
            max_entries: max_entries.max(1),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            inner: Mutex::new(Entries::default()),
        }
    }

    /// Bounds the bytes held (by [`StoredResponse::size`]); a response larger than this
    /// is not stored.
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
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
        let size = response.size;
        if size > self.max_bytes {
            return Err(Error::invalid_request(format!(
                "the response is too large to store ({size} bytes, at most {})",
                self.max_bytes
            )));
        }
        let now = Instant::now();
        let expires = now.checked_add(self.ttl).unwrap_or(now);
        let mut entries = self.lock()?;
        let Entries { map, bytes, order } = &mut *entries;
        // Drop the expired, then the oldest while full.
        while let Some(at) = order.front().map(|(at, _)| *at) {
            let full = map.len() >= self.max_entries || bytes.saturating_add(size) > self.max_bytes;
            if at > now && !full {
                break;
            }
            if let Some((_, old)) = order.pop_front()
                // Only if the entry is still the one this slot recorded.
                && map.get(&old).is_some_and(|(e, _)| *e <= at)
                && let Some((_, r)) = map.remove(&old)
            {
                *bytes = bytes.saturating_sub(r.size);
            }
        }
        *bytes = bytes.saturating_add(size);
        if let Some((_, r)) = map.insert(id.clone(), (expires, Arc::new(response))) {
            *bytes = bytes.saturating_sub(r.size);
        }
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
            history: Vec::new(),
            input: vec![Value::from(n)],
            instructions: None,
            output: Vec::new(),
            response: Value::Null,
            size: 100,
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

    #[tokio::test]
    async fn bounded_in_bytes() {
        let s = MemoryResponseStore::new(100, Duration::from_secs(10)).max_bytes(250);
        s.put("a".into(), stored(1)).await.unwrap();
        s.put("b".into(), stored(2)).await.unwrap();
        s.put("c".into(), stored(3)).await.unwrap();
        assert!(s.get("a").await.unwrap().is_none(), "the oldest went");
        assert_eq!(s.len(), 2);
        let mut big = stored(4);
        big.size = 251;
        assert!(s.put("d".into(), big).await.is_err());
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_continuation_shares_the_history() {
        let mut first = stored(1);
        first.output = vec![Value::from("out1")];
        let mut second = stored(2);
        second.history = first.continued_history();
        let conv: Vec<&Value> = second.conversation().collect();
        assert_eq!(
            conv,
            [&Value::from(1), &Value::from("out1"), &Value::from(2)]
        );
        let third_history = second.continued_history();
        assert!(Arc::ptr_eq(&third_history[0], &second.history[0]));
    }
}

/// Stored responses in Redis (the config's `store`), shared by every gateway instance that
/// uses the same Redis and prefix: `previous_response_id` and `GET /v1/responses/{id}`
/// work whichever instance answered first. Each response is one JSON value under
/// `{prefix}:response:{id}`, expiring after the TTL (`SET ... PX`). A continuation stores
/// its whole conversation (Redis has no shared `Arc`s); responses larger than `max_bytes`
/// are not stored.
#[cfg(feature = "config")]
#[derive(Clone)]
pub struct RedisResponseStore {
    conn: llm_tower_redis::RedisConnection,
    ttl: Duration,
    max_bytes: usize,
}

#[cfg(feature = "config")]
impl fmt::Debug for RedisResponseStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisResponseStore")
            .field("conn", &self.conn)
            .field("ttl", &self.ttl)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// What Redis holds for one stored response.
#[cfg(feature = "config")]
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredWire {
    caller: Option<String>,
    history: Vec<Vec<Value>>,
    input: Vec<Value>,
    instructions: Option<String>,
    output: Vec<Value>,
    response: Value,
    size: usize,
}

#[cfg(feature = "config")]
impl RedisResponseStore {
    /// A store on `conn`, keeping each response for `ttl`, at most 16 MiB of JSON each.
    pub fn new(conn: llm_tower_redis::RedisConnection, ttl: Duration) -> Self {
        RedisResponseStore {
            conn,
            ttl,
            max_bytes: 16 << 20,
        }
    }

    /// Bounds the JSON stored for one response.
    #[must_use]
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    fn key(&self, id: &str) -> String {
        format!("{}:response:{id}", self.conn.prefix())
    }

    async fn get_now(&self, id: &str) -> Result<Option<Arc<StoredResponse>>, Error> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(id));
        let bytes: Option<Vec<u8>> = self.conn.command(&cmd, "GET of a stored response").await?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let w: StoredWire = serde_json::from_slice(&bytes).map_err(|e| {
            Error::store(format!("a stored response in Redis is not readable: {e}"))
        })?;
        Ok(Some(Arc::new(StoredResponse {
            caller: w.caller,
            history: w.history.into_iter().map(Arc::from).collect(),
            input: w.input,
            instructions: w.instructions,
            output: w.output,
            response: w.response,
            size: w.size,
        })))
    }

    async fn put_now(&self, id: String, r: StoredResponse) -> Result<(), Error> {
        let w = StoredWire {
            caller: r.caller,
            history: r.history.iter().map(|t| t.to_vec()).collect(),
            input: r.input,
            instructions: r.instructions,
            output: r.output,
            response: r.response,
            size: r.size,
        };
        let bytes = serde_json::to_vec(&w)
            .map_err(|e| Error::internal(format!("a response cannot be encoded: {e}")))?;
        if bytes.len() > self.max_bytes {
            return Err(Error::invalid_request(format!(
                "the response is too large to store ({} bytes, at most {})",
                bytes.len(),
                self.max_bytes
            )));
        }
        let ttl_ms = u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(&id)).arg(bytes).arg("PX").arg(ttl_ms);
        let _: () = self.conn.command(&cmd, "SET of a stored response").await?;
        Ok(())
    }
}

#[cfg(feature = "config")]
impl ResponseStore for RedisResponseStore {
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Arc<StoredResponse>>, Error>> {
        Box::pin(self.get_now(id))
    }

    fn put(&self, id: String, response: StoredResponse) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.put_now(id, response))
    }
}
