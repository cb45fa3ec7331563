//! Parsing of providers' rate-limit and retry headers into [`ProviderLimits`] and durations.
//!
//! - OpenAI and Azure OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, where
//!   resets are Go-style durations (`6m0s`, `1.5s`, `20ms`, `1h2m3.5s`).
//! - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
//!   where resets are RFC 3339 timestamps, turned into a duration relative to "now".
//! - `retry-after-ms` (milliseconds) and `retry-after` (seconds or an HTTP date).
//!
//! Every function is total: a malformed or absurd header is ignored, never a panic.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use llm_tower_core::{LimitState, ProviderLimits};

/// Durations parsed from headers are capped at one day.
const MAX_HEADER_DURATION: Duration = Duration::from_secs(86_400);

/// Parses a Go-style duration such as `6m0s`, `1.5s`, `20ms`, `1h2m3.5s`, `250us`.
///
/// A bare number is taken as seconds. Negative, empty or malformed values give `None`;
/// huge values saturate at one day.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" if next.is_empty() && rest.len() == s.len() => 1_000_000_000,
            _ => return None,
        };
        total_nanos = total_nanos.saturating_add(decimal_times(num, unit_nanos)?);
        rest = next;
    }
    Some(nanos_to_duration(total_nanos))
}

/// `num` (digits with an optional fraction) times `unit` nanoseconds.
fn decimal_times(num: &str, unit: u128) -> Option<u128> {
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let mut value: u128 = 0;
    for b in int.bytes() {
        value = value
            .saturating_mul(10)
            .saturating_add(u128::from(b - b'0'));
    }
    let mut nanos = value.saturating_mul(unit);
    // Fraction: at most 18 digits matter at nanosecond precision.
    let mut scale: u128 = 1;
    let mut frac_value: u128 = 0;
    for b in frac.bytes().take(18) {
        frac_value = frac_value * 10 + u128::from(b - b'0');
        scale *= 10;
    }
    nanos = nanos.saturating_add(frac_value.saturating_mul(unit) / scale);
    Some(nanos)
}

fn nanos_to_duration(nanos: u128) -> Duration {
    let max = MAX_HEADER_DURATION.as_nanos();
    let n = nanos.min(max);
    let secs = u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(n % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, sub)
}

/// The time from `now` until an RFC 3339 timestamp (`2026-01-01T00:00:30Z`); zero when it
/// is in the past, `None` when malformed.
pub fn parse_rfc3339_reset(s: &str, now: SystemTime) -> Option<Duration> {
    let at = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    let at = SystemTime::from(at);
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HEADER_DURATION),
    )
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.parse().ok()
}

fn non_empty(state: LimitState) -> Option<LimitState> {
    if state.is_empty() { None } else { Some(state) }
}

fn finish(limits: ProviderLimits) -> Option<ProviderLimits> {
    if limits.is_empty() {
        None
    } else {
        Some(limits)
    }
}

/// OpenAI / Azure OpenAI `x-ratelimit-*` headers; `None` when there are none.
pub fn openai_limits(headers: &HeaderMap) -> Option<ProviderLimits> {
    let dim = |what: &str| {
        non_empty(LimitState {
            limit: header_u64(headers, &format!("x-ratelimit-limit-{what}")),
            remaining: header_u64(headers, &format!("x-ratelimit-remaining-{what}")),
            reset: header_str(headers, &format!("x-ratelimit-reset-{what}"))
                .and_then(parse_go_duration),
        })
    };
    finish(ProviderLimits {
        requests: dim("requests"),
        tokens: dim("tokens"),
        input_tokens: None,
        output_tokens: None,
    })
}

/// Anthropic `anthropic-ratelimit-*` headers, resets relative to `now`; `None` when there
/// are none.
pub fn anthropic_limits(headers: &HeaderMap, now: SystemTime) -> Option<ProviderLimits> {
    let dim = |what: &str| {
        non_empty(LimitState {
            limit: header_u64(headers, &format!("anthropic-ratelimit-{what}-limit")),
            remaining: header_u64(headers, &format!("anthropic-ratelimit-{what}-remaining")),
            reset: header_str(headers, &format!("anthropic-ratelimit-{what}-reset"))
                .and_then(|s| parse_rfc3339_reset(s, now)),
        })
    };
    finish(ProviderLimits {
        requests: dim("requests"),
        tokens: dim("tokens"),
        input_tokens: dim("input-tokens"),
        output_tokens: dim("output-tokens"),
    })
}

