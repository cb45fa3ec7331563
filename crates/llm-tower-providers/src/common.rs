//! Plumbing every provider shares: building requests, sending them under a deadline,
//! parsing rate-limit headers and mapping error responses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::Full;
use llm_tower_core::{
    Error, ErrorKind, LlmResponse, ProviderLimits, ResponseBody, ResponseMeta, SharedClock,
    TokioClock,
};
use serde::de::DeserializeOwned;

use crate::error_map::{self, HttpFailure};
use crate::headers;
use crate::http::stream::{SseChatStream, StreamParser, first_token, prepend};
use crate::http::{BodyReader, Deadline, HttpClient, collect_body};
use crate::secret::{Secret, Secrets};

/// Error bodies are read up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Which rate-limit headers a provider sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHeaders {
    /// `x-ratelimit-*` with Go durations.
    OpenAi,
    /// `anthropic-ratelimit-*` with RFC 3339 timestamps.
    Anthropic,
    /// None (Google sends no rate-limit headers).
    None,
}

/// What every provider holds.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub name: Arc<str>,
    pub http: HttpClient,
    pub clock: SharedClock,
    pub timeout: Duration,
    pub limit_headers: LimitHeaders,
    /// Base headers sent with every request (auth, version, organization, ...).
    pub headers: HeaderMap,
    /// The key and every other secret header value, scrubbed from provider messages.
    pub secret: Secrets,
}

/// A sent request's successful response head and body.
pub(crate) struct Success {
    pub body: BodyReader,
    pub limits: Option<ProviderLimits>,
}

impl Common {
    /// The response meta: this provider, the model that answered (the requested one when
    /// the response names none), latency since `t0`, and the provider's limits.
    pub(crate) fn meta(
        &self,
        model: String,
        requested: &str,
        t0: Instant,
        limits: Option<ProviderLimits>,
    ) -> ResponseMeta {
        let mut meta = ResponseMeta::default();
        meta.provider = Some(self.name.clone());
        meta.model = Some(if model.is_empty() {
            requested.to_owned()
        } else {
            model
        });
        meta.latency = self.clock.now().saturating_duration_since(t0);
        meta.provider_limits = limits;
        meta
    }

    pub fn new(
        name: &str,
        http: HttpClient,
        clock: Option<SharedClock>,
        timeout: Option<Duration>,
        limit_headers: LimitHeaders,
        headers: HeaderMap,
        secrets: impl IntoIterator<Item = Secret>,
    ) -> Common {
        let timeout = timeout.unwrap_or(http.config().request_timeout);
        Common {
            name: Arc::from(name),
            http,
            clock: clock.unwrap_or_else(TokioClock::shared),
            timeout,
            limit_headers,
            headers,
            secret: Secrets::new(secrets),
        }
    }

    /// The deadline of a request starting now.
    pub fn deadline(&self, now: Instant, caller: Option<Instant>) -> Deadline {
        Deadline::new(now, self.timeout, caller)
    }

    /// A request with the base headers, and a JSON body when given.
    pub fn request(
        &self,
        method: Method,
        uri: Uri,
        body: Option<Vec<u8>>,
        stream: bool,
    ) -> Result<http::Request<Full<Bytes>>, Error> {
        let has_body = body.is_some();
        let mut req = http::Request::new(Full::new(body.map(Bytes::from).unwrap_or_default()));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.reserve(self.headers.len() + 4);
        for (k, v) in &self.headers {
            h.append(k.clone(), v.clone());
        }
        if has_body {
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if stream {
            h.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        } else {
            h.insert(ACCEPT, HeaderValue::from_static("application/json"));
            h.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if !h.contains_key(USER_AGENT)
            && let Ok(ua) = HeaderValue::from_str(&self.http.config().user_agent)
        {
            h.insert(USER_AGENT, ua);
        }
        Ok(req)
    }

    fn limits(&self, headers: &HeaderMap) -> Option<ProviderLimits> {
        match self.limit_headers {
            LimitHeaders::OpenAi => headers::openai_limits(headers),
            LimitHeaders::Anthropic => headers::anthropic_limits(headers, self.clock.system_now()),
            LimitHeaders::None => None,
        }
    }

    /// Sends the request; a non-2xx status becomes the mapped error (body read under the
    /// deadline).
    pub async fn execute(
        &self,
        req: http::Request<Full<Bytes>>,
        deadline: &Deadline,
    ) -> Result<Success, Error> {
        let wants_sse = req
            .headers()
            .get(ACCEPT)
            .is_some_and(|v| v.as_bytes() == b"text/event-stream");
        let resp = self.http.send(req, deadline, &self.clock).await?;
        let (parts, body) = resp.into_parts();
        let limits = self.limits(&parts.headers);
        if parts.status.is_success() {
            let max = self.http.config().max_body_bytes;
            let body = BodyReader::new(body, &parts.headers, max)?;
            if wants_sse
                && let Some(ct) = parts.headers.get(CONTENT_TYPE)
                && !ct
                    .as_bytes()
                    .get(..17)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"text/event-stream"))
            {
                return Err(self.not_sse(ct, body, deadline).await);
            }
            return Ok(Success { body, limits });
        }
        // Read the error body, but never let a slow or broken one hide the status.
        let bytes = match BodyReader::new(body, &parts.headers, MAX_ERROR_BODY) {
            Ok(reader) => deadline
                .run(&self.clock, collect_body(reader, MAX_ERROR_BODY, None))
                .await
                .unwrap_or_default(),
            Err(_) => Bytes::new(),
        };
        Err(HttpFailure {
            status: parts.status,
            headers: &parts.headers,
            body: &bytes,
            limits,
            now: self.clock.system_now(),
            secret: Some(&self.secret),
        }
        .into_error())
    }

