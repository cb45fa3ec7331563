//! [`Config`]: load, validate, save, and the JSON Schema.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use schemars::generate::SchemaSettings;

use crate::env::{EnvLookup, process_env};
use crate::error::{ConfigError, Problem, Problems};
use crate::raw::{Interp, InterpCx, RawConfig};
use crate::settings::GatewaySettings;
use crate::validate::{Validated, validate};

/// The embedded default configuration (`config/default.json`): the mock provider only, so
/// the gateway runs with no keys and no network.
pub const DEFAULT_CONFIG_JSON: &str = include_str!("../../../config/default.json");

/// A validated configuration.
///
/// It keeps the file as written ([`Config::raw`], with its `${ENV_VAR}` references) for
/// [`Config::save`], and the validated form (secrets resolved) for [`build`](crate::build).
///
/// ```
/// use llm_tower_config::Config;
///
/// let config = Config::from_str(r#"{
///   "providers": {
///     "mock": { "type": "mock", "models": { "gpt-4o-mini": { "price": { "input": "0.15", "output": "0.60" } } } }
///   },
///   "routes": { "default": ["mock/gpt-4o-mini"] }
/// }"#)?;
/// assert_eq!(config.gateway().listen.to_string(), "127.0.0.1:8080");
///
/// let err = Config::from_str(r#"{ "providers": {}, "retry": { "max": "soon" } }"#).unwrap_err();
/// assert_eq!(err.problems().len(), 2);
/// assert!(err.to_string().contains("retry.max: "));
/// # Ok::<(), llm_tower_config::ConfigError>(())
/// ```
///
/// `Debug` never shows secrets.
#[derive(Clone)]
pub struct Config {
    raw: RawConfig,
    pub(crate) validated: Arc<Validated>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("providers", &self.raw.providers.keys().collect::<Vec<_>>())
            .field("routes", &self.raw.routes.keys().collect::<Vec<_>>())
            .field("gateway", &self.validated.gateway)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads, interpolates (from the process environment) and validates a config file.
    ///
    /// # Errors
    /// Every problem of the file with its JSON path, or one problem when the file cannot be
    /// read or is not JSON.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &process_env)
    }

    /// [`Config::load`] with another environment (tests, secrets from elsewhere).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_env(
        path: impl AsRef<Path>,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single("", format!("cannot read {}: {e}", path.display())))?;
        Config::from_str_with_env(&text, env)
    }

    /// Parses, interpolates (from the process environment) and validates JSON text.
    ///
    /// # Errors
    /// As [`Config::load`].
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Config, ConfigError> {
        Config::from_str_with_env(text, &process_env)
    }

    /// [`Config::from_str`] with another environment.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_str_with_env(text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        Config::from_raw_with_env(parse_raw(text)?, env)
    }

    /// Validates an already parsed file, interpolating from the process environment.
    ///
    /// # Errors
    /// Every problem with its JSON path.
    pub fn from_raw(raw: RawConfig) -> Result<Config, ConfigError> {
        Config::from_raw_with_env(raw, &process_env)
    }

    /// [`Config::from_raw`] with another environment.
    ///
    /// # Errors
    /// Every problem with its JSON path.
    pub fn from_raw_with_env(raw: RawConfig, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let mut resolved = raw.clone();
        let mut cx = InterpCx {
            env,
            problems: Problems::default(),
        };
        resolved.interp("", &mut cx);
        let interp_problems = cx.problems.list;
        match validate(&raw, &resolved) {
            Ok(validated) if interp_problems.is_empty() => Ok(Config {
                raw,
                validated: Arc::new(validated),
            }),
            Ok(_) => Err(ConfigError::new(interp_problems)),
            Err(e) => {
                // A value that could not be interpolated is reported once, as such.
                let mut problems = interp_problems;
                let bad: Vec<String> = problems.iter().map(|p| p.path.clone()).collect();
                problems.extend(
                    e.into_problems()
                        .into_iter()
                        .filter(|p| !bad.iter().any(|b| b == &p.path)),
                );
                Err(ConfigError::new(problems))
            }
        }
    }

    /// The embedded default config ([`DEFAULT_CONFIG_JSON`]): the mock provider only.
    ///
    /// # Errors
    /// Never for the shipped file (a test pins that); the error type keeps callers honest.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::from_str_with_env(DEFAULT_CONFIG_JSON, &|_| None)
    }

    /// Writes the config as written (with its `${ENV_VAR}` references, never the secrets they
    /// resolved to), pretty-printed, replacing `path` atomically.
    ///
    /// # Errors
    /// The I/O error.
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, self.to_json_pretty())?;
        std::fs::rename(&tmp, path)
    }

    /// The config as written, pretty-printed JSON with a trailing newline.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.raw).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The config as written (`${ENV_VAR}` references kept).
    pub fn raw(&self) -> &RawConfig {
        &self.raw
    }

    /// The gateway's server settings.
    pub fn gateway(&self) -> &GatewaySettings {
        &self.validated.gateway
    }

    /// The JSON Schema (draft 2020-12) of the config file, for editors.
    pub fn json_schema() -> serde_json::Value {
        SchemaSettings::draft2020_12()
            .for_deserialize()
            .into_generator()
            .into_root_schema_for::<RawConfig>()
            .to_value()
    }

    /// [`Config::json_schema`] as pretty-printed JSON with a trailing newline, as in
    /// `config/llm-tower.schema.json`.
    pub fn json_schema_string() -> String {
        let mut s = serde_json::to_string_pretty(&Config::json_schema()).unwrap_or_default();
        s.push('\n');
        s
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Config, ConfigError> {
        Config::from_str_with_env(s, &process_env)
    }
}

/// Parses JSON text into the raw form, strictly: unknown fields and wrong types are errors
/// with their JSON path.
///
/// # Errors
/// One problem: where parsing stopped and why (with line and column).
pub fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(vec![Problem::new(
            path,
            redact_strings(&e.into_inner().to_string()),
        )])
    })?;
    de.end()
        .map_err(|e| ConfigError::single("", e.to_string()))?;
    Ok(raw)
}

/// Replaces the quoted value in serde's `invalid type: string "..."` messages: a value in
/// the wrong place may be a secret.
fn redact_strings(message: &str) -> String {
    const MARK: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(pos) = rest.find(MARK) {
        out.push_str(&rest[..pos]);
        out.push_str("string");
        let after = &rest[pos + MARK.len()..];
        let mut escaped = false;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = i + 1;
                    break;
                }
                _ => escaped = false,
            }
        }
        rest = &after[end.min(after.len())..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_values_are_redacted_from_parse_errors() {
        assert_eq!(
            redact_strings("invalid type: string \"sk-secret\", expected u64 at line 1 column 9"),
            "invalid type: string, expected u64 at line 1 column 9"
        );
        assert_eq!(
            redact_strings("invalid type: string \"a\\\"b\", expected u64"),
            "invalid type: string, expected u64"
        );
        assert_eq!(redact_strings("no strings here"), "no strings here");
    }
}
