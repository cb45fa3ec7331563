//! Key layout: a configurable prefix, the script family's version, and a hash tag.
//!
//! Every key one script touches shares one hash tag (the part between the first `{` and
//! the next `}`), so they live in one slot and the script is valid on Redis Cluster:
//!
//! ```text
//! {prefix}:v{version}:{sw:{scope}:{key}}:log    sliding window: the log (list of "t:w")
//! {prefix}:v{version}:{sw:{scope}:{key}}:sum    sliding window: the log's total weight
//! {prefix}:v{version}:{lb:{scope}:{key}}:tat    leaky bucket: theoretical arrival time
//! {prefix}:v{version}:{b:{budget key}}:spent    budget: settled spend (nano-USD)
//! {prefix}:v{version}:{b:{budget key}}:holds    budget: held amounts by id, and `held`
//! {prefix}:v{version}:{b:{budget key}}:exp      budget: reservation ids by expiry (µs)
//! {prefix}:v{version}:{al:{target}}:blocked      adaptive limits: set while blocked (PX expiry)
//! ```
//!
//! `version` is the version of the script family that owns the key, so a rolling upgrade
//! to a script with another data layout never reads the old layout. User-supplied parts
//! are escaped: `%`, `{` and `}` everywhere (a brace would move the hash tag), and `:` in
//! the scope too, so `("a:b", "c")` and `("a", "b:c")` never meet.

use std::fmt::Write as _;

use llm_tower_core::Error;

/// Checks a key prefix: non-empty, printable, and without braces (which would move the
/// hash tag).
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), Error> {
    if prefix.is_empty() {
        return Err(Error::config(
            "redis store: the key prefix must not be empty",
        ));
    }
    if prefix.contains(['{', '}']) {
        return Err(Error::config(format!(
            "redis store: the key prefix {prefix:?} must not contain '{{' or '}}' (they would move the cluster hash tag)"
        )));
    }
    if prefix.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::config(format!(
            "redis store: the key prefix {prefix:?} must not contain whitespace or control characters"
        )));
    }
    Ok(())
}

fn escape_into(out: &mut String, part: &str, colon: bool) {
    for c in part.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            ':' if colon => out.push_str("%3A"),
            c => out.push(c),
        }
    }
}

/// Builds `"{prefix}:v{version}:{"` + tag + `"}:"` + suffix for each suffix.
fn keys<const N: usize>(prefix: &str, version: u32, tag: &str, suffixes: [&str; N]) -> [String; N] {
    let mut base = String::with_capacity(prefix.len() + tag.len() + 12);
    base.push_str(prefix);
    let _ = write!(base, ":v{version}:{{{tag}}}:");
    suffixes.map(|s| {
        let mut k = String::with_capacity(base.len() + s.len());
        k.push_str(&base);
        k.push_str(s);
        k
    })
}

fn rate_tag(family: &str, scope: &str, key: &str) -> String {
    let mut tag = String::with_capacity(family.len() + scope.len() + key.len() + 2);
    tag.push_str(family);
    tag.push(':');
    escape_into(&mut tag, scope, true);
    tag.push(':');
    escape_into(&mut tag, key, false);
    tag
}

/// The sliding-window keys of `(scope, key)`: `[log, sum]`.
pub(crate) fn sliding_window(prefix: &str, version: u32, scope: &str, key: &str) -> [String; 2] {
    keys(prefix, version, &rate_tag("sw", scope, key), ["log", "sum"])
}

/// The leaky-bucket key of `(scope, key)`: `[tat]`.
pub(crate) fn leaky_bucket(prefix: &str, version: u32, scope: &str, key: &str) -> [String; 1] {
    keys(prefix, version, &rate_tag("lb", scope, key), ["tat"])
}

/// The budget keys of one counter: `[spent, holds, exp]`.
pub(crate) fn budget(prefix: &str, version: u32, key: &str) -> [String; 3] {
    let mut tag = String::with_capacity(key.len() + 2);
    tag.push_str("b:");
    escape_into(&mut tag, key, false);
    keys(prefix, version, &tag, ["spent", "holds", "exp"])
}

