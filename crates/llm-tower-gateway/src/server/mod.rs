//! The HTTP server: an accept loop over hyper-util with `TCP_NODELAY`, a header read
//! timeout, HTTP/1.1 and HTTP/2 (prior knowledge), and graceful shutdown.
//!
//! [`serve`] runs any axum [`Router`] (the gateway's or your own). Each accepted socket
//! gets `TCP_NODELAY` (a streamed chunk leaves at once instead of waiting for Nagle's
//! algorithm), and every request carries a [`ConnectionInfo`] extension (peer address,
//! whether `TCP_NODELAY` is on) and axum's `ConnectInfo<SocketAddr>`.
//!
//! When `shutdown` completes, the listener is closed (no new connections), idle
//! keep-alive connections close, and in-flight requests and streams may finish within
//! `shutdown_grace`; whatever is still open after that is dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::Service;

use crate::settings::Settings;

/// Facts about the connection a request came on, inserted into every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// `TCP_NODELAY` is set on the accepted socket.
    pub nodelay: bool,
}

/// Options of [`serve`] (a subset of [`Settings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    /// Time for a client to send its request headers (also bounds idle keep-alive).
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl From<&Settings> for ServeOptions {
    fn from(s: &Settings) -> Self {
        ServeOptions {
            header_read_timeout: s.header_read_timeout,
            shutdown_grace: s.shutdown_grace,
        }
    }
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
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    // Every connection task, so that those still open when the grace period passes are
    // aborted (not left running after `serve` returns); finished ones are reaped as we go.
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Per-connection errors (reset before accept) and resource exhaustion
                // (EMFILE): log, back off briefly, keep serving.
                tracing::warn!(error = %e, "accept failed");
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let nodelay = stream.set_nodelay(true).is_ok() && stream.nodelay().unwrap_or(false);
        let info = ConnectionInfo { peer, nodelay };
        let router = router.clone();
        let svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let ext = req.extensions_mut();
            ext.insert(info);
            ext.insert(ConnectInfo(peer));
            let mut router = router.clone();
            router.call(req)
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        connections.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        grace_s = options.shutdown_grace.as_secs_f64(),
        "shutting down: no new connections; finishing in-flight requests"
    );
    match tokio::time::timeout(options.shutdown_grace, graceful.shutdown()).await {
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
