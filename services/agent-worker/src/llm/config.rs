//! `DRAFTER*` settings: which drafter proposes (rules or a model), where the
//! model is served, with which key, and the bounds of one draft (steps,
//! tokens, wall time). Every problem names the variable at fault.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use zengate_core::Secret;
use zengate_runtime::{ConfigError, Env};

/// Which wire format the model server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI Chat Completions (also Azure OpenAI v1, vLLM, Ollama,
    /// llama.cpp's server, LiteLLM).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl Provider {
    /// `DraftInfo.drafter` and the metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com/v1",
        }
    }

    /// The endpoint path appended to the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Provider::OpenAi => "chat/completions",
            Provider::Anthropic => "messages",
        }
    }
}

/// What a draft falls back to when the model's output stays invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The rules drafter; a "needs human" note when no rule matches.
    Rules,
    /// Always a "needs human" internal note.
    Human,
}

/// A model drafter's settings.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub provider: Provider,
    /// Ends without a slash, e.g. `https://api.openai.com/v1`.
    pub base_url: Url,
    pub model: String,
    /// Redacted in `Debug`.
    pub api_key: Option<Secret>,
    pub temperature: Option<f32>,
    /// Completion tokens per model call.
    pub max_tokens: u32,
    /// Wall time for one whole draft, retries included.
    pub timeout: Duration,
    /// Model calls per draft (tool rounds plus the answer and one repair).
    pub max_steps: u32,
    /// Prompt plus completion tokens per draft.
    pub token_budget: u64,
    /// Retries of one model call on 429, 5xx, timeouts or a broken answer.
    pub max_retries: u32,
    /// Operator policy text; `None` uses the built-in prompt.
    pub system_prompt_file: Option<PathBuf>,
    pub fallback: Fallback,
    /// Price per 1000 prompt tokens (any currency), for the cost metric.
    pub price_prompt_per_1k: f64,
    pub price_completion_per_1k: f64,
}

/// `DRAFTER=rules` (default) or a model.
#[derive(Debug, Clone, Default)]
pub struct DrafterConfig {
    /// `None`: the rules drafter.
    pub model: Option<ModelConfig>,
}

fn is_loopback(url: &Url) -> bool {
    url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

fn base_url(raw: &str, has_key: bool) -> Result<Url, String> {
    let mut url = Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if !has_key || is_loopback(&url) => {}
        "http" => {
            return Err(
                "an API key is only sent over https (plain http only to localhost)".to_owned(),
            );
        }
        other => return Err(format!("scheme {other:?} is not http or https")),
    }
    if url.host().is_none() {
        return Err("the URL has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials belong in DRAFTER_API_KEY, not the URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must not have a query or fragment".to_owned());
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

fn positive<T: PartialOrd + Copy + std::fmt::Display>(
    var: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            var,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(value)
}

impl DrafterConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let provider = match env
            .string_or("DRAFTER", "rules")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "rules" => return Ok(Self::default()),
            "openai" => Provider::OpenAi,
            "anthropic" => Provider::Anthropic,
            _ => {
                return Err(ConfigError::invalid(
                    "DRAFTER",
                    "expected rules, openai or anthropic",
                ));
            }
        };
        let api_key = env.secret_opt("DRAFTER_API_KEY")?.filter(|k| !k.is_empty());
        let explicit_base = env.get("DRAFTER_BASE_URL");
        let base_url = base_url(
            explicit_base
                .as_deref()
                .unwrap_or(provider.default_base_url()),
            api_key.is_some(),
        )
        .map_err(|r| ConfigError::invalid("DRAFTER_BASE_URL", r))?;
        // The hosted APIs always need a key; a self-hosted server may not.
        if api_key.is_none() && (provider == Provider::Anthropic || explicit_base.is_none()) {
            return Err(ConfigError::Missing {
                var: "DRAFTER_API_KEY".to_owned(),
            });
        }
        let model = env.required("DRAFTER_MODEL")?.trim().to_owned();
        if model.is_empty() || model.len() > 200 {
            return Err(ConfigError::invalid(
                "DRAFTER_MODEL",
                "must be 1 to 200 characters",
            ));
        }
        let temperature = env
            .parse_opt::<f32>("DRAFTER_TEMPERATURE")?
            .map(|t| positive("DRAFTER_TEMPERATURE", t, 0.0, 2.0))
            .transpose()?;
        let max_tokens = positive(
            "DRAFTER_MAX_TOKENS",
            env.parse_or("DRAFTER_MAX_TOKENS", 1024u32)?,
            16,
            65_536,
        )?;
        let timeout = env.duration_or("DRAFTER_TIMEOUT", Duration::from_secs(60))?;
        if timeout < Duration::from_secs(1) || timeout > Duration::from_secs(600) {
            return Err(ConfigError::invalid(
                "DRAFTER_TIMEOUT",
                "must be between 1s and 10m",
            ));
        }
        let max_steps = positive(
            "DRAFTER_MAX_STEPS",
            env.parse_or("DRAFTER_MAX_STEPS", 6u32)?,
            1,
            32,
        )?;
        let token_budget = positive(
            "DRAFTER_TOKEN_BUDGET",
            env.parse_or("DRAFTER_TOKEN_BUDGET", 60_000u64)?,
            256,
            10_000_000,
        )?;
        let max_retries = positive(
            "DRAFTER_MAX_RETRIES",
            env.parse_or("DRAFTER_MAX_RETRIES", 3u32)?,
            0,
            10,
        )?;
        let system_prompt_file = env.get("DRAFTER_SYSTEM_PROMPT_FILE").map(PathBuf::from);
        if let Some(path) = &system_prompt_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid(
                    "DRAFTER_SYSTEM_PROMPT_FILE",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if text.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "DRAFTER_SYSTEM_PROMPT_FILE",
                    format!("{} is empty", path.display()),
                ));
            }
        }
        let fallback = match env.string_or("DRAFTER_FALLBACK", "rules").trim() {
            "rules" => Fallback::Rules,
            "human" => Fallback::Human,
            _ => {
                return Err(ConfigError::invalid(
                    "DRAFTER_FALLBACK",
                    "expected rules or human",
                ));
            }
        };
        let price = |var: &str| -> Result<f64, ConfigError> {
            let p = env.parse_or(var, 0.0f64)?;
            if !p.is_finite() || p < 0.0 {
                return Err(ConfigError::invalid(var, "must be a non-negative number"));
            }
            Ok(p)
        };
        Ok(Self {
            model: Some(ModelConfig {
                provider,
                base_url,
                model,
                api_key,
                temperature,
                max_tokens,
                timeout,
                max_steps,
                token_budget,
                max_retries,
                system_prompt_file,
                fallback,
                price_prompt_per_1k: price("DRAFTER_PRICE_PROMPT_PER_1K")?,
                price_completion_per_1k: price("DRAFTER_PRICE_COMPLETION_PER_1K")?,
            }),
        })
    }
}

