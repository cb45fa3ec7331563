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
    /// Time allowed for a client to send its request headers, also bounding idle
    /// keep-alive connections (default 10 s).
    pub header_read_timeout: Duration,
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
