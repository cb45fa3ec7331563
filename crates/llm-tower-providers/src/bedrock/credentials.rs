//! AWS credentials: explicit, from `AWS_*` environment variables, or from a profile of the
//! shared credentials file; and SigV4 signing of requests with them.

use std::fmt;
use std::path::{Path, PathBuf};
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
        let name = profile
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "default".to_owned());
        let path = credentials_file()
            .ok_or_else(|| Error::config("AWS credentials: cannot find the home directory"))?;
        Self::from_profile_file(&path, &name)
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
