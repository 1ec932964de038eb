//! Auth settings, read from the environment (DESIGN.md, "Configuration").

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use zengate_core::Secret;
use zengate_runtime::client_ip::TrustedProxies;
use zengate_runtime::config::Common;
use zengate_runtime::nats::NatsConfig;
use zengate_runtime::{ConfigError, Env};

use crate::keys::{KeySources, SecretSource};

/// Zendesk refuses Chat tokens whose `exp` is more than 7 minutes after `iat`.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(7 * 60);

/// Where user records come from.
#[derive(Debug, Clone)]
pub enum LookupConfig {
    /// `zengate:auth:user:<sha256>` keys in Redis (default).
    Redis,
    /// The operator's own system, asked over HTTP.
    Http {
        url: String,
        timeout: Duration,
        /// Sent as the `Authorization` header when set.
        authorization: Option<Secret>,
    },
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub addr: SocketAddr,
    pub nats: NatsConfig,
    pub redis: zengate_runtime::RedisConfig,
    /// Bounds on HTTP clients (`HTTP_*`).
    pub http: zengate_runtime::HttpLimits,
    pub redis_timeout: Duration,
    pub keys: KeySources,
    /// `exp - iat` of every token.
    pub token_ttl: Duration,
    /// How often secret files are re-read for changes.
    pub secret_poll: Duration,
    /// Origins allowed to call the Bearer endpoints from a browser; empty = none.
    pub allowed_origins: Vec<String>,
    pub lookup: LookupConfig,
    /// Audits kept in memory while NATS is unreachable.
    pub audit_buffer: usize,
    pub publish_timeout: Duration,
    /// Issuances per user_token per minute (0 = unlimited).
    pub rate_limit_per_token: u64,
    /// Requests per client IP per minute (0 = unlimited).
    pub rate_limit_per_ip: u64,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl AuthConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = Common::from_env(env)?;
        let token_ttl = env.duration_or("AUTH_TOKEN_TTL", Duration::from_secs(300))?;
        if token_ttl > MAX_TOKEN_TTL {
            return Err(ConfigError::invalid(
                "AUTH_TOKEN_TTL",
                "must not exceed 7m (Zendesk refuses exp more than 7 minutes after iat)",
            ));
        }
        if token_ttl < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "AUTH_TOKEN_TTL",
                "must be at least 1s",
            ));
        }
        let audit_buffer = env.parse_or("AUTH_AUDIT_BUFFER", 10_000usize)?;
        if audit_buffer == 0 {
            return Err(ConfigError::invalid(
                "AUTH_AUDIT_BUFFER",
                "must be positive",
            ));
        }
        let secret_poll = env.duration_or("AUTH_SECRET_POLL", Duration::from_secs(5))?;
        if secret_poll.is_zero() {
            return Err(ConfigError::invalid("AUTH_SECRET_POLL", "must be positive"));
        }
        let lookup = match env.get("AUTH_USER_LOOKUP_URL") {
            None => LookupConfig::Redis,
            Some(url) => {
                let url = url.trim().to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::invalid(
                        "AUTH_USER_LOOKUP_URL",
                        "expected an http:// or https:// URL",
                    ));
                }
                LookupConfig::Http {
                    url,
                    timeout: env.duration_or("AUTH_USER_LOOKUP_TIMEOUT", Duration::from_secs(2))?,
                    authorization: env.secret_opt("AUTH_USER_LOOKUP_AUTHORIZATION")?,
                }
            }
        };
        Ok(Self {
            addr: env.addr_or("AUTH_ADDR", "0.0.0.0:8081")?,
            nats: common.nats,
            redis: common.redis,
            http: common.http,
            redis_timeout: env.duration_or("REDIS_TIMEOUT", Duration::from_millis(250))?,
            keys: key_sources(env)?,
            token_ttl,
            secret_poll,
            allowed_origins: list(env, "AUTH_ALLOWED_ORIGINS"),
            lookup,
            audit_buffer,
            publish_timeout: env.duration_or("AUTH_PUBLISH_TIMEOUT", Duration::from_secs(2))?,
            rate_limit_per_token: env.parse_or("AUTH_RATE_LIMIT_PER_TOKEN", 30u64)?,
            rate_limit_per_ip: env.parse_or("AUTH_RATE_LIMIT_PER_IP", 120u64)?,
            trusted_proxies: trusted_proxies(env)?,
        })
    }
}

