//! Microsoft Entra ID access tokens for Azure OpenAI: fetched with the client-credentials
//! grant or printed by a command, cached, and refreshed before they expire. Concurrent
//! callers wait for one fetch (single flight).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderValue, Method, Uri};
use http_body_util::Full;
use llm_tower_core::{Error, ErrorKind, SharedClock};
use serde::Deserialize;
use serde_json::Value;

use crate::error_map::{self, HttpFailure};
use crate::http::{BodyReader, Deadline, HttpClient, collect_body};
use crate::secret::{Secret, Secrets};

/// The scope of Azure OpenAI (Cognitive Services) tokens.
pub const COGNITIVE_SERVICES_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// A token is refreshed this long before it expires (or at half its lifetime, if shorter).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How long a token printed bare by a command is used (it says nothing of its expiry).
pub const COMMAND_TOKEN_TTL: Duration = Duration::from_secs(600);
/// Time allowed for one token fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest token response read.
const MAX_TOKEN_BODY: usize = 64 * 1024;

enum Kind {
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
        token_url: String,
        scope: String,
    },
    Command(Vec<String>),
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
    expires_at: Instant,
}

struct Inner {
    kind: Kind,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

/// A source of Entra ID bearer tokens: the client-credentials grant of an app
/// registration, or a command (such as `az account get-access-token --resource
/// https://cognitiveservices.azure.com -o json`) that prints a token or the JSON of `az`.
///
/// `Debug` never shows the client secret or a token.
///
/// # Clone
///
/// Clones share the cached token.
#[derive(Clone)]
pub struct EntraTokenSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for EntraTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.kind {
            Kind::ClientCredentials {
                client_id,
                token_url,
                ..
            } => f
                .debug_struct("EntraTokenSource::ClientCredentials")
                .field("client_id", client_id)
                .field("token_url", token_url)
                .finish_non_exhaustive(),
            Kind::Command(argv) => f
                .debug_struct("EntraTokenSource::Command")
                .field("program", &argv.first())
                .finish_non_exhaustive(),
        }
    }
}

/// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
pub fn token_url_for_tenant(tenant_id: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token")
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<Value>,
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl EntraTokenSource {
    fn with(kind: Kind) -> Self {
        EntraTokenSource {
            inner: Arc::new(Inner {
                kind,
                cache: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// The client-credentials grant of an app registration in `tenant_id`, for the
    /// Cognitive Services scope.
    pub fn client_credentials(
        tenant_id: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self::client_credentials_at(token_url_for_tenant(tenant_id), client_id, client_secret)
    }

    /// The client-credentials grant against a given token URL (tests, sovereign clouds).
    pub fn client_credentials_at(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Self {
        Self::with(Kind::ClientCredentials {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            token_url: token_url.into(),
            scope: COGNITIVE_SERVICES_SCOPE.to_owned(),
        })
    }

    /// A command (program and arguments, no shell) whose standard output is a token, or
    /// JSON with `accessToken` (or `access_token`) and `expires_on` (Unix seconds) or
    /// `expires_in`.
    pub fn command(argv: Vec<String>) -> Self {
        Self::with(Kind::Command(argv))
    }

    /// The client secret, to be scrubbed from errors.
    pub(crate) fn secrets(&self) -> Vec<Secret> {
        match &self.inner.kind {
            Kind::ClientCredentials { client_secret, .. } => vec![client_secret.clone()],
            Kind::Command(_) => Vec::new(),
        }
    }

    /// A valid token: the cached one, or a new one when it is due for refresh.
    ///
    /// # Errors
    ///
    /// `Unauthorized` when the token endpoint refuses, `Transport`/`Timeout` when it
    /// cannot be reached, `Config` when the command fails.
    pub(crate) async fn token(
        &self,
        http: &HttpClient,
        clock: &SharedClock,
    ) -> Result<Secret, Error> {
        let mut cache = self.inner.cache.lock().await;
        let now = clock.now();
        if let Some(c) = cache.as_ref()
            && now < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fetched = self.fetch(http, clock).await;
        match fetched {
            Ok((token, lifetime)) => {
                let margin = REFRESH_MARGIN.min(lifetime / 2);
                let now = clock.now();
                *cache = Some(Cached {
                    token: token.clone(),
                    refresh_at: now + lifetime.saturating_sub(margin),
                    expires_at: now + lifetime,
                });
                Ok(token)
            }
            // A refresh that fails while the old token is still valid keeps it.
            Err(e) => match cache.as_ref() {
                Some(c) if clock.now() < c.expires_at => {
                    tracing::warn!(error = %e, "Entra token refresh failed; the current token is still valid");
                    Ok(c.token.clone())
                }
                _ => Err(e),
            },
        }
    }

    async fn fetch(
        &self,
        http: &HttpClient,
        clock: &SharedClock,
    ) -> Result<(Secret, Duration), Error> {
        match &self.inner.kind {
            Kind::ClientCredentials {
                client_id,
                client_secret,
                token_url,
                scope,
            } => {
                let body = format!(
                    "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
                    form_encode(client_id),
                    form_encode(client_secret.expose()),
                    form_encode(scope)
                );
                let uri: Uri = token_url.parse().map_err(|_| {
                    Error::config(format!("Entra token URL: invalid URL {token_url:?}"))
                })?;
                let mut req = http::Request::new(Full::new(Bytes::from(body)));
                *req.method_mut() = Method::POST;
                *req.uri_mut() = uri;
                req.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                req.headers_mut()
                    .insert(ACCEPT, HeaderValue::from_static("application/json"));
                let deadline = Deadline::new(clock.now(), FETCH_TIMEOUT, None);
                let resp = http.send(req, &deadline, clock).await?;
                let (parts, body) = resp.into_parts();
                let reader = BodyReader::new(body, &parts.headers, MAX_TOKEN_BODY)?;
                let bytes = deadline
                    .run(clock, collect_body(reader, MAX_TOKEN_BODY, None))
                    .await?;
                let secrets = Secrets::new([client_secret.clone()]);
                if !parts.status.is_success() {
                    let e = HttpFailure {
                        status: parts.status,
                        headers: &parts.headers,
                        body: &bytes,
                        limits: None,
                        now: clock.system_now(),
                        secret: Some(&secrets),
                    }
                    .into_error();
                    let kind = match parts.status.as_u16() {
                        400 | 401 | 403 => ErrorKind::Unauthorized,
                        _ => e.kind(),
                    };
                    return Err(Error::new(
                        kind,
                        format!("Entra token request failed: {}", e.message()),
                    ));
                }
                let t: TokenResponse = serde_json::from_slice(&bytes)
                    .map_err(|e| error_map::invalid_body("Entra token response", &e))?;
                if t.access_token.is_empty() {
                    return Err(Error::new(
                        ErrorKind::Unauthorized,
                        "Entra token response without an access_token",
                    ));
                }
                let secs = t.expires_in.as_ref().and_then(as_u64).unwrap_or(3600);
                Ok((Secret::new(t.access_token), Duration::from_secs(secs)))
            }
            Kind::Command(argv) => run_command(argv, clock).await,
        }
    }
}

async fn run_command(argv: &[String], clock: &SharedClock) -> Result<(Secret, Duration), Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::config("Entra token command: empty command"));
    };
    let out = tokio::time::timeout(
        FETCH_TIMEOUT,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| Error::timeout(format!("Entra token command {program:?} timed out")))?
    .map_err(|e| Error::config(format!("Entra token command {program:?}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = error_map::clean_message(err.trim(), None);
        return Err(Error::new(
            ErrorKind::Unauthorized,
            format!(
                "Entra token command {program:?} failed ({}): {err}",
                out.status
            ),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let text = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(text)
        && v.is_object()
    {
        let token = v
            .get("accessToken")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthorized,
                    format!("Entra token command {program:?} printed JSON without accessToken"),
                )
            })?;
        let lifetime = if let Some(on) = v
            .get("expires_on")
            .or_else(|| v.get("expiresOn").filter(|x| x.is_number()))
            .and_then(as_u64)
        {
            let now = clock
                .system_now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            Duration::from_secs(on.saturating_sub(now))
        } else if let Some(secs) = v.get("expires_in").and_then(as_u64) {
            Duration::from_secs(secs)
        } else {
            COMMAND_TOKEN_TTL
        };
        return Ok((Secret::new(token), lifetime));
    }
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err(Error::new(
            ErrorKind::Unauthorized,
            format!("Entra token command {program:?} printed no token"),
        ));
    }
    Ok((Secret::new(text), COMMAND_TOKEN_TTL))
}
