//! One connection: the service hyper calls (which counts requests in flight), the body
//! guard that ends a request, and the watchdog that closes connections that send no
//! request, sit idle, or are shed by the accept loop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::future::RouteFuture;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::UpgradeableConnection;
use pin_project_lite::pin_project;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::ConnectionInfo;
use crate::telemetry::CONNECTIONS_CLOSED;

/// What the accept loop and the connection's watchdog know about a connection; the
/// service and the response bodies update it.
#[derive(Debug)]
pub(super) struct ConnState {
    accepted: Instant,
    /// Requests whose response body has not ended (or been dropped) yet.
    in_flight: AtomicUsize,
    /// Requests whose head was complete (the service was called).
    requests: AtomicU64,
    /// When `in_flight` last went to zero, in milliseconds since `accepted`.
    idle_since_ms: AtomicU64,
    /// The connection is being closed (by the watchdog or at shutdown).
    closing: AtomicBool,
    /// Set by the accept loop to ask an idle connection to close.
    shed: Notify,
}

impl ConnState {
    pub(super) fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            shed: Notify::new(),
        })
    }

    /// No request has been in flight for `min_idle` and the connection is not closing
    /// already: shedding it interrupts nobody.
    pub(super) fn sheddable(&self, now: Instant, min_idle: Duration) -> bool {
        self.is_idle()
            && !self.closing()
            && now.saturating_duration_since(self.idle_since()) >= min_idle
    }

    pub(super) fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Asks the connection to close if it is still idle when its task sees the request.
    pub(super) fn shed(&self) {
        self.shed.notify_one();
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn idle_since(&self) -> Instant {
        after(
            self.accepted,
            Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed)),
        )
    }
}

/// One request in flight: from the call of the service until its response body ends or
/// is dropped.
#[derive(Debug)]
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.0;
        let ms = u64::try_from(state.accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Written before the count drops, so a watchdog that sees zero sees this time.
        state.idle_since_ms.store(ms, Ordering::Relaxed);
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The service hyper calls for each request of one connection.
#[derive(Clone)]
pub(super) struct ConnService {
    pub(super) router: Router,
    pub(super) info: ConnectionInfo,
    pub(super) state: Arc<ConnState>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut req: Request<Incoming>) -> ResponseFuture {
        let ext = req.extensions_mut();
        ext.insert(self.info);
        ext.insert(ConnectInfo(self.info.peer));
        let guard = self.state.begin();
        let mut router = self.router.clone();
        ResponseFuture {
            inner: tower::Service::call(&mut router, req),
            guard: Some(guard),
        }
    }
}

pin_project! {
    /// The router's future; the response body carries the in-flight guard on.
    pub(super) struct ResponseFuture {
        #[pin]
        inner: RouteFuture<Infallible>,
        guard: Option<InFlight>,
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(resp)) => resp,
            Poll::Ready(Err(never)) => match never {},
        };
        let guard = this.guard.take();
        Poll::Ready(Ok(resp.map(|inner| TrackedBody {
            inner,
            _guard: guard,
        })))
    }
}