/// The adaptive-limit key of a target: `[blocked]`.
pub(crate) fn adaptive(prefix: &str, version: u32, target: &str) -> [String; 1] {
    let mut tag = String::with_capacity(target.len() + 3);
    tag.push_str("al:");
    escape_into(&mut tag, target, false);
    keys(prefix, version, &tag, ["blocked"])
}

/// The hash tag Redis Cluster would hash for `key` (the whole key when it has none).
#[cfg(test)]
pub(crate) fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_keys_share_one_hash_tag_and_carry_the_version() {
        let [log, sum] = sliding_window("llm-tower", 1, "per_caller", "alice");
        assert_eq!(log, "llm-tower:v1:{sw:per_caller:alice}:log");
        assert_eq!(sum, "llm-tower:v1:{sw:per_caller:alice}:sum");
        assert_eq!(hash_tag(&log), hash_tag(&sum));
        assert_eq!(hash_tag(&log), "sw:per_caller:alice");
    }

    #[test]
    fn global_key_is_empty_but_the_tag_is_not() {
        let [tat] = leaky_bucket("p", 3, "provider_tpm", "");
        assert_eq!(tat, "p:v3:{lb:provider_tpm:}:tat");
        assert_eq!(hash_tag(&tat), "lb:provider_tpm:");
    }

    #[test]
    fn braces_in_user_parts_cannot_move_the_hash_tag() {
        let [log, sum] = sliding_window("p", 1, "a}b", "{x}");
        assert_eq!(log, "p:v1:{sw:a%7Db:%7Bx%7D}:log");
        assert_eq!(hash_tag(&log), hash_tag(&sum));
        assert_eq!(hash_tag(&log), "sw:a%7Db:%7Bx%7D");
    }

    #[test]
    fn scope_and_key_boundaries_are_unambiguous() {
        let a = sliding_window("p", 1, "a:b", "c");
        let b = sliding_window("p", 1, "a", "b:c");
        assert_ne!(a, b);
        let c = sliding_window("p", 1, "a%3Ab", "c");
        assert_ne!(a, c, "the escape character itself is escaped");
    }

    #[test]
    fn budget_keys_share_one_hash_tag() {
        let ks = budget("llm-tower", 1, "monthly::month:673");
        assert_eq!(ks[0], "llm-tower:v1:{b:monthly::month:673}:spent");
        assert_eq!(ks[1], "llm-tower:v1:{b:monthly::month:673}:holds");
        assert_eq!(ks[2], "llm-tower:v1:{b:monthly::month:673}:exp");
        assert!(ks.iter().all(|k| hash_tag(k) == "b:monthly::month:673"));
    }

    #[test]
    fn families_and_versions_never_share_keys() {
        let [sw, _] = sliding_window("p", 1, "s", "k");
        let [lb] = leaky_bucket("p", 1, "s", "k");
        let [sw2, _] = sliding_window("p", 2, "s", "k");
        assert_ne!(hash_tag(&sw), hash_tag(&lb));
        assert_ne!(sw, sw2);
    }

    #[test]
    fn adaptive_keys_are_versioned_and_tagged() {
        let [k] = adaptive("llm-tower", 1, "openai/gpt-4o");
        assert_eq!(k, "llm-tower:v1:{al:openai/gpt-4o}:blocked");
        assert_eq!(hash_tag(&k), "al:openai/gpt-4o");
    }

    #[test]
    fn prefixes_are_validated() {
        assert!(validate_prefix("llm-tower").is_ok());
        assert!(validate_prefix("team:prod").is_ok());
        assert!(validate_prefix("").is_err());
        assert!(validate_prefix("a{b").is_err());
        assert!(validate_prefix("a}b").is_err());
        assert!(validate_prefix("a b").is_err());
    }
}