/// `retry-after-ms` (preferred), else `retry-after` as seconds (fractions allowed) or an
/// HTTP date relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(parse_non_negative) {
        return Some(nanos_to_duration(ms.saturating_mul(1_000_000)));
    }
    let v = header_str(headers, "retry-after")?;
    if let Some(n) = parse_seconds(v) {
        return Some(n);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HEADER_DURATION),
    )
}

/// Digits with an optional fraction, truncated to an integer.
fn parse_non_negative(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    decimal_times(s, 1)
}

fn parse_seconds(s: &str) -> Option<Duration> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    decimal_times(s, 1_000_000_000).map(nanos_to_duration)
}

/// When the provider sent no `retry-after`, the longest reset among exhausted limits
/// (`remaining == 0`).
pub fn exhausted_reset(limits: &ProviderLimits) -> Option<Duration> {
    [
        limits.requests,
        limits.tokens,
        limits.input_tokens,
        limits.output_tokens,
    ]
    .into_iter()
    .flatten()
    .filter(|s| s.remaining == Some(0))
    .filter_map(|s| s.reset)
    .max()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(
            parse_go_duration("250\u{b5}s"),
            Some(Duration::from_micros(250))
        );
        assert_eq!(parse_go_duration("7ns"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_go_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("0.001s"), Some(Duration::from_millis(1)));
    }

    #[test]
    fn malformed_go_durations_are_none() {
        for s in ["", "-1s", "s", "1x", "1.2.3s", "1s2", "abc", "1 s", "."] {
            assert_eq!(parse_go_duration(s), None, "{s:?}");
        }
    }

    #[test]
    fn huge_go_durations_saturate() {
        assert_eq!(
            parse_go_duration("99999999999999999999999999999999999h"),
            Some(MAX_HEADER_DURATION)
        );
    }

    #[test]
    fn rfc3339_reset_relative_to_now() {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        assert_eq!(
            parse_rfc3339_reset("2026-01-01T00:00:30Z", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_rfc3339_reset("2026-01-01T01:00:01.5+01:00", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_rfc3339_reset("2025-12-31T23:59:00Z", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_rfc3339_reset("yesterday", now), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn openai_headers() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        let l = openai_limits(&h).unwrap();
        let r = l.requests.unwrap();
        assert_eq!((r.limit, r.remaining), (Some(500), Some(499)));
        assert_eq!(r.reset, Some(Duration::from_millis(120)));
        let t = l.tokens.unwrap();
        assert_eq!(t.reset, Some(Duration::from_secs(360)));
        assert_eq!(exhausted_reset(&l), Some(Duration::from_secs(360)));
        assert!(openai_limits(&HeaderMap::new()).is_none());
    }

    #[test]
    fn openai_headers_with_garbage_are_ignored() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "lots"),
            ("x-ratelimit-reset-requests", "soon"),
            ("x-ratelimit-remaining-tokens", "12"),
        ]);
        let l = openai_limits(&h).unwrap();
        assert!(l.requests.is_none());
        assert_eq!(l.tokens.unwrap().remaining, Some(12));
    }

    #[test]
    fn anthropic_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let h = headers(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:12Z"),
            ("anthropic-ratelimit-input-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "39000"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2026-01-01T00:00:01Z",
            ),
            ("anthropic-ratelimit-output-tokens-remaining", "8000"),
        ]);
        let l = anthropic_limits(&h, now).unwrap();
        assert_eq!(l.requests.unwrap().reset, Some(Duration::from_secs(12)));
        assert_eq!(l.input_tokens.unwrap().limit, Some(40_000));
        assert_eq!(l.output_tokens.unwrap().remaining, Some(8000));
        assert!(l.tokens.is_none());
        assert_eq!(exhausted_reset(&l), Some(Duration::from_secs(12)));
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "1.25")]), now),
            Some(Duration::from_millis(1250))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "7"), ("retry-after-ms", "1500")]),
                now
            ),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Thu, 01 Jan 2026 00:00:20 GMT")]),
                now
            ),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Wed, 31 Dec 2025 00:00:20 GMT")]),
                now
            ),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
