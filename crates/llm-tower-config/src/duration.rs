//! Durations as the config writes them: `"500ms"`, `"2s"`, `"1m"`, `"1h30m"`.

use std::time::Duration;

/// Parses a duration: one or more `<integer><unit>` parts, units `ms`, `s`, `m`, `h`, `d`,
/// each unit at most once and from the largest to the smallest (`"1h30m"`, `"1m30s"`,
/// `"250ms"`). `"0s"` is zero.
///
/// # Errors
/// A message saying what is wrong (without echoing the input).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration (write e.g. \"500ms\", \"2s\", \"1m\", \"1h30m\")".to_owned());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    let mut last_rank = usize::MAX;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(
                "expected a number followed by a unit (ms, s, m, h, d), e.g. \"1m30s\"".to_owned(),
            );
        }
        let digits = &s[start..i];
        let value: u128 = digits
            .parse()
            .map_err(|_| "number too large in duration".to_owned())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let (rank, nanos_per): (usize, u128) = match unit {
            "d" => (0, 86_400_000_000_000),
            "h" => (1, 3_600_000_000_000),
            "m" => (2, 60_000_000_000),
            "s" => (3, 1_000_000_000),
            "ms" => (4, 1_000_000),
            "" => {
                return Err(format!(
                    "missing unit after {digits} (write e.g. \"{digits}s\" or \"{digits}ms\")"
                ));
            }
            _ => {
                return Err(format!(
                    "unknown duration unit {unit:?} (use ms, s, m, h or d)"
                ));
            }
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(
                "duration units must go from the largest to the smallest, each once (e.g. \"1h30m\")"
                    .to_owned(),
            );
        }
        last_rank = rank;
        total = total
            .checked_add(value.saturating_mul(nanos_per))
            .ok_or_else(|| "duration too large".to_owned())?;
    }
    // Keep well inside what `Instant + Duration` can represent.
    const MAX_NANOS: u128 = 100 * 365 * 86_400_000_000_000;
    if total > MAX_NANOS {
        return Err("duration too large (at most 100 years)".to_owned());
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| "duration too large".to_owned())?;
    let nanos =
        u32::try_from(total % 1_000_000_000).map_err(|_| "duration too large".to_owned())?;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration the way the config writes it: `"1h30m"`, `"500ms"`, `"0s"`.
/// Sub-millisecond remainders are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, per) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        let n = ms / per;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            ms -= n * per;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("1m30s250ms").unwrap(),
            Duration::from_millis(90_250)
        );
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            "30",
            "1x",
            "s",
            "1.5s",
            "1s1m",
            "1m1m",
            "-1s",
            "1 s",
            "99999999999999999999999999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["500ms", "2s", "1m", "1h30m", "1d2h3m4s5ms", "0s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