    /// The error for a streaming request answered with something other than
    /// `text/event-stream`: names the content type and quotes the start of the body.
    async fn not_sse(
        &self,
        content_type: &HeaderValue,
        body: BodyReader,
        deadline: &Deadline,
    ) -> Error {
        let ct: String = String::from_utf8_lossy(content_type.as_bytes())
            .chars()
            .take(80)
            .collect();
        let bytes = deadline
            .run(&self.clock, collect_body(body, MAX_ERROR_BODY, None))
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let excerpt: String = text.chars().take(200).collect();
        let more = if text.chars().nth(200).is_some() {
            "..."
        } else {
            ""
        };
        let excerpt = self.secret.redact_in(&excerpt);
        Error::new(
            ErrorKind::Provider { status: 502 },
            format!(
                "the upstream answered {ct} to a streaming request (expected text/event-stream): {excerpt}{more}"
            ),
        )
        .with_provider(self.name.clone())
    }

    /// A streamed answer over server-sent events: the body parsed by `parser` into a
    /// `ChatStream` (idle timeout, caller's deadline), waited on until its first token
    /// under `deadline` (so errors before any output fail the call, where retry can act),
    /// with the response meta filled in: the model the stream names, the latency to the
    /// response head, the time to the first token. `t0` is when the call started;
    /// `requested` is the model the request named.
    pub async fn sse_answer<P: StreamParser>(
        &self,
        ok: Success,
        parser: P,
        t0: Instant,
        requested: &str,
        deadline: &Deadline,
        caller: Option<Instant>,
    ) -> Result<LlmResponse, Error> {
        let clock = &self.clock;
        let latency = clock.now().saturating_duration_since(t0);
        let stream = SseChatStream::new(
            ok.body,
            parser,
            clock.clone(),
            self.name.clone(),
            self.http.config().stream_idle_timeout,
            caller.map(Deadline::caller),
        );
        let (buffered, first_at, rest) = first_token(stream, deadline, clock).await?;
        let model = buffered
            .iter()
            .map(|c| c.model.as_str())
            .find(|m| !m.is_empty())
            .unwrap_or_default()
            .to_owned();
        let mut out = LlmResponse::new(ResponseBody::Stream(prepend(buffered, rest)));
        out.meta = self.meta(model, requested, t0, ok.limits);
        out.meta.latency = latency;
        out.meta.time_to_first_token = first_at.map(|t| t.saturating_duration_since(t0));
        Ok(out)
    }

    /// Reads a whole successful body under the deadline and parses it as JSON.
    pub async fn read_json<T: DeserializeOwned>(
        &self,
        success: Success,
        deadline: &Deadline,
        what: &str,
    ) -> Result<T, Error> {
        let cfg = self.http.config();
        let bytes = deadline
            .run(
                &self.clock,
                collect_body(success.body, cfg.max_body_bytes, cfg.buffer_budget.clone()),
            )
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| error_map::invalid_body(what, &e))
    }

    /// A GET that must answer 2xx (health checks); the body is drained and ignored.
    pub async fn get_ok(&self, uri: Uri) -> Result<(), Error> {
        let now = self.clock.now();
        let deadline = self.deadline(now, None);
        let req = self.request(Method::GET, uri, None, false)?;
        let ok = self.execute(req, &deadline).await?;
        deadline
            .run(
                &self.clock,
                collect_body(ok.body, self.http.config().max_body_bytes, None),
            )
            .await?;
        Ok(())
    }
}

/// Parses a base URL (`https://host/v1`) into a string without a trailing slash.
pub(crate) fn base_url(url: &str, what: &str) -> Result<String, Error> {
    let trimmed = url.trim().trim_end_matches('/');
    let uri: Uri = trimmed
        .parse()
        .map_err(|_| Error::config(format!("{what}: invalid URL {trimmed:?}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(trimmed.to_owned()),
        _ => Err(Error::config(format!(
            "{what}: expected an http:// or https:// URL, got {trimmed:?}"
        ))),
    }
}

/// `base + path` as a URI.
pub(crate) fn join(base: &str, path: &str) -> Result<Uri, Error> {
    let s = format!("{base}{path}");
    s.parse()
        .map_err(|_| Error::config(format!("invalid URL {s:?}")))
}

/// A non-secret header from configuration.
pub(crate) fn plain_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::config(format!("invalid header name {name:?}")))?;
    let v = HeaderValue::from_str(value)
        .map_err(|_| Error::config(format!("invalid value for header {name:?}")))?;
    Ok((n, v))
}

/// A secret header from configuration (marked sensitive).
pub(crate) fn secret_header(
    name: &str,
    prefix: &str,
    secret: &Secret,
) -> Result<(HeaderName, HeaderValue), Error> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::config(format!("invalid header name {name:?}")))?;
    Ok((n, secret.header_value(prefix)?))
}
