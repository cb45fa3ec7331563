//! Vertex AI credentials: a static token, a token from an environment variable or a
//! command, or a service-account key exchanged for OAuth2 access tokens (a signed RS256
//! JWT posted to the key's `token_uri`). Fetched tokens are cached and refreshed before
//! they expire, one refresh at a time.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::Method;
use http::header::CONTENT_TYPE;
use llm_tower_core::{Error, ErrorKind};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::common::Common;
use crate::secret::Secret;

/// The OAuth2 scope requested for service-account tokens.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's OAuth2 token endpoint (the default `token_uri`).
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// How long a service-account JWT asks its token to live.
const JWT_LIFETIME: u64 = 3600;
/// Tokens are refreshed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Longest wait for a token command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How the Vertex provider authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum VertexAuth {
    /// A fixed OAuth2 access token.
    AccessToken(Secret),
    /// A token read from this environment variable at every request.
    TokenEnv(String),
    /// A command that prints a token (`gcloud auth print-access-token`), run again when
    /// the token is older than `ttl`.
    TokenCommand {
        /// Program and arguments.
        argv: Vec<String>,
        /// How long a printed token is used.
        ttl: Duration,
    },
    /// A service-account key (the JSON file Google Cloud issues).
    ServiceAccount(ServiceAccountKey),
}

impl fmt::Debug for VertexAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VertexAuth::AccessToken(_) => f.write_str("AccessToken([redacted])"),
            VertexAuth::TokenEnv(v) => f.debug_tuple("TokenEnv").field(v).finish(),
            VertexAuth::TokenCommand { argv, ttl } => f
                .debug_struct("TokenCommand")
                .field("program", &argv.first())
                .field("ttl", ttl)
                .finish(),
            VertexAuth::ServiceAccount(k) => f.debug_tuple("ServiceAccount").field(k).finish(),
        }
    }
}

impl VertexAuth {
    /// A fixed access token.
    pub fn access_token(token: impl Into<Secret>) -> Self {
        VertexAuth::AccessToken(token.into())
    }

    /// A token read from an environment variable.
    pub fn token_env(var: impl Into<String>) -> Self {
        VertexAuth::TokenEnv(var.into())
    }

    /// A token printed by a command, cached for 10 minutes.
    pub fn token_command<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        VertexAuth::TokenCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            ttl: Duration::from_secs(600),
        }
    }

    /// A service-account key file.
    ///
    /// # Errors
    ///
    /// `Config` when the file cannot be read or is not a service-account key.
    pub fn service_account_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        ServiceAccountKey::from_file(path).map(VertexAuth::ServiceAccount)
    }
}

/// A Google Cloud service-account key.
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    /// The service account's e-mail (the JWT issuer).
    pub client_email: String,
    /// The key's id (the JWT `kid`).
    #[serde(default)]
    pub private_key_id: String,
    #[serde(deserialize_with = "secret_string")]
    private_key: Secret,
    /// Where tokens are requested (default [`DEFAULT_TOKEN_URI`]).
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
    /// The key's project.
    #[serde(default)]
    pub project_id: Option<String>,
}

fn default_token_uri() -> String {
    DEFAULT_TOKEN_URI.to_owned()
}

fn secret_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("private_key", &"[redacted]")
            .field("token_uri", &self.token_uri)
            .finish()
    }
}

impl ServiceAccountKey {
    /// Parses a service-account key JSON.
    ///
    /// # Errors
    ///
    /// `Config` when it is not JSON with `client_email` and a usable RSA `private_key`
    /// (the message never quotes the key).
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let key: ServiceAccountKey = serde_json::from_str(json).map_err(|e| {
            Error::config(format!(
                "service-account key: not a key JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        key.key_pair()?;
        Ok(key)
    }

    /// Reads and parses a service-account key file.
    ///
    /// # Errors
    ///
    /// `Config` when the file cannot be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("service-account key {}: {e}", path.display())))?;
        Self::from_json(&text)
            .map_err(|e| Error::config(format!("{} ({})", e.message(), path.display())))
    }

    fn key_pair(&self) -> Result<RsaKeyPair, Error> {
        let pem = self.private_key.expose();
        let (der, pkcs1) = pem_der(pem).ok_or_else(|| {
            Error::config("service-account key: private_key is not a PEM private key")
        })?;
        let kp = if pkcs1 {
            RsaKeyPair::from_der(&der)
        } else {
            RsaKeyPair::from_pkcs8(&der)
        };
        kp.map_err(|e| {
            Error::config(format!(
                "service-account key: private_key is not a usable RSA key ({e})"
            ))
        })
    }

    /// A signed JWT assertion for `aud`, issued at `iat` (Unix seconds).
    pub(crate) fn assertion(&self, aud: &str, iat: u64) -> Result<String, Error> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": CLOUD_PLATFORM_SCOPE,
            "aud": aud,
            "iat": iat,
            "exp": iat + JWT_LIFETIME,
        });
        let mut msg = b64.encode(header.to_string());
        msg.push('.');
        msg.push_str(&b64.encode(claims.to_string()));
        let kp = self.key_pair()?;
        let mut sig = vec![0u8; kp.public().modulus_len()];
        kp.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            msg.as_bytes(),
            &mut sig,
        )
        .map_err(|_| Error::config("service-account key: signing the JWT failed"))?;
        msg.push('.');
        msg.push_str(&b64.encode(sig));
        Ok(msg)
    }
}

