//! AWS credentials: explicit, from `AWS_*` environment variables, or from a profile of the
//! shared credentials file (re-read when the file changes), or from a closure; and SigV4
//! signing of requests with them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::Full;
use llm_tower_core::Error;

use crate::secret::Secret;

/// AWS credentials: an access key id, its secret, and an optional session token.
///
/// `Debug` shows the access key id (an identifier, not a secret) and never the secret key
/// or the token.
///
/// ```
/// use llm_tower_providers::bedrock::AwsCredentials;
///
/// let c = AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG").session_token("tok");
/// assert!(!format!("{c:?}").contains("wJalr"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// The access key id (`AKIA...`, `ASIA...`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

impl AwsCredentials {
    /// Credentials from an access key id and a secret access key.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<Secret>) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Adds a session token (temporary credentials).
    #[must_use]
    pub fn session_token(mut self, token: impl Into<Secret>) -> Self {
        let token: Secret = token.into();
        self.session_token = (!token.is_empty()).then_some(token);
        self
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, when set, `AWS_SESSION_TOKEN`.
    ///
    /// # Errors
    ///
    /// `Config` when either of the first two is unset or empty.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`from_env`](Self::from_env), with variables read through `var`.
    ///
    /// # Errors
    ///
    /// `Config` when the key id or the secret is missing.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let (Some(id), Some(secret)) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(Error::config(
                "AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set",
            ));
        };
        let mut c = AwsCredentials::new(id.trim(), secret.trim());
        if let Some(t) = get("AWS_SESSION_TOKEN") {
            c = c.session_token(t.trim());
        }
        Ok(c)
    }

    /// The credentials of `profile` (default: `AWS_PROFILE`, else `default`) in the shared
    /// credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`).
    ///
    /// # Errors
    ///
    /// `Config` when the file cannot be read or has no such profile with both keys.
    pub fn from_profile(profile: Option<&str>) -> Result<Self, Error> {
        let (path, name) = profile_location(profile)?;
        Self::from_profile_file(&path, &name)
    }

    /// A provider calling `f` for the credentials of every request (see
    /// [`AwsCredentialsProvider::from_fn`]): for credentials that rotate.
    pub fn provider<F>(f: F) -> AwsCredentialsProvider
    where
        F: Fn() -> Result<AwsCredentials, Error> + Send + Sync + 'static,
    {
        AwsCredentialsProvider::from_fn(f)
    }

    /// The credentials of `profile` in the credentials file at `path`.
    ///
    /// # Errors
    ///
    /// `Config` when the file cannot be read or has no such profile with both keys.
    pub fn from_profile_file(path: &Path, profile: &str) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "AWS credentials: cannot read {}: {e}",
                path.display()
            ))
        })?;
        Self::parse_profile(&text, profile).map_err(|e| {
            Error::config(format!(
                "AWS credentials file {}: {}",
                path.display(),
                e.message()
            ))
        })
    }

    /// The credentials of `profile` in the text of a credentials file (INI: `[name]`
    /// sections, or `[profile name]`, with `aws_access_key_id`, `aws_secret_access_key`
    /// and `aws_session_token`).
    ///
    /// # Errors
    ///
    /// `Config` when there is no such profile with both keys (never quoting a value).
    pub fn parse_profile(text: &str, profile: &str) -> Result<Self, Error> {
        let mut in_section = false;
        let mut found = false;
        let (mut id, mut secret, mut token) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest.split(']').next().unwrap_or_default().trim();
                let name = name.strip_prefix("profile ").unwrap_or(name).trim();
                in_section = name == profile;
                found |= in_section;
                continue;
            }
            if !in_section {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().to_owned();
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
        if !found {
            return Err(Error::config(format!("no profile [{profile}]")));
        }
        match (id, secret) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                let mut c = AwsCredentials::new(id, secret);
                if let Some(t) = token {
                    c = c.session_token(t);
                }
                Ok(c)
            }
            _ => Err(Error::config(format!(
                "profile [{profile}] needs aws_access_key_id and aws_secret_access_key"
            ))),
        }
    }
}

/// What a closure-backed provider calls for the current credentials.
type CredentialsFn = dyn Fn() -> Result<AwsCredentials, Error> + Send + Sync;

/// The state of a profile-file provider: the file's last seen modification time and
/// length, and the credentials read from it then.
struct FileState {
    stamp: Option<(SystemTime, u64)>,
    credentials: AwsCredentials,
}

enum Source {
    Fixed(AwsCredentials),
    ProfileFile {
        path: PathBuf,
        profile: String,
        state: Mutex<FileState>,
    },
    Fn(Box<CredentialsFn>),
}

