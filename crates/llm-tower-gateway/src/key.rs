//! Keys over `http::Request`: which key an HTTP request is rate-limited under, and the
//! key it authenticates with (`Authorization: Bearer` or `x-api-key`).
//!
//! [`HttpKeyExtractor`] is the HTTP twin of
//! [`KeyExtractor`](llm_tower_layers::rate_limit::KeyExtractor): the
//! [`HttpRateLimitLayer`](crate::http_limit::HttpRateLimitLayer) asks it for the key of
//! each request. Built in: [`Header`] (a header's value, e.g. `x-api-user`), [`PeerIp`]
//! (the client's address), [`Global`] (one key for all), and any
//! `Fn(&HeaderMap) -> Option<String>` closure.
//!
//! Do not rate-limit by a secret (an API key): keys appear in logs and store keys. Map a
//! secret to a caller name first (the gateway authenticates and limits by the key's name).

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, Request};

/// Picks the key an HTTP request is limited under; `None` lets the request pass unlimited.
pub trait HttpKeyExtractor: Send + Sync + 'static {
    /// The key of `req`.
    fn extract<'a, B>(&self, req: &'a Request<B>) -> Option<Cow<'a, str>>;
}

/// One limit for every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Global;

impl HttpKeyExtractor for Global {
    fn extract<'a, B>(&self, _req: &'a Request<B>) -> Option<Cow<'a, str>> {
        Some(Cow::Borrowed(""))
    }
}

/// The value of a header (requests without it, or with a non-UTF-8 or empty value, are
/// not limited by this key; combine with a [`Global`] limit to bound them too).
#[derive(Debug, Clone)]
pub struct Header(pub HeaderName);

impl Header {
    /// Keys by the header `name` (e.g. `x-api-user`).
    pub fn new(name: HeaderName) -> Self {
        Header(name)
    }
}

impl HttpKeyExtractor for Header {
    fn extract<'a, B>(&self, req: &'a Request<B>) -> Option<Cow<'a, str>> {
        req.headers()
            .get(&self.0)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(Cow::Borrowed)
    }
}

/// The peer's IP address, from the [`ConnectInfo<SocketAddr>`] extension that the gateway's
/// server (and `axum::serve` with `into_make_service_with_connect_info`) inserts.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerIp;

impl HttpKeyExtractor for PeerIp {
    fn extract<'a, B>(&self, req: &'a Request<B>) -> Option<Cow<'a, str>> {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| Cow::Owned(c.0.ip().to_string()))
    }
}

impl<F> HttpKeyExtractor for F
where
    F: Fn(&HeaderMap) -> Option<String> + Send + Sync + 'static,
{
    fn extract<'a, B>(&self, req: &'a Request<B>) -> Option<Cow<'a, str>> {
        self(req.headers()).map(Cow::Owned)
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive),
/// `None` when there is none.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// `x-api-key`: the header Anthropic's API (and its SDKs, and Claude Code) send the key in.
pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The value of an `x-api-key` header (trimmed), `None` when there is none or it is empty.
pub fn api_key_token(headers: &HeaderMap) -> Option<&str> {
    let token = headers.get(X_API_KEY)?.to_str().ok()?.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(AUTHORIZATION, "Bearer sk-1".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("sk-1"));
        h.insert(AUTHORIZATION, "bearer  sk-2 ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("sk-2"));
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
        h.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }

    #[test]
    fn x_api_keys() {
        let mut h = HeaderMap::new();
        assert_eq!(api_key_token(&h), None);
        h.insert(X_API_KEY, " sk-1 ".parse().unwrap());
        assert_eq!(api_key_token(&h), Some("sk-1"));
        h.insert(X_API_KEY, "".parse().unwrap());
        assert_eq!(api_key_token(&h), None);
    }

    #[test]
    fn header_and_closure_keys() {
        let req = Request::builder()
            .header("x-api-user", "alice")
            .body(())
            .unwrap();
        let k = Header::new(HeaderName::from_static("x-api-user"));
        assert_eq!(k.extract(&req).as_deref(), Some("alice"));
        let f = |h: &HeaderMap| h.get("x-api-user").map(|_| "team".to_owned());
        assert_eq!(f.extract(&req).as_deref(), Some("team"));
        let none = Request::builder().body(()).unwrap();
        assert_eq!(k.extract(&none), None);
        assert_eq!(Global.extract(&none).as_deref(), Some(""));
    }
}