/// The DER of the first PEM private key in `pem`, and whether it is PKCS#1
/// (`RSA PRIVATE KEY`) rather than PKCS#8.
fn pem_der(pem: &str) -> Option<(Vec<u8>, bool)> {
    let (label, rest) = if let Some(i) = pem.find("-----BEGIN PRIVATE KEY-----") {
        (
            "PRIVATE KEY",
            &pem[i + "-----BEGIN PRIVATE KEY-----".len()..],
        )
    } else {
        let i = pem.find("-----BEGIN RSA PRIVATE KEY-----")?;
        (
            "RSA PRIVATE KEY",
            &pem[i + "-----BEGIN RSA PRIVATE KEY-----".len()..],
        )
    };
    let end = rest.find(&format!("-----END {label}-----"))?;
    let b64: String = rest[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((der, label == "RSA PRIVATE KEY"))
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Cached {
    token: Secret,
    /// When to fetch a new one.
    refresh_at: Instant,
}

/// Hands out access tokens, caching fetched ones.
pub(crate) struct TokenSource {
    auth: VertexAuth,
    /// Overrides the service-account key's `token_uri` (tests).
    token_url: Option<String>,
    cache: Mutex<Option<Cached>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("auth", &self.auth)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

fn unauthorized(msg: String) -> Error {
    Error::new(ErrorKind::Unauthorized, msg)
}

impl TokenSource {
    pub fn new(auth: VertexAuth, token_url: Option<String>) -> Self {
        TokenSource {
            auth,
            token_url,
            cache: Mutex::new(None),
        }
    }

    /// A valid access token (from the cache when it is fresh enough).
    pub async fn token(&self, common: &Common) -> Result<Secret, Error> {
        match &self.auth {
            VertexAuth::AccessToken(t) => Ok(t.clone()),
            VertexAuth::TokenEnv(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
                _ => Err(unauthorized(format!(
                    "Vertex AI token: environment variable {var} is not set"
                ))),
            },
            VertexAuth::TokenCommand { argv, ttl } => {
                let ttl = *ttl;
                self.cached(common, |_| async move {
                    let token = run_command(argv).await?;
                    Ok((token, ttl))
                })
                .await
            }
            VertexAuth::ServiceAccount(key) => {
                self.cached(common, |c| async move { self.exchange(key, c).await })
                    .await
            }
        }
    }

    /// The cached token, or a new one from `fetch` (the lock is held while fetching, so
    /// concurrent callers wait for one refresh instead of starting their own).
    async fn cached<'a, F, Fut>(&'a self, common: &'a Common, fetch: F) -> Result<Secret, Error>
    where
        F: FnOnce(&'a Common) -> Fut,
        Fut: Future<Output = Result<(Secret, Duration), Error>>,
    {
        let mut slot = self.cache.lock().await;
        let now = common.clock.now();
        if let Some(c) = slot.as_ref()
            && now < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let (token, lifetime) = fetch(common).await?;
        let now = common.clock.now();
        // Refresh 5 minutes early, or halfway through a shorter lifetime.
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let refresh_at = now
            .checked_add(lifetime.saturating_sub(margin))
            .unwrap_or(now);
        *slot = Some(Cached {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    /// Exchanges a signed JWT for an access token at the token endpoint.
    async fn exchange(
        &self,
        key: &ServiceAccountKey,
        common: &Common,
    ) -> Result<(Secret, Duration), Error> {
        let aud = key.token_uri.as_str();
        let url = self.token_url.as_deref().unwrap_or(aud);
        let iat = common.clock.unix_secs();
        let jwt = key.assertion(aud, iat)?;
        // The signed assertion buys tokens for an hour: never let an error echo it.
        common.secret.remember(&Secret::new(jwt.clone()));
        let body = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
        );
        let uri = url
            .parse()
            .map_err(|_| Error::config(format!("invalid token URL {url:?}")))?;
        let t0 = common.clock.now();
        let deadline = common.deadline(t0, None);
        let mut req = common.request(Method::POST, uri, Some(body.into_bytes()), false)?;
        req.headers_mut().insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let ok = common.execute(req, &deadline).await.map_err(|e| {
            if matches!(
                e.kind(),
                ErrorKind::InvalidRequest | ErrorKind::Unauthorized
            ) {
                unauthorized(format!(
                    "Vertex AI service-account token request refused: {}",
                    e.message()
                ))
            } else {
                e
            }
        })?;
        let resp: TokenResponse = common.read_json(ok, &deadline, "token response").await?;
        if resp.access_token.is_empty() {
            return Err(unauthorized(
                "Vertex AI token endpoint returned an empty access token".to_owned(),
            ));
        }
        let lifetime = Duration::from_secs(resp.expires_in.unwrap_or(JWT_LIFETIME));
        Ok((Secret::new(resp.access_token), lifetime))
    }
}

/// Runs a token command and returns its trimmed output.
async fn run_command(argv: &[String]) -> Result<Secret, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::config("Vertex AI token command is empty"));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
        .await
        .map_err(|_| unauthorized(format!("Vertex AI token command {program:?} timed out")))?
        .map_err(|e| unauthorized(format!("Vertex AI token command {program:?}: {e}")))?;
    if !out.status.success() {
        let stderr: String = String::from_utf8_lossy(&out.stderr)
            .trim()
            .chars()
            .take(200)
            .collect();
        return Err(unauthorized(format!(
            "Vertex AI token command {program:?} failed ({}): {stderr}",
            out.status
        )));
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if token.is_empty() {
        return Err(unauthorized(format!(
            "Vertex AI token command {program:?} printed nothing"
        )));
    }
    Ok(Secret::new(token))
}
