//! Approval settings, read from the environment (DESIGN.md, "Configuration").

use std::net::SocketAddr;
use std::time::Duration;

use zengate_core::Secret;
use zengate_core::release::{self, ReleaseKeys};
use zengate_runtime::client_ip::TrustedProxies;
use zengate_runtime::config::Common;
use zengate_runtime::nats::NatsConfig;
use zengate_runtime::{ConfigError, Env};

use crate::auth::ApproverTokens;

/// What happens to an item nobody decided within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTimeout {
    /// Final: the proposal is dropped.
    Expire,
    /// Flagged for attention; a human can still approve or reject it.
    Escalate,
}

#[derive(Debug, Clone)]
pub struct ApprovalConfig {
    pub addr: SocketAddr,
    pub nats: NatsConfig,
    pub redis: zengate_runtime::RedisConfig,
    /// Bounds on HTTP clients (`HTTP_*`).
    pub http: zengate_runtime::HttpLimits,
    /// Used in `zengate.approval.requested.<account>.new` for visitor requests.
    pub account_id: u64,
    /// HS256 key of the visitor JWTs the auth service issues.
    pub jwt_secret: Secret,
    pub approvers: ApproverTokens,
    /// HMAC key of the signed resume links.
    pub resume_secret: Secret,
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
    pub sweep_interval: Duration,
    /// Base of the absolute resume links stored in each item.
    pub public_url: String,
    /// Visitor ticket requests allowed per visitor per `visitor_rate_window`.
    pub visitor_rate_limit: u64,
    pub visitor_rate_window: Duration,
    /// Approved items whose release was not confirmed for this long are
    /// re-published by the reconciler.
    pub reconcile_after: Duration,
    pub publish_timeout: Duration,
    pub redis_timeout: Duration,
    /// Signs every release (`ZENGATE_RELEASE_SIGNING_SECRET`).
    pub release_keys: ReleaseKeys,
    /// Peers whose `X-Forwarded-For` is believed (`APPROVAL_TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// Failed authentications per client per window before every request
    /// from it gets `429` (0 = no limit).
    pub auth_failure_limit: u64,
    pub auth_failure_window: Duration,
    /// How long a stream ticket (`POST /v1/events/ticket`) stays redeemable.
    pub stream_ticket_ttl: Duration,
    /// How long a settled item (rejected, expired, applied) stays in the
    /// bucket after its last change (`APPROVAL_RETENTION`; zero keeps
    /// everything). Open items are never dropped.
    pub retention: Duration,
    /// Settled items the in-memory index keeps (`APPROVAL_RECENT_LIMIT`).
    pub recent_limit: usize,
}

impl ApprovalConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = Common::from_env(env)?;
        let approvers = ApproverTokens::parse(&env.secret("APPROVER_TOKENS")?)
            .map_err(|reason| ConfigError::invalid("APPROVER_TOKENS", reason))?;
        let on_timeout = match env.string_or("APPROVAL_ON_TIMEOUT", "expire").as_str() {
            "expire" => OnTimeout::Expire,
            "escalate" => OnTimeout::Escalate,
            _ => {
                return Err(ConfigError::invalid(
                    "APPROVAL_ON_TIMEOUT",
                    "expected expire or escalate",
                ));
            }
        };
        let timeout = env.duration_or("APPROVAL_TIMEOUT", Duration::from_secs(24 * 3600))?;
        if timeout.is_zero() {
            return Err(ConfigError::invalid("APPROVAL_TIMEOUT", "must be positive"));
        }
        let sweep_interval = env.duration_or("APPROVAL_SWEEP_INTERVAL", Duration::from_secs(30))?;
        if sweep_interval.is_zero() {
            return Err(ConfigError::invalid(
                "APPROVAL_SWEEP_INTERVAL",
                "must be positive",
            ));
        }
        let public_url = env
            .string_or("APPROVAL_PUBLIC_URL", "http://127.0.0.1:8082")
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                "APPROVAL_PUBLIC_URL",
                "expected an absolute http(s) URL",
            ));
        }
        let retention = env.duration_or("APPROVAL_RETENTION", crate::retention::DEFAULT)?;
        if !retention.is_zero() && retention < crate::retention::MINIMUM {
            return Err(ConfigError::invalid(
                "APPROVAL_RETENTION",
                "must be 0 (keep everything) or at least 1h",
            ));
        }
        crate::retention::warn_if_records_outlive(
            retention,
            env.duration_or("WORKER_RECORD_TTL", crate::retention::DEFAULT)?,
        );
        let resume_secret = env.secret("APPROVAL_RESUME_SECRET")?;
        if resume_secret.expose().len() < 16 {
            return Err(ConfigError::invalid(
                "APPROVAL_RESUME_SECRET",
                "must be at least 16 characters",
            ));
        }
        Ok(Self {
            addr: env.addr_or("APPROVAL_ADDR", "0.0.0.0:8082")?,
            nats: common.nats,
            redis: common.redis,
            http: common.http,
            account_id: env.positive_id("ZENDESK_ACCOUNT_ID")?,
            jwt_secret: env.secret("ZENDESK_JWT_SHARED_SECRET")?,
            approvers,
            resume_secret,
            timeout,
            on_timeout,
            sweep_interval,
            public_url,
            visitor_rate_limit: env.parse_or("APPROVAL_VISITOR_RATE_LIMIT", 5u64)?,
            visitor_rate_window: env
                .duration_or("APPROVAL_VISITOR_RATE_WINDOW", Duration::from_secs(600))?,
            reconcile_after: env.duration_or("APPROVAL_RECONCILE_AFTER", Duration::from_secs(5))?,
            publish_timeout: env.duration_or("APPROVAL_PUBLISH_TIMEOUT", Duration::from_secs(5))?,
            redis_timeout: env.duration_or("REDIS_TIMEOUT", Duration::from_millis(250))?,
            release_keys: release_keys(env)?,
            trusted_proxies: TrustedProxies::from_env(env, "APPROVAL_TRUSTED_PROXIES")?,
            auth_failure_limit: env.parse_or("APPROVAL_AUTH_FAILURE_LIMIT", 20u64)?,
            auth_failure_window: positive(
                env,
                "APPROVAL_AUTH_FAILURE_WINDOW",
                Duration::from_secs(60),
            )?,
            stream_ticket_ttl: positive(
                env,
                "APPROVAL_STREAM_TICKET_TTL",
                crate::auth::stream_ticket::DEFAULT_TTL,
            )?,
            retention,
            recent_limit: env.parse_or("APPROVAL_RECENT_LIMIT", 1000usize)?,
        })
    }
}

