//! The HTTP client all providers share: one pooled hyper-util client (HTTP/1.1 and HTTP/2,
//! rustls with the webpki roots, TCP_NODELAY), timeouts, gzip decoding, and the
//! server-sent-events plumbing that turns a response body into a [`ChatStream`].
//!
//! [`ChatStream`]: llm_tower_core::ChatStream

mod body;
pub(crate) mod stream;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use llm_tower_core::{Error, SharedClock};

use crate::error_map;

pub(crate) use body::{BodyReader, collect_body};

/// Settings of the shared [`HttpClient`].
///
/// ```
/// use std::time::Duration;
/// use llm_tower_providers::http::HttpConfig;
///
/// let cfg = HttpConfig::default()
///     .request_timeout(Duration::from_secs(120))
///     .stream_idle_timeout(Duration::from_secs(60));
/// assert_eq!(cfg.connect_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Time allowed to open a TCP connection (default 10 s).
    pub connect_timeout: Duration,
    /// Time allowed for a whole non-streamed request, or until the first token of a
    /// streamed one (default 600 s, as the official SDKs).
    pub request_timeout: Duration,
    /// A stream that sends no bytes for this long ends with a `Timeout` error (default 120 s).
    pub stream_idle_timeout: Duration,
    /// Idle pooled connections are closed after this long (default 90 s).
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host (default 32).
    pub pool_max_idle_per_host: usize,
    /// Largest response body accepted, after decompression (default 256 MiB). A gzip body,
    /// streamed or not, fails with `Transport` as soon as its decoded size passes it; a
    /// stream's events are also bounded by the SSE decoder's event size.
    pub max_body_bytes: usize,
    /// The `user-agent` header.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(600),
            stream_idle_timeout: Duration::from_secs(120),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 32,
            max_body_bytes: 256 * 1024 * 1024,
            user_agent: concat!("llm-tower/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpConfig {
    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets the stream idle timeout.
    #[must_use]
    pub fn stream_idle_timeout(mut self, d: Duration) -> Self {
        self.stream_idle_timeout = d;
        self
    }

    /// Sets the pool idle timeout.
    #[must_use]
    pub fn pool_idle_timeout(mut self, d: Duration) -> Self {
        self.pool_idle_timeout = d;
        self
    }

    /// Sets how many idle connections are kept per host.
    #[must_use]
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }

    /// Sets the largest accepted response body.
    #[must_use]
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Sets the `user-agent` header.
    #[must_use]
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }
}

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The pooled HTTP client shared by all providers.
///
/// # Clone
///
/// Cheap: clones share the connection pool and the configuration.
#[derive(Clone)]
pub struct HttpClient {
    client: HyperClient,
    config: Arc<HttpConfig>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with the default [`HttpConfig`].
    ///
    /// # Errors
    ///
    /// `Config` if the TLS configuration cannot be built.
    pub fn new() -> Result<Self, Error> {
        HttpClient::with_config(HttpConfig::default())
    }

    /// A client with the given settings.
    ///
    /// TLS uses the process-wide rustls `CryptoProvider` when the application installed
    /// one (`CryptoProvider::install_default`, for example aws-lc-rs for post-quantum key
    /// exchange), else *ring*, the provider this crate builds.
    ///
    /// # Errors
    ///
    /// `Config` if the TLS configuration cannot be built.
    pub fn with_config(config: HttpConfig) -> Result<Self, Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let provider = crypto_provider();
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("TLS configuration: {e}")))?
            .with_webpki_roots()
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(HttpClient {
            client,
            config: Arc::new(config),
        })
    }

    /// The client's settings.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Sends a request and waits for the response head, failing at `deadline`.
    pub(crate) async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        deadline: &Deadline,
        clock: &SharedClock,
    ) -> Result<http::Response<Incoming>, Error> {
        let fut = self.client.request(req);
        deadline
            .run(clock, async move {
                fut.await.map_err(|e| error_map::transport(&e))
            })
            .await
    }
}

/// When a request must be done: the earlier of the request timeout and the caller's deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// `None` when there is none: a timeout too long to be represented as an [`Instant`]
    /// and no caller deadline.
    pub at: Option<Instant>,
    timeout: Option<Duration>,
}

impl Deadline {
    /// `now + timeout`, or the caller's deadline when that is earlier.
    pub fn new(now: Instant, timeout: Duration, caller: Option<Instant>) -> Deadline {
        let by_timeout = now.checked_add(timeout);
        match (by_timeout, caller) {
            (Some(t), Some(c)) if c < t => Deadline {
                at: Some(c),
                timeout: None,
            },
            (Some(t), _) => Deadline {
                at: Some(t),
                timeout: Some(timeout),
            },
            (None, Some(c)) => Deadline {
                at: Some(c),
                timeout: None,
            },
            (None, None) => Deadline {
                at: None,
                timeout: Some(timeout),
            },
        }
    }

    /// Only the caller's deadline (streams: the request timeout no longer applies once
    /// the first token arrived).
    pub fn caller(at: Instant) -> Deadline {
        Deadline {
            at: Some(at),
            timeout: None,
        }
    }

    /// The `Timeout` error for this deadline.
    pub fn error(&self) -> Error {
        match self.timeout {
            Some(t) => Error::timeout(format!(
                "request timed out after {}",
                error_map::fmt_duration(t)
            )),
            None => Error::timeout("the request deadline passed"),
        }
    }

    /// Runs `fut`, failing with [`Deadline::error`] once the deadline passes.
    pub async fn run<T, F>(&self, clock: &SharedClock, fut: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let Some(at) = self.at else {
            return fut.await;
        };
        if clock.now() >= at {
            return Err(self.error());
        }
        let sleep = clock.sleep_until(at);
        tokio::select! {
            biased;
            r = fut => r,
            () = sleep => Err(self.error()),
        }
    }
}

/// The application's process-wide rustls provider, else *ring*.
///
/// rustls 0.23.48 deprecates `crypto::ring::default_provider` because *ring* has no
/// post-quantum key exchange. Its replacement, aws-lc-rs, needs a C toolchain (cmake) to
/// build, so this crate keeps *ring* as its fallback and takes whatever provider the
/// application installed first: installing aws-lc-rs's provider is how an application
/// gets post-quantum key exchange here.
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    match rustls::crypto::CryptoProvider::get_default() {
        Some(installed) => installed.clone(),
        None => {
            #[allow(deprecated)]
            let ring = rustls::crypto::ring::default_provider();
            Arc::new(ring)
        }
    }
}
