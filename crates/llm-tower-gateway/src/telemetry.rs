//! Metrics (Prometheus) and logs (`tracing-subscriber`, human or JSON).
//!
//! The gateway adds to the stack's metrics (see `llm_tower_layers::trace`):
//! - `llm_tower_gateway_requests_total{route,status}`: HTTP requests answered,
//! - `llm_tower_gateway_request_duration_seconds{route}`: time to the response headers,
//! - `llm_tower_gateway_overhead_seconds{route}`: time spent in the gateway outside the
//!   provider call (time to the response headers minus `ResponseMeta::latency`),
//! - `llm_tower_gateway_open_connections`: client connections open now,
//! - `llm_tower_gateway_connections_closed_total{reason}`: connections the server closed
//!   itself: `no_request` (no complete request head within `header_read_timeout`),
//!   `idle` (no request in flight for `idle_timeout`), `shed` (idle when the connection
//!   limit was reached),
//! - `llm_tower_gateway_accept_errors_total{reason}`: failed accepts: `descriptors`
//!   (`EMFILE`/`ENFILE`), `aborted` (the client left first), `other`.
//!
//! Metric names with dots (`gen_ai.client.operation.duration`) are exported with
//! underscores, as Prometheus requires.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, Settings};

/// `llm_tower_gateway_requests_total`.
pub const REQUESTS_TOTAL: &str = "llm_tower_gateway_requests_total";
/// `llm_tower_gateway_request_duration_seconds`.
pub const REQUEST_DURATION: &str = "llm_tower_gateway_request_duration_seconds";
/// `llm_tower_gateway_overhead_seconds`.
pub const OVERHEAD: &str = "llm_tower_gateway_overhead_seconds";
/// `llm_tower_gateway_open_connections`.
pub const OPEN_CONNECTIONS: &str = "llm_tower_gateway_open_connections";
/// `llm_tower_gateway_connections_closed_total`.
pub const CONNECTIONS_CLOSED: &str = "llm_tower_gateway_connections_closed_total";
/// `llm_tower_gateway_accept_errors_total`.
pub const ACCEPT_ERRORS: &str = "llm_tower_gateway_accept_errors_total";

static PROMETHEUS: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Latency buckets (seconds) for the histograms whose names end in `_seconds` or
/// `duration`: from 25 µs (gateway overhead) to 5 minutes (long generations).
const SECONDS_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Token-count buckets for `gen_ai.client.token.usage`.
const TOKEN_BUCKETS: &[f64] = &[
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
];

/// The process-wide Prometheus recorder, installed as the global `metrics` recorder on
/// first call; later calls return the same handle.
///
/// A background task (on the current tokio runtime, if any) runs the recorder's upkeep.
///
/// # Errors
/// When another global recorder was installed first (the message says so).
pub fn prometheus() -> Result<PrometheusHandle, String> {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("seconds".to_owned()),
                    SECONDS_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Suffix("duration".to_owned()),
                        SECONDS_BUCKETS,
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            "gen_ai.client.token.usage".to_owned(),
                        ),
                        TOKEN_BUCKETS,
                    )
                })
                .map_err(|e| e.to_string())?;
            let handle = builder.install_recorder().map_err(|e| e.to_string())?;
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let h = handle.clone();
                rt.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        h.run_upkeep();
                    }
                });
            }
            Ok(handle)
        })
        .clone()
}

/// Installs the global `tracing` subscriber: `settings.log_level` as the filter
/// (`RUST_LOG` wins when set), human-readable or JSON lines on stderr.
///
/// # Errors
/// When the filter does not parse or a subscriber is already installed.
pub fn init_logging(settings: &Settings) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(&settings.log_level),
    }
    .map_err(|e| format!("invalid log filter: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    }
    .map_err(|e| format!("cannot install the log subscriber: {e}"))
}

/// A `status` label value for an HTTP status, without formatting.
pub(crate) fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        402 => "402",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        499 => "499",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 200 => "1xx",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}
