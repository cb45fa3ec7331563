//! The HTTP server: an accept loop over hyper-util with `TCP_NODELAY`, HTTP/1.1 and
//! HTTP/2 (prior knowledge), connection limits and timeouts, and graceful shutdown.
//!
//! [`serve`] runs any axum [`Router`] (the gateway's or your own). Each accepted socket
//! gets `TCP_NODELAY` (a streamed chunk leaves at once instead of waiting for Nagle's
//! algorithm), and every request carries a [`ConnectionInfo`] extension (peer address,
//! whether `TCP_NODELAY` is on) and axum's `ConnectInfo<SocketAddr>`.
//!
//! # Limits
//! - `header_read_timeout` runs from the accept: a connection that has not sent a complete
//!   request head by then (no byte, part of the HTTP/2 preface, the preface and SETTINGS
//!   and nothing more, part of an HTTP/1 head) is closed. Later HTTP/1 request heads get
//!   the same time from hyper, which also bounds idle HTTP/1 keep-alive connections.
//! - `idle_timeout`: a connection with no request in flight for that long is closed
//!   gracefully (HTTP/2 `GOAWAY`); HTTP/2 connections are also pinged every
//!   `http2_keep_alive_interval` and closed when a ping goes unanswered for
//!   `http2_keep_alive_timeout`.
//! - `max_connections`: each connection task holds a permit. When none is left, the loop
//!   holds the socket it just accepted and accepts no more, so new connections wait in
//!   the kernel's listen backlog instead of taking the descriptors that the connections
//!   being served need; and it asks the oldest connection with no request in flight (for
//!   20 ms at least) to close, as nginx reuses idle keep-alive connections when it runs
//!   out, so a flood of idle connections cannot lock clients out for a whole
//!   `header_read_timeout`. Connections with a request in flight are never shed.
//! - Accept errors are logged at most once per second (with the number held back) and
//!   counted in `llm_tower_gateway_accept_errors_total{reason}`; after running out of
//!   descriptors (`EMFILE`, `ENFILE`) the loop sheds an idle connection and waits 50 ms
//!   instead of spinning.
//!
//! [`bind`] makes a listener with a listen backlog of 1,024 for it.
//!
//! When `shutdown` completes, the listener is closed (no new connections), idle
//! keep-alive connections close, and in-flight requests and streams may finish within
//! `shutdown_grace`; whatever is still open after that is dropped.

mod accept;
mod connection;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::accept::{AcceptError, LogThrottle, OpenConnections};
use self::connection::{ConnService, ConnState, Timeouts};
use crate::settings::Settings;
use crate::telemetry::{ACCEPT_ERRORS, OPEN_CONNECTIONS};

/// How long the accept loop waits after an accept error other than an aborted connection
/// (running out of descriptors above all), instead of trying again at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At the connection limit, how often the accept loop looks again for an idle
/// connection to shed while no connection ends.
const SHED_RETRY: Duration = Duration::from_millis(10);
/// At most one log line per this for accept errors and for the connection limit.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Facts about the connection a request came on, inserted into every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// `TCP_NODELAY` is set on the accepted socket.
    pub nodelay: bool,
}

/// Options of [`serve`] (a subset of [`Settings`]); `ServeOptions::default()` is
/// `ServeOptions::from(&Settings::default())`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Time for a client to send a request head, from the accept for the first one (it
    /// covers the first byte and the HTTP/2 preface); also bounds idle HTTP/1 keep-alive.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed gracefully.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive ping interval (`None`: no pings).
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long an HTTP/2 keep-alive ping may go unanswered.
    pub http2_keep_alive_timeout: Duration,
    /// The most connections open at once (at least 1).
    pub max_connections: usize,
    /// Time in-flight requests get to finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl From<&Settings> for ServeOptions {
    fn from(s: &Settings) -> Self {
        ServeOptions {
            header_read_timeout: s.header_read_timeout,
            idle_timeout: s.idle_timeout,
            http2_keep_alive_interval: s.http2_keep_alive_interval,
            http2_keep_alive_timeout: s.http2_keep_alive_timeout,
            max_connections: s.max_connections,
            shutdown_grace: s.shutdown_grace,
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions::from(&Settings::default())
    }
}

/// The listen backlog of [`bind`]: connections beyond `max_connections` wait there (the
/// kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 1024;

/// A listener on `addr` for [`serve`], with `SO_REUSEADDR` on Unix and a listen backlog
/// of [`LISTEN_BACKLOG`] (`TcpListener::bind` may leave a much shorter one, and a
/// connection that finds the backlog full waits a second or more for its SYN to be
/// retransmitted).
///
/// # Errors
/// When the socket cannot be made, bound or put to listen.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Every connection finished within the grace period.
    Graceful,
    /// The grace period passed; the remaining connections were dropped.
    GraceExpired,
}

