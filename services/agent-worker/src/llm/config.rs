//! `DRAFTER*` settings: which drafter proposes (rules or a model), where the
//! model is served, with which key and in which request dialect (token
//! limit field, auth header, structured output), and the bounds of one
//! draft (steps, tokens, wall time). Every problem names the variable at
//! fault.

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

/// Which Chat Completions field carries the completion-token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_tokens`: what OpenAI-compatible servers accept.
    MaxTokens,
    /// `max_completion_tokens`: what OpenAI's API documents (`max_tokens`
    /// is deprecated there and refused by its reasoning models).
    MaxCompletionTokens,
}

impl MaxTokensField {
    /// The JSON field name.
    pub fn name(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// How the API key reaches an OpenAI-compatible server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenAiAuth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `api-key: <key>` (Azure OpenAI keys).
    ApiKey,
}

/// Whether Chat Completions requests ask for schema-constrained output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// No `response_format`: the output contract is only in the prompt.
    None,
    /// `response_format: {type: json_schema, …}` with the answer schema.
    JsonSchema,
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
    /// Chat Completions only: how the key is sent.
    pub auth: OpenAiAuth,
    /// Chat Completions only: the token limit's field name.
    pub max_tokens_field: MaxTokensField,
    /// Chat Completions only: structured output.
    pub response_format: ResponseFormat,
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

/// The official OpenAI API host, which documents `max_completion_tokens`.
const OPENAI_HOST: &str = "api.openai.com";

/// `var` as one of `options` (case-insensitive); `None` when unset.
fn choice<T: Copy>(env: &Env, var: &str, options: &[(&str, T)]) -> Result<Option<T>, ConfigError> {
    let Some(raw) = env.get(var) else {
        return Ok(None);
    };
    let raw = raw.trim().to_ascii_lowercase();
    match options.iter().find(|(name, _)| *name == raw) {
        Some((_, value)) => Ok(Some(*value)),
        None => {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            Err(ConfigError::invalid(
                var,
                format!("expected one of {}", names.join(", ")),
            ))
        }
    }
}

/// A Chat Completions setting: refused with another provider, where it
/// would silently do nothing.
fn openai_choice<T: Copy>(
    env: &Env,
    provider: Provider,
    var: &str,
    options: &[(&str, T)],
) -> Result<Option<T>, ConfigError> {
    let value = choice(env, var, options)?;
    if value.is_some() && provider != Provider::OpenAi {
        return Err(ConfigError::invalid(var, "only applies to DRAFTER=openai"));
    }
    Ok(value)
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
        let drafters = [
            ("rules", None),
            ("openai", Some(Provider::OpenAi)),
            ("anthropic", Some(Provider::Anthropic)),
        ];
        let Some(provider) = choice(env, "DRAFTER", &drafters)?.flatten() else {
            return Ok(Self::default());
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
        let auth = openai_choice(
            env,
            provider,
            "DRAFTER_AUTH",
            &[
                ("bearer", OpenAiAuth::Bearer),
                ("api-key", OpenAiAuth::ApiKey),
            ],
        )?
        .unwrap_or(OpenAiAuth::Bearer);
        if auth == OpenAiAuth::ApiKey && api_key.is_none() {
            return Err(ConfigError::Missing {
                var: "DRAFTER_API_KEY".to_owned(),
            });
        }
        let official = base_url
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case(OPENAI_HOST));
        let max_tokens_field = openai_choice(
            env,
            provider,
            "DRAFTER_MAX_TOKENS_FIELD",
            &[
                ("max_tokens", MaxTokensField::MaxTokens),
                ("max_completion_tokens", MaxTokensField::MaxCompletionTokens),
            ],
        )?
        .unwrap_or(if official {
            MaxTokensField::MaxCompletionTokens
        } else {
            MaxTokensField::MaxTokens
        });
        let response_format = openai_choice(
            env,
            provider,
            "DRAFTER_RESPONSE_FORMAT",
            &[
                ("none", ResponseFormat::None),
                ("json_schema", ResponseFormat::JsonSchema),
            ],
        )?
        .unwrap_or(ResponseFormat::None);
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
        let fallback = choice(
            env,
            "DRAFTER_FALLBACK",
            &[("rules", Fallback::Rules), ("human", Fallback::Human)],
        )?
        .unwrap_or(Fallback::Rules);
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
                auth,
                max_tokens_field,
                response_format,
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
        assert_eq!(c.auth, OpenAiAuth::Bearer);
        assert_eq!(c.response_format, ResponseFormat::None);
        assert_eq!(c.temperature, None);
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
    fn token_limit_field_follows_the_host_unless_set() {
        let field = |pairs: &[(&str, &str)]| {
            let mut all = vec![
                ("DRAFTER", "openai"),
                ("DRAFTER_MODEL", "o4-mini"),
                ("DRAFTER_API_KEY", "k"),
            ];
            all.extend_from_slice(pairs);
            cfg(&all).unwrap().model.unwrap().max_tokens_field
        };
        assert_eq!(field(&[]), MaxTokensField::MaxCompletionTokens);
        assert_eq!(
            field(&[("DRAFTER_BASE_URL", "https://API.OpenAI.com/v1/")]),
            MaxTokensField::MaxCompletionTokens
        );
        assert_eq!(
            field(&[("DRAFTER_BASE_URL", "https://litellm.internal/v1")]),
            MaxTokensField::MaxTokens
        );
        assert_eq!(
            field(&[(
                "DRAFTER_BASE_URL",
                "https://acme.openai.azure.com/openai/v1"
            )]),
            MaxTokensField::MaxTokens
        );
        assert_eq!(
            field(&[("DRAFTER_MAX_TOKENS_FIELD", "max_tokens")]),
            MaxTokensField::MaxTokens
        );
        assert_eq!(
            field(&[
                (
                    "DRAFTER_BASE_URL",
                    "https://acme.openai.azure.com/openai/v1"
                ),
                ("DRAFTER_MAX_TOKENS_FIELD", "MAX_COMPLETION_TOKENS"),
            ]),
            MaxTokensField::MaxCompletionTokens
        );
    }

    #[test]
    fn azure_api_key_header_and_structured_output() {
        let c = cfg(&[
            ("DRAFTER", "openai"),
            ("DRAFTER_MODEL", "my-gpt-deployment"),
            ("DRAFTER_API_KEY", "azure-key"),
            ("DRAFTER_AUTH", "api-key"),
            (
                "DRAFTER_BASE_URL",
                "https://acme.openai.azure.com/openai/v1",
            ),
            ("DRAFTER_RESPONSE_FORMAT", "json_schema"),
        ])
        .unwrap()
        .model
        .unwrap();
        assert_eq!(c.auth, OpenAiAuth::ApiKey);
        assert_eq!(c.response_format, ResponseFormat::JsonSchema);
        assert_eq!(
            c.endpoint(),
            "https://acme.openai.azure.com/openai/v1/chat/completions"
        );
        // The api-key header needs a key to send.
        let e = cfg(&[
            ("DRAFTER", "openai"),
            ("DRAFTER_MODEL", "m"),
            ("DRAFTER_AUTH", "api-key"),
            ("DRAFTER_BASE_URL", "http://127.0.0.1:9/v1"),
        ])
        .unwrap_err();
        assert_eq!(e.to_string(), "DRAFTER_API_KEY is required but not set");
    }

    #[test]
    fn chat_completions_settings_are_refused_for_anthropic() {
        for var in [
            "DRAFTER_AUTH",
            "DRAFTER_MAX_TOKENS_FIELD",
            "DRAFTER_RESPONSE_FORMAT",
        ] {
            let value = match var {
                "DRAFTER_AUTH" => "bearer",
                "DRAFTER_MAX_TOKENS_FIELD" => "max_tokens",
                _ => "none",
            };
            let e = cfg(&[
                ("DRAFTER", "anthropic"),
                ("DRAFTER_MODEL", "m"),
                ("DRAFTER_API_KEY", "k"),
                (var, value),
            ])
            .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("{var} is invalid: only applies to DRAFTER=openai")
            );
        }
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
            ("DRAFTER_AUTH", "basic"),
            ("DRAFTER_MAX_TOKENS_FIELD", "max_output_tokens"),
            ("DRAFTER_RESPONSE_FORMAT", "json_object"),
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