impl ModelConfig {
    /// The endpoint every call goes to.
    pub fn endpoint(&self) -> String {
        format!(
            "{}/{}",
            self.base_url.as_str().trim_end_matches('/'),
            self.provider.path()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<DrafterConfig, ConfigError> {
        DrafterConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn rules_by_default() {
        assert!(cfg(&[]).unwrap().model.is_none());
        assert!(cfg(&[("DRAFTER", "rules")]).unwrap().model.is_none());
    }

    #[test]
    fn openai_defaults_and_redaction() {
        let c = cfg(&[
            ("DRAFTER", "openai"),
            ("DRAFTER_MODEL", "gpt-4o-mini"),
            ("DRAFTER_API_KEY", "sk-very-secret"),
        ])
        .unwrap()
        .model
        .unwrap();
        assert_eq!(c.endpoint(), "https://api.openai.com/v1/chat/completions");
        assert_eq!(c.max_tokens, 1024);
        assert_eq!(c.max_steps, 6);
        assert_eq!(c.timeout, Duration::from_secs(60));
        assert_eq!(c.fallback, Fallback::Rules);
        assert!(!format!("{c:?}").contains("sk-very-secret"));
        let a = cfg(&[
            ("DRAFTER", "anthropic"),
            ("DRAFTER_MODEL", "claude-sonnet-4-5"),
            ("DRAFTER_API_KEY", "k"),
            ("DRAFTER_BASE_URL", "http://127.0.0.1:9/v1/"),
        ])
        .unwrap()
        .model
        .unwrap();
        assert_eq!(a.endpoint(), "http://127.0.0.1:9/v1/messages");
    }

    #[test]
    fn local_server_needs_no_key() {
        let c = cfg(&[
            ("DRAFTER", "openai"),
            ("DRAFTER_MODEL", "llama3.1"),
            ("DRAFTER_BASE_URL", "http://ollama:11434/v1"),
        ])
        .unwrap()
        .model
        .unwrap();
        assert!(c.api_key.is_none());
    }

    #[test]
    fn errors_name_the_variable() {
        let base = [
            ("DRAFTER", "openai"),
            ("DRAFTER_MODEL", "m"),
            ("DRAFTER_API_KEY", "k"),
        ];
        for (var, value) in [
            ("DRAFTER", "gpt"),
            ("DRAFTER_BASE_URL", "ftp://x"),
            ("DRAFTER_BASE_URL", "http://remote.example/v1"),
            ("DRAFTER_BASE_URL", "https://u:p@x/v1"),
            ("DRAFTER_TEMPERATURE", "3"),
            ("DRAFTER_MAX_TOKENS", "0"),
            ("DRAFTER_TIMEOUT", "soon"),
            ("DRAFTER_MAX_STEPS", "0"),
            ("DRAFTER_FALLBACK", "pray"),
            ("DRAFTER_PRICE_PROMPT_PER_1K", "-1"),
            ("DRAFTER_SYSTEM_PROMPT_FILE", "/nonexistent/prompt.txt"),
        ] {
            let mut pairs = base.to_vec();
            pairs.retain(|(k, _)| *k != var);
            pairs.push((var, value));
            let e = cfg(&pairs).unwrap_err();
            assert!(e.to_string().starts_with(var), "{var}: {e}");
            assert!(!e.to_string().contains("k\""), "{e}");
        }
        let e = cfg(&[("DRAFTER", "anthropic"), ("DRAFTER_MODEL", "m")]).unwrap_err();
        assert_eq!(e.to_string(), "DRAFTER_API_KEY is required but not set");
        let e = cfg(&[("DRAFTER", "openai"), ("DRAFTER_API_KEY", "k")]).unwrap_err();
        assert_eq!(e.to_string(), "DRAFTER_MODEL is required but not set");
    }
}