/// `ZENGATE_RELEASE_SIGNING_SECRET`: required, each key at least 32 characters.
pub fn release_keys(env: &Env) -> Result<ReleaseKeys, ConfigError> {
    const VAR: &str = "ZENGATE_RELEASE_SIGNING_SECRET";
    ReleaseKeys::new(env.signing_keys(VAR, release::MIN_KEY_LEN)?).ok_or_else(|| {
        ConfigError::Missing {
            var: VAR.to_owned(),
        }
    })
}

fn positive(env: &Env, var: &str, default: Duration) -> Result<Duration, ConfigError> {
    let d = env.duration_or(var, default)?;
    if d < Duration::from_secs(1) {
        return Err(ConfigError::invalid(var, "must be at least 1s"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ZENDESK_ACCOUNT_ID", "42"),
            ("ZENDESK_JWT_SHARED_SECRET", "jwt-secret"),
            (
                "APPROVER_TOKENS",
                "alice:tok-a-0123456789abcdef0123456789,bob:tok-b-0123456789abcdef0123456789",
            ),
            ("APPROVAL_RESUME_SECRET", "resume-secret-0123456789"),
            (
                "ZENGATE_RELEASE_SIGNING_SECRET",
                "release-key-0123456789abcdef0123456789",
            ),
        ]
    }

    #[test]
    fn defaults_and_errors_name_the_variable() {
        let c = ApprovalConfig::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(c.addr.port(), 8082);
        assert_eq!(c.timeout, Duration::from_secs(86400));
        assert_eq!(c.on_timeout, OnTimeout::Expire);
        assert_eq!(c.public_url, "http://127.0.0.1:8082");
        assert!(!format!("{c:?}").contains("tok-a"));
        assert_eq!(c.auth_failure_limit, 20);
        assert_eq!(c.auth_failure_window, Duration::from_secs(60));
        assert!(c.trusted_proxies.is_empty());
        assert!(!format!("{c:?}").contains("resume-secret"));
        assert_eq!(c.retention, Duration::from_secs(30 * 86400));
        assert_eq!(c.recent_limit, 1000);

        for (var, bad) in [
            ("APPROVAL_ON_TIMEOUT", "explode"),
            ("APPROVAL_TIMEOUT", "soon"),
            ("APPROVER_TOKENS", "alice"),
            ("APPROVAL_PUBLIC_URL", "ftp://x"),
            ("APPROVAL_RESUME_SECRET", "short"),
            ("ZENGATE_RELEASE_SIGNING_SECRET", "too-short-key"),
            ("APPROVAL_TRUSTED_PROXIES", "10.0.0.0/8,nope"),
            ("APPROVAL_AUTH_FAILURE_LIMIT", "many"),
            ("APPROVAL_AUTH_FAILURE_WINDOW", "0s"),
            ("APPROVAL_RETENTION", "10m"),
            ("APPROVAL_RECENT_LIMIT", "lots"),
        ] {
            let mut pairs = base();
            pairs.retain(|(k, _)| *k != var);
            pairs.push((var, bad));
            let e = ApprovalConfig::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert!(e.to_string().starts_with(var), "{e}");
            if var != "APPROVAL_ON_TIMEOUT"
                && var != "APPROVAL_TIMEOUT"
                && var != "APPROVAL_RETENTION"
                && var != "APPROVAL_PUBLIC_URL"
            {
                assert!(!e.to_string().contains(bad), "{e}");
            }
        }
        let mut pairs = base();
        pairs.retain(|(k, _)| *k != "ZENDESK_JWT_SHARED_SECRET");
        let e = ApprovalConfig::from_env(&Env::from_pairs(pairs)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ZENDESK_JWT_SHARED_SECRET is required but not set"
        );
    }
}
