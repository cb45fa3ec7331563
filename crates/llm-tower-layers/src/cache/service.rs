//! [`ResponseCache`]: the service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use llm_tower_core::{
    CacheStatus, ChatRequest, CompletionRequest, EmbeddingsRequest, Error, LlmRequest, LlmResponse,
    Money, Prompt, RequestBody, ResponseBody, StreamCost, TokenEstimate, UsageSource,
    response_chunks,
};
use tower::{Service, ServiceExt};

use super::entry::{Entry, StoredBody};
use super::key::CacheKey;
use super::layer::{Plan, Shared};
use super::stream::CacheStream;

/// The service built by [`ResponseCacheLayer`](super::ResponseCacheLayer).
pub struct ResponseCache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for ResponseCache<S> {
    fn clone(&self) -> Self {
        ResponseCache {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCache")
            .field("inner", &self.inner)
            .field("store", &self.shared.store)
            .finish()
    }
}

impl<S> ResponseCache<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        ResponseCache { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn count(result: &'static str) {
    metrics::counter!("llm_tower_cache_requests_total", "result" => result).increment(1);
}

impl<S> Service<LlmRequest> for ResponseCache<S>
where
    S: Service<LlmRequest, Response = LlmResponse, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = LlmResponse;
    type Error = Error;
    type Future = BoxFuture<'static, Result<LlmResponse, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: LlmRequest) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let (key, lookup, store) = match shared.plan(&req) {
            Plan::Bypass => {
                count("bypass");
                let fut = inner.call(req);
                return Box::pin(async move {
                    let mut resp = fut.await?;
                    resp.meta.cache = Some(CacheStatus::Bypass);
                    Ok(resp)
                });
            }
            Plan::Use { key, lookup, store } => (key, lookup, store),
        };
        Box::pin(async move {
            let started = shared.clock.now();
            if lookup && let Some(entry) = lookup_entry(&shared, &key, &req).await {
                count("hit");
                return hit(&shared, req, entry, started).await;
            }
            count("miss");
            let mut resp = inner.call(req).await?;
            resp.meta.cache = Some(CacheStatus::Miss);
            if store {
                resp = store_response(shared, key, resp).await;
            }
            Ok(resp)
        })
    }
}

/// The entry under `key` that answers `req`; `None` (a miss) when there is none, it does
/// not decode, or the store fails (logged: a cache is never a reason to fail a request).
async fn lookup_entry(shared: &Shared, key: &CacheKey, req: &LlmRequest) -> Option<Entry> {
    let bytes = match shared.store.get(key).await {
        Ok(b) => b?,
        Err(e) => {
            metrics::counter!("llm_tower_cache_errors_total", "op" => "get").increment(1);
            tracing::warn!(error = %e, store = shared.store.kind(), "cache: lookup failed; calling the provider");
            return None;
        }
    };
    let entry = Entry::decode(&bytes)?;
    let fits = matches!(
        (&entry.body, &req.body),
        (StoredBody::Chat(_), RequestBody::Chat(_))
            | (StoredBody::Completion(_), RequestBody::Completion(_))
            | (StoredBody::Embeddings(_), RequestBody::Embeddings(_))
    );
    fits.then_some(entry)
}

/// The request an admission stack sees for a hit: the model, the context with a zero
/// token estimate, the extensions; no content.
fn admission_request(req: &mut LlmRequest) -> LlmRequest {
    let model = req.model().to_owned();
    let body = match &req.body {
        RequestBody::Chat(_) => RequestBody::Chat(ChatRequest::new(model, Vec::new())),
        RequestBody::Completion(_) => RequestBody::Completion(CompletionRequest {
            model,
            prompt: Prompt::One(String::new()),
            max_tokens: Some(0),
            temperature: None,
            top_p: None,
            stop: None,
            stream: false,
            user: None,
            extra: serde_json::Map::new(),
        }),
        RequestBody::Embeddings(_) => RequestBody::Embeddings(EmbeddingsRequest {
            model,
            input: llm_tower_core::EmbeddingInput::Many(Vec::new()),
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: serde_json::Map::new(),
        }),
    };
    let mut admit = LlmRequest::new(body);
    admit.ctx = req.ctx.clone();
    admit.ctx.token_estimate = Some(TokenEstimate {
        prompt_tokens: 0,
        max_output_tokens: Some(0),
        output_choices: 1,
        source: UsageSource::Counted,
    });
    admit.extensions = std::mem::take(&mut req.extensions);
    admit
}

