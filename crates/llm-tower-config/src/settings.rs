//! [`GatewaySettings`]: what the gateway binary reads from the config.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// The default listen address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
/// The default largest request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The default bound on bytes buffered from upstream bodies at once: 64 MiB.
pub const DEFAULT_MAX_UPSTREAM_BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The gateway's server settings (the `gateway` and `logging` sections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// The listen address (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// The largest request body in bytes (default 1 MiB).
    pub max_body_bytes: usize,
    /// The bound on bytes buffered from all upstream response bodies at once (default
    /// 64 MiB), shared by every provider the config builds.
    pub max_upstream_buffer_bytes: usize,
    /// The longest a request may take, streams included (default 5 minutes).
    pub request_timeout: Duration,
    /// Time allowed to read a request's headers (default 10 s), from the accept for a
    /// connection's first request.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (default 60 s).
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive ping interval (default 20 s; `None`: no pings).
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long an HTTP/2 ping may go unanswered (default 20 s).
    pub http2_keep_alive_timeout: Duration,
    /// The most client connections open at once; `None` (the default) lets the gateway
    /// size it from the process's descriptor limit.
    pub max_connections: Option<usize>,
    /// Time given to requests in flight at shutdown (default 30 s).
    pub shutdown_grace: Duration,
    /// Log format (default human).
    pub log_format: LogFormat,
    /// Log level or filter directives, e.g. `info` or `info,llm_tower=debug` (default `info`).
    pub log_level: String,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            listen: DEFAULT_LISTEN,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_upstream_buffer_bytes: DEFAULT_MAX_UPSTREAM_BUFFER_BYTES,
            request_timeout: Duration::from_secs(300),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_keep_alive_interval: Some(Duration::from_secs(20)),
            http2_keep_alive_timeout: Duration::from_secs(20),
            max_connections: None,
            shutdown_grace: Duration::from_secs(30),
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
        }
    }
}