/// Where a [`Bedrock`](super::Bedrock) provider gets the credentials it signs each request
/// with: fixed ones, a profile of the shared credentials file (re-read whenever the
/// file's modification time or length changes, so credentials that a tool such as
/// `aws sso login` or a credential-rotation job rewrites are picked up without a
/// restart), or a closure called for every request.
///
/// `Debug` shows the source, never a secret.
///
/// ```
/// use llm_tower_providers::bedrock::{AwsCredentials, AwsCredentialsProvider};
///
/// let fixed: AwsCredentialsProvider = AwsCredentials::new("AKID", "secret").into();
/// let rotating = AwsCredentials::provider(|| AwsCredentials::from_env());
/// # let _ = (fixed, rotating);
/// ```
///
/// # Clone
///
/// Clones share the source (and a profile file's cached credentials).
#[derive(Clone)]
pub struct AwsCredentialsProvider(Arc<Source>);

impl fmt::Debug for AwsCredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Source::Fixed(c) => f.debug_tuple("Fixed").field(c).finish(),
            Source::ProfileFile { path, profile, .. } => f
                .debug_struct("ProfileFile")
                .field("path", path)
                .field("profile", profile)
                .finish_non_exhaustive(),
            Source::Fn(_) => f.write_str("Fn(..)"),
        }
    }
}

impl From<AwsCredentials> for AwsCredentialsProvider {
    fn from(c: AwsCredentials) -> Self {
        AwsCredentialsProvider::fixed(c)
    }
}

/// The file's modification time and length, when it can be read.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl AwsCredentialsProvider {
    /// Always the same credentials.
    pub fn fixed(credentials: AwsCredentials) -> Self {
        AwsCredentialsProvider(Arc::new(Source::Fixed(credentials)))
    }

    /// `profile` of the credentials file at `path`, read now and again whenever the file's
    /// modification time or length changes.
    ///
    /// # Errors
    ///
    /// `Config` when the file cannot be read now or has no such profile with both keys.
    pub fn profile_file(
        path: impl Into<PathBuf>,
        profile: impl Into<String>,
    ) -> Result<Self, Error> {
        let path = path.into();
        let profile = profile.into();
        let stamp = stamp(&path);
        let credentials = AwsCredentials::from_profile_file(&path, &profile)?;
        Ok(AwsCredentialsProvider(Arc::new(Source::ProfileFile {
            path,
            profile,
            state: Mutex::new(FileState { stamp, credentials }),
        })))
    }

    /// `profile` (default: `AWS_PROFILE`, else `default`) of the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`), re-read when it
    /// changes (see [`profile_file`](Self::profile_file)).
    ///
    /// # Errors
    ///
    /// `Config` when the file cannot be found or read, or has no such profile.
    pub fn profile(profile: Option<&str>) -> Result<Self, Error> {
        let (path, name) = profile_location(profile)?;
        Self::profile_file(path, name)
    }

    /// Credentials from `f`, called before every request is signed (it should be cheap:
    /// cache inside it when it is not).
    pub fn from_fn<F>(f: F) -> Self
    where
        F: Fn() -> Result<AwsCredentials, Error> + Send + Sync + 'static,
    {
        AwsCredentialsProvider(Arc::new(Source::Fn(Box::new(f))))
    }

    /// The credentials to sign the next request with.
    ///
    /// A profile file that changed is read again; if it cannot be read or parsed (a
    /// half-written file), the previous credentials are kept and a warning is logged.
    ///
    /// # Errors
    ///
    /// Only from a closure source: its error.
    pub fn current(&self) -> Result<AwsCredentials, Error> {
        match &*self.0 {
            Source::Fixed(c) => Ok(c.clone()),
            Source::Fn(f) => f(),
            Source::ProfileFile {
                path,
                profile,
                state,
            } => {
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                let now = stamp(path);
                if now.is_some() && now != state.stamp {
                    match AwsCredentials::from_profile_file(path, profile) {
                        Ok(c) => {
                            state.credentials = c;
                            state.stamp = now;
                        }
                        Err(e) => tracing::warn!(
                            error = %e,
                            "AWS credentials file changed but cannot be read; keeping the previous credentials"
                        ),
                    }
                }
                Ok(state.credentials.clone())
            }
        }
    }

    /// The fixed credentials, when the source is fixed.
    pub(crate) fn as_fixed(&self) -> Option<&AwsCredentials> {
        match &*self.0 {
            Source::Fixed(c) => Some(c),
            _ => None,
        }
    }
}

/// The shared credentials file and the profile to read from it.
fn profile_location(profile: Option<&str>) -> Result<(PathBuf, String), Error> {
    let name = profile
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
        .unwrap_or_else(|| "default".to_owned());
    let path = credentials_file()
        .ok_or_else(|| Error::config("AWS credentials: cannot find the home directory"))?;
    Ok((path, name))
}

fn credentials_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".aws").join("credentials"))
}