async fn hit(
    shared: &Shared,
    mut req: LlmRequest,
    entry: Entry,
    started: Instant,
) -> Result<LlmResponse, Error> {
    if let Some(admit) = &shared.admit {
        admit.clone().oneshot(admission_request(&mut req)).await?;
    }
    if let Some(t) = &shared.tracker {
        t.record_cache_hit(&req, entry.provider.as_deref());
    }
    let Entry {
        body,
        usage,
        provider,
        model,
        ..
    } = entry;
    let mut resp = match body {
        StoredBody::Chat(c) if req.is_stream() => {
            let mut chunks = response_chunks(&c, usage);
            for ch in &mut chunks {
                if ch.usage.is_some() {
                    ch.cost = Some(Money::ZERO);
                }
            }
            let mut r = LlmResponse::new(ResponseBody::Stream(Box::pin(
                futures_util::stream::iter(chunks.into_iter().map(Ok)),
            )));
            let cost = StreamCost::new();
            cost.settle(Some(Money::ZERO));
            r.meta.stream_cost = Some(cost);
            r
        }
        body => {
            let mut r = LlmResponse::new(match body {
                StoredBody::Chat(c) => ResponseBody::Chat(c),
                StoredBody::Completion(c) => ResponseBody::Completion(c),
                StoredBody::Embeddings(e) => ResponseBody::Embeddings(e),
            });
            r.usage = usage;
            r.cost = Some(Money::ZERO);
            r
        }
    };
    resp.meta.provider = provider.map(Arc::from);
    resp.meta.model = model;
    resp.meta.latency = shared.clock.now().saturating_duration_since(started);
    resp.meta.cache = Some(CacheStatus::Hit);
    tracing::debug!(gen_ai.request.model = req.model(), "cache: hit");
    Ok(resp)
}

/// Stores a whole response now, or wraps a stream to store it once it has ended well.
async fn store_response(shared: Arc<Shared>, key: CacheKey, mut resp: LlmResponse) -> LlmResponse {
    match std::mem::replace(
        &mut resp.body,
        ResponseBody::Stream(Box::pin(futures_util::stream::empty())),
    ) {
        ResponseBody::Stream(s) => {
            let provider = resp.meta.provider.as_deref().map(str::to_owned);
            let model = resp.meta.model.clone();
            resp.body =
                ResponseBody::Stream(Box::pin(CacheStream::new(s, shared, key, provider, model)));
        }
        body => {
            resp.body = body;
            match Entry::of(&resp) {
                Some(entry) => put(&shared, &key, &entry).await,
                None => stored("unsupported"),
            }
        }
    }
    resp
}

pub(crate) fn stored(result: &'static str) {
    metrics::counter!("llm_tower_cache_stores_total", "result" => result).increment(1);
}

/// Encodes and stores `entry`; failures are logged and counted, never returned.
pub(crate) async fn put(shared: &Shared, key: &CacheKey, entry: &Entry) {
    let Some(bytes) = entry.encode() else {
        stored("unsupported");
        return;
    };
    let n = bytes.len() as u64;
    if n > shared.max_entry_bytes {
        stored("too_large");
        return;
    }
    match shared.store.put(key, bytes, shared.ttl).await {
        Ok(true) => {
            stored("stored");
            metrics::counter!("llm_tower_cache_stored_bytes_total").increment(n);
        }
        Ok(false) => stored("too_large"),
        Err(e) => {
            stored("error");
            metrics::counter!("llm_tower_cache_errors_total", "op" => "put").increment(1);
            tracing::warn!(error = %e, store = shared.store.kind(), "cache: storing the response failed");
        }
    }
}