pin_project! {
    /// A response body that keeps its request counted as in flight until it ends or is
    /// dropped.
    pub(super) struct TrackedBody {
        #[pin]
        inner: Body,
        _guard: Option<InFlight>,
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection as hyper-util's auto builder serves it.
pub(super) type Conn =
    UpgradeableConnection<'static, TokioIo<TcpStream>, ConnService, TokioExecutor>;

/// The timeouts the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// From the accept to the first complete request head.
    pub(super) first_request: Duration,
    /// No request in flight for this long: close gracefully.
    pub(super) idle: Duration,
    /// After a graceful close started with no request in flight, how long the peer gets
    /// to finish it (HTTP/2 `GOAWAY` and ping) before the socket is dropped.
    pub(super) close: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted; no request head yet.
    AwaitingRequest,
    /// At least one request came.
    Serving,
    /// A graceful close was started.
    Closing,
}

/// Serves `conn` until it ends: closes it when no complete request head arrives within
/// `timeouts.first_request` of the accept (no byte, a partial HTTP/2 preface, a preface
/// and SETTINGS, or a partial HTTP/1 head), closes it gracefully when no request has been
/// in flight for `timeouts.idle`, when the accept loop sheds it while idle, and on
/// `shutdown`.
pub(super) async fn drive(
    conn: Conn,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    mut shutdown: watch::Receiver<()>,
    peer: SocketAddr,
) {
    let mut conn = std::pin::pin!(conn);
    // The first look comes at the earlier of the two timeouts: a connection whose first
    // request is done may idle out before `first_request` passes.
    let first_look = after(state.accepted, timeouts.first_request.min(timeouts.idle));
    let sleep = tokio::time::sleep_until(first_look);
    let mut sleep = std::pin::pin!(sleep);
    let mut phase = Phase::AwaitingRequest;
    loop {
        tokio::select! {
            biased;
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if phase != Phase::Closing => {
                // Hyper closes idle HTTP/1 connections at once, sends HTTP/2 `GOAWAY`,
                // and lets requests in flight finish; `serve` bounds the rest.
                phase = Phase::Closing;
                state.closing.store(true, Ordering::Release);
                conn.as_mut().graceful_shutdown();
                sleep.as_mut().reset(after(Instant::now(), timeouts.close));
            }
            () = state.shed.notified(), if phase != Phase::Closing => {
                if !state.is_idle() {
                    continue; // a request came in the meantime: keep serving
                }
                metrics::counter!(CONNECTIONS_CLOSED, "reason" => "shed").increment(1);
                if phase == Phase::AwaitingRequest {
                    tracing::debug!(%peer, "connection limit reached: closing a connection that sent no request");
                    return;
                }
                tracing::debug!(%peer, "connection limit reached: closing an idle connection");
                phase = Phase::Closing;
                state.closing.store(true, Ordering::Release);
                conn.as_mut().graceful_shutdown();
                sleep.as_mut().reset(after(Instant::now(), timeouts.close));
            }
            () = sleep.as_mut() => {
                let now = Instant::now();
                match phase {
                    Phase::AwaitingRequest if state.requests.load(Ordering::Relaxed) == 0 => {
                        let due = after(state.accepted, timeouts.first_request);
                        if due > now {
                            sleep.as_mut().reset(due);
                            continue;
                        }
                        metrics::counter!(CONNECTIONS_CLOSED, "reason" => "no_request").increment(1);
                        tracing::debug!(%peer, "no complete request head within header_read_timeout: closing");
                        return;
                    }
                    Phase::AwaitingRequest | Phase::Serving => {
                        phase = Phase::Serving;
                        if !state.is_idle() {
                            // Look again once a request that ended now would have idled out.
                            sleep.as_mut().reset(after(now, timeouts.idle));
                            continue;
                        }
                        let due = after(state.idle_since(), timeouts.idle);
                        if due > now {
                            sleep.as_mut().reset(due);
                            continue;
                        }
                        metrics::counter!(CONNECTIONS_CLOSED, "reason" => "idle").increment(1);
                        tracing::debug!(%peer, "connection idle for idle_timeout: closing");
                        phase = Phase::Closing;
                        state.closing.store(true, Ordering::Release);
                        conn.as_mut().graceful_shutdown();
                        sleep.as_mut().reset(after(now, timeouts.close));
                    }
                    Phase::Closing => {
                        if state.is_idle() {
                            tracing::debug!(%peer, "graceful close not finished in time: dropping the connection");
                            return;
                        }
                        sleep.as_mut().reset(after(now, timeouts.close));
                    }
                }
            }
        }
    }
}

/// `t + d`, or a year after `t` when a configured timeout of centuries would overflow.
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .unwrap_or_else(|| t + Duration::from_secs(365 * 24 * 3600))
}
