//! Environment configuration that fails fast and names the variable at fault.
//! Pure (no I/O beyond reading the environment and secret files), so every
//! crate, the Zendesk client included, reads its settings the same way.
//!
//! Services read their settings through [`Env`], which can be backed by the
//! process environment or by an explicit map (tests). A secret can be given
//! inline (`NAME`) or as a file path (`NAME_FILE`, for Kubernetes secrets).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::Secret;
use crate::ids::parse_canonical_id;

/// A configuration problem, always naming the variable. Never includes a
/// secret's value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is required but not set")]
    Missing { var: String },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: String, reason: String },
}

impl ConfigError {
    pub fn invalid(var: &str, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            var: var.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A source of configuration values.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Option<HashMap<String, String>>,
}

impl Env {
    /// Reads the process environment.
    pub fn process() -> Self {
        Self { vars: None }
    }

    /// Reads only the given pairs (tests, embedded stacks).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    /// The raw value; an empty string counts as unset.
    pub fn get(&self, var: &str) -> Option<String> {
        let v = match &self.vars {
            Some(map) => map.get(var).cloned(),
            None => std::env::var(var).ok(),
        };
        v.filter(|s| !s.trim().is_empty())
    }

    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.get(var).ok_or_else(|| ConfigError::Missing {
            var: var.to_owned(),
        })
    }

    pub fn string_or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_owned())
    }

    /// Parses with `FromStr`, or returns `default` when unset.
    pub fn parse_or<T: FromStr>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::invalid(var, e.to_string())),
        }
    }

    pub fn parse_opt<T: FromStr>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(var)
            .map(|v| {
                v.trim()
                    .parse()
                    .map_err(|e: T::Err| ConfigError::invalid(var, e.to_string()))
            })
            .transpose()
    }

    pub fn addr_or(&self, var: &str, default: &str) -> Result<SocketAddr, ConfigError> {
        let raw = self.string_or(var, default);
        raw.parse()
            .map_err(|_| ConfigError::invalid(var, format!("expected host:port such as {default}")))
    }

    /// `true/false/1/0/yes/no/on/off`, case-insensitive.
    pub fn bool_or(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::invalid(var, "expected true or false")),
            },
        }
    }

    /// Durations such as `30s`, `5m`, `24h`, `7days` (humantime syntax).
    pub fn duration_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(v.trim())
                .map_err(|e| ConfigError::invalid(var, format!("{e} (examples: 30s, 5m, 24h)"))),
        }
    }

    pub fn duration_opt(&self, var: &str) -> Result<Option<Duration>, ConfigError> {
        self.get(var)
            .map(|v| {
                humantime::parse_duration(v.trim())
                    .map_err(|e| ConfigError::invalid(var, format!("{e} (examples: 30s, 5m, 24h)")))
            })
            .transpose()
    }

    /// A required positive decimal id (Zendesk account ids).
    pub fn positive_id(&self, var: &str) -> Result<u64, ConfigError> {
        let raw = self.required(var)?;
        parse_canonical_id(raw.trim())
            .ok_or_else(|| ConfigError::invalid(var, "expected a positive decimal number"))
    }

    /// A secret from `VAR` or from the file named by `VAR_FILE` (trailing
    /// newline trimmed). Setting both is refused as ambiguous.
    pub fn secret_opt(&self, var: &str) -> Result<Option<Secret>, ConfigError> {
        let file_var = format!("{var}_FILE");
        match (self.get(var), self.get(&file_var)) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                var,
                format!("set either {var} or {file_var}, not both"),
            )),
            (Some(v), None) => Ok(Some(Secret::new(v))),
            (None, Some(path)) => read_secret_file(&file_var, &path).map(Some),
            (None, None) => Ok(None),
        }
    }

    pub fn secret(&self, var: &str) -> Result<Secret, ConfigError> {
        self.secret_opt(var)?.ok_or_else(|| ConfigError::Missing {
            var: var.to_owned(),
        })
    }

    /// The path given in `VAR_FILE`, if any (for reloading on change).
    pub fn secret_file(&self, var: &str) -> Option<String> {
        self.get(&format!("{var}_FILE"))
    }

    /// A comma-separated list of secrets (rotation), empty entries refused.
    pub fn secret_list(&self, var: &str) -> Result<Vec<Secret>, ConfigError> {
        let joined = self.secret(var)?;
        let items: Vec<Secret> = joined
            .expose()
            .split(',')
            .map(|s| Secret::new(s.trim()))
            .collect();
        if items.iter().any(Secret::is_empty) {
            return Err(ConfigError::invalid(
                var,
                "a comma-separated list must not contain empty entries",
            ));
        }
        Ok(items)
    }
}

impl Env {
    /// A required rotation list of signing keys, each at least `min_len`
    /// characters: a short key would make an HMAC guessable.
    pub fn signing_keys(&self, var: &str, min_len: usize) -> Result<Vec<Secret>, ConfigError> {
        // `secret_list` never yields an empty list: a required variable
        // holds at least one non-empty entry.
        let keys = self.secret_list(var)?;
        if let Some(pos) = keys.iter().position(|k| k.expose().len() < min_len) {
            return Err(ConfigError::invalid(
                var,
                format!(
                    "key {} is shorter than {min_len} characters (generate one with `openssl rand -hex 32`)",
                    pos + 1
                ),
            ));
        }
        Ok(keys)
    }
}

/// Reads a secret file; used at start-up and on reload.
pub fn read_secret_file(var: &str, path: &str) -> Result<Secret, ConfigError> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(var, format!("cannot read {path}: {e}")))?;
    let value = raw.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        return Err(ConfigError::invalid(var, format!("{path} is empty")));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable_not_the_value() {
        let env = Env::from_pairs([("A", "nope"), ("S", "sek,,ret"), ("ID", "0"), ("D", "soon")]);
        let e = env.parse_or::<u16>("A", 1).unwrap_err().to_string();
        assert!(e.starts_with("A is invalid"), "{e}");
        let e = env.secret_list("S").unwrap_err().to_string();
        assert!(e.contains('S') && !e.contains("sek"), "{e}");
        assert!(env.positive_id("ID").is_err());
        assert_eq!(
            env.positive_id("MISSING").unwrap_err().to_string(),
            "MISSING is required but not set"
        );
        assert!(env.duration_or("D", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn secret_from_file() {
        let dir = std::env::temp_dir().join(format!("zg-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        std::fs::write(&path, "abc\n").unwrap();
        let env = Env::from_pairs([("K_FILE", path.to_string_lossy().to_string())]);
        assert_eq!(env.secret("K").unwrap().expose(), "abc");
        let both = Env::from_pairs([
            ("K", "x".to_owned()),
            ("K_FILE", path.to_string_lossy().to_string()),
        ]);
        assert!(both.secret("K").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn lists_and_defaults() {
        let env = Env::from_pairs([("S", "a, b"), ("B", "YES"), ("D", "7days")]);
        let l = env.secret_list("S").unwrap();
        assert_eq!(l.iter().map(Secret::expose).collect::<Vec<_>>(), ["a", "b"]);
        assert!(env.bool_or("B", false).unwrap());
        assert_eq!(
            env.duration_or("D", Duration::ZERO).unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(env.addr_or("X", "0.0.0.0:8080").unwrap().port(), 8080);
    }
}