/// Serves `router` on `listener` until `shutdown` completes, then shuts down gracefully.
/// See the [module docs](self) for the limits it enforces.
///
/// # Errors
/// Never for a single failed accept or connection (they are logged); the `io::Result`
/// is for future listener-level failures.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: F,
) -> io::Result<Shutdown>
where
    F: Future<Output = ()> + Send,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        // One flattened write buffer instead of a writev queue: every body frame is still
        // written as soon as the body has nothing more ready (an SSE chunk leaves at once),
        // but chunks that are ready together leave in one syscall instead of one per ~5.
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(options.http2_keep_alive_interval)
        .keep_alive_timeout(options.http2_keep_alive_timeout);
    let timeouts = Timeouts {
        first_request: options.header_read_timeout,
        idle: options.idle_timeout,
        close: options.header_read_timeout,
    };
    let max_connections = options.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max_connections));
    let (shutdown_tx, shutdown_rx) = watch::channel(());
    // Every connection task, so that those still open when the grace period passes are
    // aborted (not left running after `serve` returns); finished ones are reaped as we go.
    let mut connections = JoinSet::new();
    let mut open = OpenConnections::default();
    let mut accept_log = LogThrottle::new(LOG_EVERY);
    let mut full_log = LogThrottle::new(LOG_EVERY);
    let mut shutdown = std::pin::pin!(shutdown);
    // An accepted socket waiting for a permit: at most one beyond `max_connections`.
    let mut pending: Option<(TcpStream, SocketAddr)> = None;
    loop {
        let Some((stream, peer)) = pending.take() else {
            let accepted = tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    reap(done);
                    continue;
                }
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok(a) => pending = Some(a),
                Err(e) => {
                    let kind = AcceptError::of(&e);
                    metrics::counter!(ACCEPT_ERRORS, "reason" => kind.label()).increment(1);
                    if let Some(held_back) = accept_log.allow(Instant::now()) {
                        tracing::warn!(error = %e, reason = kind.label(), held_back, "accept failed");
                    }
                    if kind == AcceptError::Aborted {
                        continue; // that client is gone; the next one may be waiting
                    }
                    if kind == AcceptError::Descriptors {
                        open.shed_one(Instant::now());
                    }
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            }
            continue;
        };
        let held = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the limit: this socket waits (and the next ones wait in the listen
                // backlog) while an idle connection is shed to make room.
                pending = Some((stream, peer));
                let shed = open.shed_one(Instant::now());
                if let Some(held_back) = full_log.allow(Instant::now()) {
                    tracing::warn!(
                        max_connections,
                        shed,
                        held_back,
                        "connection limit reached: new connections wait in the listen backlog"
                    );
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    Some(done) = connections.join_next(), if !connections.is_empty() => reap(done),
                    () = tokio::time::sleep(SHED_RETRY) => {}
                }
                continue;
            }
        };
        let nodelay = stream.set_nodelay(true).is_ok() && stream.nodelay().unwrap_or(false);
        let state = ConnState::new();
        let svc = ConnService {
            router: router.clone(),
            info: ConnectionInfo { peer, nodelay },
            state: state.clone(),
        };
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        open.push(&state, connections.len());
        let shutdown_rx = shutdown_rx.clone();
        connections.spawn(async move {
            let _held = held;
            let _open = OpenGauge::new();
            connection::drive(conn, state, timeouts, shutdown_rx, peer).await;
        });
    }
    drop(listener);
    tracing::info!(
        grace_s = options.shutdown_grace.as_secs_f64(),
        open = connections.len(),
        "shutting down: no new connections; finishing in-flight requests"
    );
    drop(shutdown_rx);
    let _ = shutdown_tx.send(());
    let finish = async {
        while let Some(done) = connections.join_next().await {
            reap(done);
        }
    };
    match tokio::time::timeout(options.shutdown_grace, finish).await {
        Ok(()) => {
            tracing::info!("all connections finished");
            Ok(Shutdown::Graceful)
        }
        Err(_) => {
            tracing::warn!(
                open = connections.len(),
                "shutdown grace period passed; dropping the remaining connections"
            );
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            Ok(Shutdown::GraceExpired)
        }
    }
}

/// Logs a connection task that panicked (hyper or a handler bug); the rest is logged by
/// the task itself.
fn reap(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(error = %e, "a connection task panicked");
    }
}

/// `llm_tower_gateway_open_connections`, up while the guard lives.
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics::gauge!(OPEN_CONNECTIONS).increment(1.0);
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_CONNECTIONS).decrement(1.0);
    }
}

/// Completes on ctrl-c (SIGINT) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
