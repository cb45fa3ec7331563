//! `${ENV_VAR}` interpolation in string values.
//!
//! - `${NAME}` is replaced by the value of the environment variable `NAME`
//!   (`[A-Za-z_][A-Za-z0-9_]*`). A variable that is not set is an error naming the
//!   variable and the JSON path.
//! - `$${` is a literal `${` (so `"$${HOME}"` stays `"${HOME}"`).
//! - Any other `$` is kept as it is.
//!
//! Errors never contain the string's value, only variable names: the string may be a
//! secret, or a variable's value may be.

/// Looks up an environment variable.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Replaces every `${NAME}` in `s`; see the [module docs](self).
///
/// # Errors
/// One message per problem (missing variable, unterminated or invalid reference).
pub fn interpolate(s: &str, env: EnvLookup<'_>) -> Result<String, Vec<String>> {
    if !s.contains('$') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            match after.find('}') {
                None => {
                    errors.push(
                        "unterminated \"${\" (close it with \"}\", or write \"$${\" for a literal \"${\")"
                            .to_owned(),
                    );
                    rest = "";
                }
                Some(end) => {
                    let name = &after[..end];
                    if !is_var_name(name) {
                        errors.push(
                            "invalid environment variable reference: names are letters, digits and '_', not starting with a digit (write \"$${\" for a literal \"${\")"
                                .to_owned(),
                        );
                    } else {
                        match env(name) {
                            Some(v) => out.push_str(&v),
                            None => errors.push(format!("environment variable {name} is not set")),
                        }
                    }
                    rest = &after[end + 1..];
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `Some(NAME)` when `s` is exactly one reference `${NAME}` and nothing else.
pub fn single_reference(s: &str) -> Option<&str> {
    let name = s.strip_prefix("${")?.strip_suffix('}')?;
    is_var_name(name).then_some(name)
}

/// `true` when `s` contains at least one `${NAME}` reference (not an escaped one).
pub fn has_reference(s: &str) -> bool {
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            rest = after;
        } else if tail.starts_with("${") {
            return true;
        } else {
            rest = &tail[1..];
        }
    }
    false
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("sk-secret".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_references() {
        assert_eq!(interpolate("${KEY}", &env).unwrap(), "sk-secret");
        assert_eq!(interpolate("a-${KEY}-b", &env).unwrap(), "a-sk-secret-b");
        assert_eq!(interpolate("${EMPTY}x", &env).unwrap(), "x");
        assert_eq!(interpolate("no refs", &env).unwrap(), "no refs");
        assert_eq!(interpolate("cost $5", &env).unwrap(), "cost $5");
        assert_eq!(interpolate("$$", &env).unwrap(), "$$");
    }

    #[test]
    fn dollar_dollar_brace_escapes() {
        assert_eq!(interpolate("$${KEY}", &env).unwrap(), "${KEY}");
        assert_eq!(
            interpolate("$${MISSING} ${KEY}", &env).unwrap(),
            "${MISSING} sk-secret"
        );
    }

    #[test]
    fn missing_and_invalid_references_are_errors() {
        let e = interpolate("${NOPE} and ${ALSO_NOPE}", &env).unwrap_err();
        assert_eq!(
            e,
            vec![
                "environment variable NOPE is not set".to_owned(),
                "environment variable ALSO_NOPE is not set".to_owned()
            ]
        );
        assert!(interpolate("${1X}", &env).is_err());
        assert!(interpolate("${}", &env).is_err());
        let e = interpolate("sk-abc${KEY", &env).unwrap_err();
        assert!(!e[0].contains("sk-abc"));
    }

    #[test]
    fn single_reference_detection() {
        assert_eq!(single_reference("${KEY}"), Some("KEY"));
        assert_eq!(single_reference("x${KEY}"), None);
        assert_eq!(single_reference("${KEY}${B}"), None);
        assert!(has_reference("a${B}"));
        assert!(!has_reference("a$${B}"));
        assert!(!has_reference("plain"));
    }
}
