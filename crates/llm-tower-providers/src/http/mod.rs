//! The HTTP client all providers share: one pooled hyper-util client (HTTP/1.1 and HTTP/2,
//! rustls with the webpki roots, TCP_NODELAY), timeouts, gzip decoding, and the
//! server-sent-events plumbing that turns a response body into a [`ChatStream`].
//!
//! [`ChatStream`]: llm_tower_core::ChatStream

mod body;
pub(crate) mod stream;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use llm_tower_core::{Error, ErrorKind, SharedClock};

use crate::error_map;

pub(crate) use body::{BodyReader, collect_body};

/// The default largest response body: 32 MiB, far above any chat completion and room for
/// a large batch of base64 embeddings.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

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
    /// Largest response body accepted, after decompression (default
    /// [`DEFAULT_MAX_BODY_BYTES`], 32 MiB). A non-streamed body that declares a larger
    /// `content-length` fails with `Transport` before a byte is read, and the buffer never
    /// grows past it; a gzip body, streamed or not, fails as soon as its decoded size passes
    /// it; a stream's events are also bounded by the SSE decoder's event size.
    pub max_body_bytes: usize,
    /// A bound on the bytes buffered from upstream bodies at once, shared by every client
    /// built with a clone of it (default none: each body is bounded only by
    /// `max_body_bytes`).
    pub buffer_budget: Option<BufferBudget>,
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
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            buffer_budget: None,
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

    /// Shares a bound on the bytes buffered from upstream bodies at once.
    #[must_use]
    pub fn buffer_budget(mut self, budget: BufferBudget) -> Self {
        self.buffer_budget = Some(budget);
        self
    }

    /// Sets the `user-agent` header.
    #[must_use]
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }
}

/// A bound on the bytes that all clients sharing it buffer from upstream bodies at once.
///
/// Every [`HttpClient`] built with the same budget (see [`HttpConfig::buffer_budget`])
/// takes room from it while it collects a non-streamed response body and gives it back
/// when the body is parsed or dropped. A body that would push the total past the bound
/// fails with `Transport` instead of growing, so a few hostile upstreams answering huge
/// bodies at once cannot take the process's memory.
///
/// ```
/// use llm_tower_providers::http::BufferBudget;
///
/// let budget = BufferBudget::new(64 * 1024 * 1024);
/// assert_eq!(budget.limit(), 64 * 1024 * 1024);
/// assert_eq!(budget.in_use(), 0);
/// ```
#[derive(Clone)]
pub struct BufferBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    limit: usize,
    used: AtomicUsize,
}

impl fmt::Debug for BufferBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferBudget")
            .field("limit", &self.inner.limit)
            .field("in_use", &self.in_use())
            .finish()
    }
}

impl PartialEq for BufferBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for BufferBudget {}

impl BufferBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> BufferBudget {
        BufferBudget {
            inner: Arc::new(BudgetInner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The bound in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes taken right now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Takes `n` more bytes, or `false` when that would pass the limit.
    fn try_take(&self, n: usize) -> bool {
        let limit = self.inner.limit;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        let _ = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// Room taken from a [`BufferBudget`], given back on drop.
pub(crate) struct BudgetHold {
    budget: Option<BufferBudget>,
    held: usize,
}

impl BudgetHold {
    pub(crate) fn new(budget: Option<BufferBudget>) -> BudgetHold {
        BudgetHold { budget, held: 0 }
    }

    /// Makes sure at least `total` bytes are held.
    pub(crate) fn grow_to(&mut self, total: usize) -> Result<(), Error> {
        let Some(b) = &self.budget else {
            return Ok(());
        };
        if total <= self.held {
            return Ok(());
        }
        let more = total - self.held;
        if !b.try_take(more) {
            return Err(Error::new(
                ErrorKind::Transport,
                format!(
                    "upstream response bodies buffered at once would pass the gateway-wide \
                     bound of {} bytes (max_upstream_buffer_bytes); try again later",
                    b.limit()
                ),
            ));
        }
        self.held = total;
        Ok(())
    }
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.held);
        }
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