/// Signs `req` (whose headers are final) with SigV4 for `service` in `region`, adding
/// `x-amz-date`, `x-amz-security-token` (when there is a session token) and
/// `authorization`.
pub(crate) fn sign_request(
    req: &mut http::Request<Full<Bytes>>,
    body: &[u8],
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), Error> {
    let identity: Identity = Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().to_owned(),
        creds.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "llm-tower",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::config(format!("SigV4 signing parameters: {e}")))?
        .into();
    let uri = req.uri().to_string();
    let instructions = {
        let headers = req
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)));
        let signable = SignableRequest::new(
            req.method().as_str(),
            uri,
            headers,
            SignableBody::Bytes(body),
        )
        .map_err(|e| Error::invalid_request(format!("cannot sign the request: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| Error::invalid_request(format!("cannot sign the request: {e}")))?
            .into_parts();
        instructions
    };
    instructions.apply_to_request_http1x(req);
    for name in ["authorization", "x-amz-security-token"] {
        if let Some(v) = req.headers_mut().get_mut(name) {
            v.set_sensitive(true);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse() {
        let text = "\
# comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = s3cr3t-default

[profile work]
aws_access_key_id=AKIDWORK
aws_secret_access_key=s3cr3t-work
aws_session_token = tok-work
[broken]
aws_access_key_id = AKIDBROKEN
";
        let d = AwsCredentials::parse_profile(text, "default").unwrap();
        assert_eq!(d.access_key_id, "AKIDDEFAULT");
        assert_eq!(d.secret_access_key.expose(), "s3cr3t-default");
        assert!(d.session_token.is_none());
        let w = AwsCredentials::parse_profile(text, "work").unwrap();
        assert_eq!(w.session_token.unwrap().expose(), "tok-work");
        let e = AwsCredentials::parse_profile(text, "broken").unwrap_err();
        assert!(e.message().contains("aws_secret_access_key"));
        assert!(!e.message().contains("AKIDBROKEN"));
        let e = AwsCredentials::parse_profile(text, "missing").unwrap_err();
        assert!(e.message().contains("no profile [missing]"));
    }

    fn write(path: &Path, text: &str, mtime_secs: u64) {
        std::fs::write(path, text).unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime_secs))
            .unwrap();
    }

    #[test]
    fn a_profile_file_is_read_again_when_it_changes() {
        let path = std::env::temp_dir().join(format!(
            "llm-tower-aws-credentials-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let creds = |id: &str, token: &str| {
            format!(
                "[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = x\n\n\
                 [work]\naws_access_key_id = {id}\naws_secret_access_key = secret-{id}\n\
                 aws_session_token = {token}\n"
            )
        };
        write(&path, &creds("ASIAFIRST", "token-1"), 1_000);
        let p = AwsCredentialsProvider::profile_file(&path, "work").unwrap();
        let c = p.current().unwrap();
        assert_eq!(c.access_key_id, "ASIAFIRST");
        assert_eq!(c.session_token.as_ref().unwrap().expose(), "token-1");
        assert!(!format!("{p:?}").contains("secret-"), "{p:?}");

        // Rotated (same length, new mtime): the next request gets the new keys.
        write(&path, &creds("ASIASECND", "token-2"), 2_000);
        let c = p.clone().current().unwrap();
        assert_eq!(c.access_key_id, "ASIASECND");
        assert_eq!(c.secret_access_key.expose(), "secret-ASIASECND");
        assert_eq!(c.session_token.unwrap().expose(), "token-2");

        // A half-written file keeps the last good credentials.
        write(&path, "[work]\naws_access_key_id = ASIATHIRD\n", 3_000);
        assert_eq!(p.current().unwrap().access_key_id, "ASIASECND");
        // Once complete, it is read.
        write(&path, &creds("ASIATHIRD", "token-3"), 4_000);
        assert_eq!(p.current().unwrap().access_key_id, "ASIATHIRD");

        // A missing file at start is an error naming the file, not the keys.
        std::fs::remove_file(&path).unwrap();
        let e = AwsCredentialsProvider::profile_file(&path, "work").unwrap_err();
        assert!(e.message().contains("cannot read"), "{}", e.message());
        // A file deleted later keeps the credentials read before.
        assert_eq!(p.current().unwrap().access_key_id, "ASIATHIRD");
    }

    #[test]
    fn a_closure_provider_is_called_for_every_request() {
        let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let m = n.clone();
        let p = AwsCredentials::provider(move || {
            let i = m.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(AwsCredentials::new(format!("AKID{i}"), "s3cr3t").session_token(format!("t{i}")))
        });
        assert_eq!(p.current().unwrap().access_key_id, "AKID0");
        assert_eq!(p.current().unwrap().access_key_id, "AKID1");
        assert_eq!(format!("{p:?}"), "Fn(..)");
        let fixed: AwsCredentialsProvider = AwsCredentials::new("AKIDFIX", "s3cr3t").into();
        assert_eq!(fixed.current().unwrap().access_key_id, "AKIDFIX");
        assert!(!format!("{fixed:?}").contains("s3cr3t"));
    }

    #[test]
    fn env_lookup() {
        let vars = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKID".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("sekret-value".to_owned()),
            "AWS_SESSION_TOKEN" => Some(String::new()),
            _ => None,
        };
        let c = AwsCredentials::from_lookup(vars).unwrap();
        assert_eq!(c.access_key_id, "AKID");
        assert!(c.session_token.is_none());
        assert!(AwsCredentials::from_lookup(|_| None).is_err());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sekret"), "{dbg}");
    }
}
