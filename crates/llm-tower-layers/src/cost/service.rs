//! [`TrackCostLayer`] and [`TrackCost`]: reserve before the call, settle after it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::future::BoxFuture;
use llm_tower_core::{
    ChatChunk, ChatStream, Error, LlmRequest, LlmResponse, ResponseBody, StreamCost, Usage,
};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::tracker::{CostTracker, Reservation};

/// Wraps services with cost tracking and budget enforcement by a [`CostTracker`].
#[derive(Clone, Debug)]
pub struct TrackCostLayer {
    tracker: CostTracker,
}

impl TrackCostLayer {
    /// A layer over `tracker` (clones share its counters).
    pub fn new(tracker: CostTracker) -> Self {
        TrackCostLayer { tracker }
    }

    /// The tracker.
    pub fn tracker(&self) -> &CostTracker {
        &self.tracker
    }
}

impl<S> Layer<S> for TrackCostLayer {
    type Service = TrackCost<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackCost {
            inner,
            tracker: self.tracker.clone(),
        }
    }
}

/// The service built by [`TrackCostLayer`].
#[derive(Clone)]
pub struct TrackCost<S> {
    inner: S,
    tracker: CostTracker,
}

impl<S: fmt::Debug> fmt::Debug for TrackCost<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackCost")
            .field("inner", &self.inner)
            .field("tracker", &self.tracker)
            .finish()
    }
}

impl<S> TrackCost<S> {
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

    /// The tracker.
    pub fn tracker(&self) -> &CostTracker {
        &self.tracker
    }
}

impl<S> Service<LlmRequest> for TrackCost<S>
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
        let tracker = self.tracker.clone();
        Box::pin(async move {
            let mut reservation = tracker.reserve(&req).await?;
            // Without the token-count layer outside, nobody counts the stream: do it here.
            let local_count = req.ctx.meter.is_none();
            match inner.call(req).await {
                Ok(mut resp) => {
                    reservation.observe_provider(resp.meta.provider.as_ref());
                    match std::mem::replace(
                        &mut resp.body,
                        ResponseBody::Stream(Box::pin(futures_util::stream::empty())),
                    ) {
                        ResponseBody::Stream(stream) => {
                            let cost = StreamCost::new();
                            resp.meta.stream_cost = Some(cost.clone());
                            resp.body = ResponseBody::Stream(Box::pin(CostStream {
                                inner: stream,
                                reservation: Some(reservation),
                                provider_usage: None,
                                local_count,
                                cost,
                            }));
                        }
                        body => {
                            let usage = match resp.usage {
                                Some(u) => u,
                                None => {
                                    let u = reservation.count_body(&body);
                                    resp.usage = Some(u);
                                    u
                                }
                            };
                            resp.body = body;
                            resp.cost = reservation.settle(Some(usage), false).await;
                        }
                    }
                    Ok(resp)
                }
                Err(e) => {
                    reservation.settle(None, true).await;
                    Err(e)
                }
            }
        })
    }
}

pin_project! {
    /// A stream that settles its reservation when it ends, fails or is dropped.
    ///
    /// The chunk that carries the provider's usage gets its cost ([`ChatChunk::cost`]),
    /// and the settled cost goes into the response's [`StreamCost`]
    /// ([`ResponseMeta::stream_cost`](llm_tower_core::ResponseMeta::stream_cost)). A drop
    /// settles with the provider's usage when a chunk carried it, else with the output
    /// counted so far.
    pub struct CostStream {
        #[pin]
        inner: ChatStream,
        reservation: Option<Reservation>,
        provider_usage: Option<Usage>,
        local_count: bool,
        cost: StreamCost,
    }

    impl PinnedDrop for CostStream {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(r) = this.reservation.take() {
                let usage = this.provider_usage.unwrap_or_else(|| r.counted_usage());
                finish(r, usage, false, this.cost);
            }
        }
    }
}

/// Settles `r` with `usage`: the cost is known at once (price x usage) and goes into the
/// handle; the store update runs now, or on the runtime when it has to wait.
fn finish(r: Reservation, usage: Usage, error: bool, cost: &StreamCost) {
    cost.settle(r.cost_of(&usage));
    spawn_or_run(r.settle(Some(usage), error));
}

fn spawn_or_run<F: std::future::Future<Output = Option<llm_tower_core::Money>> + Send + 'static>(
    fut: F,
) {
    use futures_util::FutureExt;
    let mut fut = Box::pin(fut);
    if (&mut fut).now_or_never().is_none()
        && let Ok(h) = tokio::runtime::Handle::try_current()
    {
        h.spawn(fut);
    }
}

impl Stream for CostStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let mut item = match this.inner.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &mut item {
            Some(Ok(chunk)) => {
                if let Some(r) = this.reservation.as_ref() {
                    if let Some(u) = chunk.usage {
                        *this.provider_usage = Some(u);
                        if let Some(c) = r.cost_of(&u) {
                            chunk.cost = Some(c);
                        }
                    }
                    if *this.local_count {
                        r.count_chunk(chunk);
                    }
                }
            }
            Some(Err(_)) => {
                if let Some(r) = this.reservation.take() {
                    let usage = this.provider_usage.unwrap_or_else(|| r.counted_usage());
                    finish(r, usage, true, this.cost);
                }
            }
            None => {
                if let Some(r) = this.reservation.take() {
                    let usage = this.provider_usage.unwrap_or_else(|| r.counted_usage());
                    finish(r, usage, false, this.cost);
                }
            }
        }
        Poll::Ready(item)
    }
}
