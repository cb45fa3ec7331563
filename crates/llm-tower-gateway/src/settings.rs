//! [`Settings`]: how the gateway's HTTP server behaves.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Server settings. [`Settings::default`] is what `llm-tower serve` uses without a config.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Where to listen (default `127.0.0.1:8080`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes (default 1 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Time allowed for a client to send its request headers (default 10 s). On a new
    /// connection it runs from the accept, so it also covers the first byte, the HTTP/2
    /// preface and SETTINGS; on HTTP/1 it also bounds idle keep-alive connections.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed gracefully
    /// (HTTP/2 `GOAWAY`; default 60 s). HTTP/1 keep-alive connections are closed sooner by
    /// `header_read_timeout`.
    pub idle_timeout: Duration,
    /// How often an HTTP/2 connection is pinged to check the client is still there
    /// (default 20 s); `None` sends no pings.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long an HTTP/2 ping may go unanswered before the connection is closed
    /// (default 20 s).
    pub http2_keep_alive_timeout: Duration,
    /// The most client connections open at once (default: from the descriptor limit, see
    /// [`default_max_connections`]). Beyond it the server stops accepting, so new
    /// connections wait in the kernel's listen backlog, and sheds connections that have
    /// no request in flight, oldest first, to make room.
    pub max_connections: usize,
    /// Time allowed for a client to send its request body (default 30 s); then 408.
    pub body_read_timeout: Duration,
    /// The longest a request may take, streams included (default 300 s): the deadline
    /// written into the request context; a response not started by then is a 504, a
    /// stream still running then ends with a timeout error event.
    pub request_timeout: Duration,
    /// On shutdown, how long in-flight requests and streams may take to finish (default 30 s).
    pub shutdown_grace: Duration,
    /// How long `/health` waits for the provider probes (default 5 s).
    pub health_timeout: Duration,
    /// How long `/health` reuses the last probe results (default 10 s), so the
    /// unauthenticated endpoint cannot be used to hammer the providers; concurrent
    /// `/health` requests share one probe run. Zero probes on every request.
    pub health_cache: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax (default `info`);
    /// `RUST_LOG` overrides it.
    pub log_level: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_keep_alive_interval: Some(Duration::from_secs(20)),
            http2_keep_alive_timeout: Duration::from_secs(20),
            max_connections: default_max_connections(),
            body_read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            health_timeout: Duration::from_secs(5),
            health_cache: Duration::from_secs(10),
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
        }
    }
}

/// Descriptors kept out of [`default_max_connections`] for the listener, logs, config
/// files, Redis, the runtime and the standard streams.
const RESERVED_DESCRIPTORS: u64 = 64;
/// The smallest default `max_connections`, however low the descriptor limit.
const MIN_DEFAULT_CONNECTIONS: usize = 16;
/// The largest default `max_connections` (when the descriptor limit is huge or infinite).
const MAX_DEFAULT_CONNECTIONS: usize = 1 << 20;

/// The default [`Settings::max_connections`]: sized from the process's soft descriptor
/// limit (`RLIMIT_NOFILE`, `ulimit -n`) by [`max_connections_for`]; 1,024 descriptors when
/// the limit cannot be read.
pub fn default_max_connections() -> usize {
    max_connections_for(soft_descriptor_limit().unwrap_or(1024))
}

/// `max_connections` for a soft descriptor limit: what is left after a reserve of 64,
/// halved, since each client connection may need an upstream socket as well; at least 16
/// and at most 2^20. `1024` gives 480.
pub fn max_connections_for(descriptor_limit: u64) -> usize {
    let n = descriptor_limit.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(n)
        .unwrap_or(MAX_DEFAULT_CONNECTIONS)
        .clamp(MIN_DEFAULT_CONNECTIONS, MAX_DEFAULT_CONNECTIONS)
}

/// The soft `RLIMIT_NOFILE`, where the platform has one.
pub fn soft_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _hard)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_leave_room_for_upstream_sockets() {
        assert_eq!(max_connections_for(1024), 480);
        assert_eq!(max_connections_for(65_536), 32_736);
        assert_eq!(max_connections_for(0), 16);
        assert_eq!(max_connections_for(64), 16);
        assert_eq!(max_connections_for(u64::MAX), 1 << 20);
    }

    #[test]
    fn the_default_fits_under_the_process_limit() {
        let n = default_max_connections();
        assert!(n >= 16);
        if let Some(limit) = soft_descriptor_limit() {
            assert!((n as u64) < limit.max(128), "{n} >= {limit}");
        }
    }
}