fn list(env: &Env, var: &str) -> Vec<String> {
    env.get(var)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().trim_end_matches('/').to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn trusted_proxies(env: &Env) -> Result<Vec<IpNet>, ConfigError> {
    Ok(TrustedProxies::from_env(env, "AUTH_TRUSTED_PROXIES")?.into_inner())
}

fn source(env: &Env, var: &str) -> Result<Option<SecretSource>, ConfigError> {
    // Validates now (fail fast) and remembers where to re-read from.
    let value = env.secret_opt(var)?;
    Ok(match (value, env.secret_file(var)) {
        (None, _) => None,
        (Some(_), Some(path)) => Some(SecretSource::File {
            var: format!("{var}_FILE"),
            path,
        }),
        (Some(s), None) => Some(SecretSource::Inline(s)),
    })
}

fn key_sources(env: &Env) -> Result<KeySources, ConfigError> {
    let widget = source(env, "ZENDESK_JWT_SHARED_SECRET")?.ok_or_else(|| ConfigError::Missing {
        var: "ZENDESK_JWT_SHARED_SECRET".to_owned(),
    })?;
    let kid = env.get("ZENDESK_MESSAGING_KEY_ID");
    let secret = source(env, "ZENDESK_MESSAGING_SECRET")?;
    let messaging = match (kid, secret) {
        (None, None) => None,
        (Some(kid), Some(secret)) => Some((kid.trim().to_owned(), secret)),
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                var: "ZENDESK_MESSAGING_SECRET".to_owned(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                var: "ZENDESK_MESSAGING_KEY_ID".to_owned(),
            });
        }
    };
    let extra = source(env, "ZENDESK_MESSAGING_KEYS")?;
    let sources = KeySources {
        widget,
        messaging,
        messaging_keys: extra,
    };
    // Parse once so a malformed list fails at start-up.
    sources.load()?;
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![("ZENDESK_JWT_SHARED_SECRET", "s3cr3t-value")]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = base();
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults() {
        let c = AuthConfig::from_env(&with(&[])).unwrap();
        assert_eq!(c.addr.port(), 8081);
        assert_eq!(c.token_ttl, Duration::from_secs(300));
        assert_eq!(c.audit_buffer, 10_000);
        assert_eq!(c.rate_limit_per_token, 30);
        assert_eq!(c.rate_limit_per_ip, 120);
        assert!(c.allowed_origins.is_empty());
        assert!(matches!(c.lookup, LookupConfig::Redis));
        assert!(c.keys.messaging.is_none());
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = AuthConfig::from_env(&Env::from_pairs([("X", "1")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ZENDESK_JWT_SHARED_SECRET is required but not set"
        );
        let e = AuthConfig::from_env(&with(&[("AUTH_TOKEN_TTL", "8m")])).unwrap_err();
        assert!(
            e.to_string().starts_with("AUTH_TOKEN_TTL is invalid"),
            "{e}"
        );
        assert!(AuthConfig::from_env(&with(&[("AUTH_TOKEN_TTL", "7m")])).is_ok());
        let e = AuthConfig::from_env(&with(&[("ZENDESK_MESSAGING_KEY_ID", "app_1")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ZENDESK_MESSAGING_SECRET is required but not set"
        );
        let e = AuthConfig::from_env(&with(&[("AUTH_TRUSTED_PROXIES", "10.0.0.0/8,nope")]))
            .unwrap_err();
        assert!(e.to_string().starts_with("AUTH_TRUSTED_PROXIES"), "{e}");
        let e = AuthConfig::from_env(&with(&[("ZENDESK_MESSAGING_KEYS", "nocolon")])).unwrap_err();
        assert!(e.to_string().starts_with("ZENDESK_MESSAGING_KEYS"), "{e}");
        let e = AuthConfig::from_env(&with(&[("AUTH_USER_LOOKUP_URL", "ftp://x")])).unwrap_err();
        assert!(e.to_string().starts_with("AUTH_USER_LOOKUP_URL"), "{e}");
    }

    #[test]
    fn lists() {
        let c = AuthConfig::from_env(&with(&[
            (
                "AUTH_ALLOWED_ORIGINS",
                "https://a.example, https://b.example/",
            ),
            ("AUTH_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("ZENDESK_MESSAGING_KEY_ID", "app_1"),
            ("ZENDESK_MESSAGING_SECRET", "m"),
            ("ZENDESK_MESSAGING_KEYS", "app_0:old"),
        ]))
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.trusted_proxies.len(), 2);
        let keys = c.keys.load().unwrap();
        assert_eq!(keys.messaging_kids(), ["app_1", "app_0"]);
    }
}
