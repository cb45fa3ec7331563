//! [`ConfigError`]: every problem of a config file, each with its JSON path.

use std::fmt;

/// One problem in a config file: where (a JSON path such as
/// `providers.openai.models.gpt-4o.price.input` or `rate_limits[2].burst`; empty for the
/// whole file) and what.
///
/// Messages never contain secret values (API keys, gateway keys, Redis URLs): at most the
/// name of an environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    /// The JSON path of the value, `""` for the file as a whole.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a config file was refused: all its problems at once.
///
/// `Display` prints one problem per line, `path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// An error with these problems.
    pub fn new(problems: Vec<Problem>) -> Self {
        ConfigError { problems }
    }

    /// An error with one problem.
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem::new(path, message)],
        }
    }

    /// The problems, in the order of the file.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Consumes the error, returning its problems.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// The problem at exactly `path`, if any.
    pub fn at(&self, path: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| p.path == path)
    }

    /// Converts into the stack's error (`ErrorKind::Config`), all problems in the message.
    pub fn into_error(self) -> llm_tower_core::Error {
        llm_tower_core::Error::config(self.to_string())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for llm_tower_core::Error {
    fn from(e: ConfigError) -> Self {
        e.into_error()
    }
}

/// Collects problems while walking a config, tracking the JSON path.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem::new(path, message));
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, ConfigError> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError::new(self.list))
        }
    }
}

/// Joins a JSON path and a field name: `join("a", "b") == "a.b"`, `join("", "b") == "b"`.
pub(crate) fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_owned()
    } else {
        format!("{base}.{field}")
    }
}

/// Appends an index: `index("a", 2) == "a[2]"`.
pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}
