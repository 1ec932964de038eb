//! Ingress settings, read from the environment (DESIGN.md, "Configuration").

use std::net::SocketAddr;
use std::time::Duration;

use zengate_core::Secret;
use zengate_core::signature::ZENDESK_TEST_SIGNING_SECRET;
use zengate_runtime::bus::ZendeskStreamSettings;
use zengate_runtime::config::Common;
use zengate_runtime::nats::NatsConfig;
use zengate_runtime::{ConfigError, Env};

/// The signature-age tolerance: refuse deliveries whose signature timestamp is
/// further than this from now (a humantime duration such as `5m`).
pub const SIGNATURE_MAX_AGE_VAR: &str = "ZENDESK_SIGNATURE_MAX_AGE";

#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub addr: SocketAddr,
    pub nats: NatsConfig,
    pub redis: zengate_runtime::RedisConfig,
    /// Bounds on HTTP clients (`HTTP_*`).
    pub http: zengate_runtime::HttpLimits,
    /// Any one of these verifies a delivery (rotation).
    pub secrets: Vec<Secret>,
    pub account_id: u64,
    pub webhook_id: Option<String>,
    pub body_limit: usize,
    /// Refuse signatures whose timestamp is further than this from now. Off by
    /// default: Zendesk documents no freshness window.
    pub signature_max_age: Option<Duration>,
    /// How long a delivered event id is remembered in Redis.
    pub dedup_horizon: Duration,
    /// Longest wait for a JetStream PubAck before answering 503.
    pub publish_timeout: Duration,
    /// Deadline of one Redis operation on the request path; past it the
    /// request goes on without Redis and repeated misses open the breaker.
    pub redis_timeout: Duration,
    /// Pause between background probes while the Redis breaker is open.
    pub redis_probe_interval: Duration,
    /// Body bytes held by all requests at once; beyond it `503` + `Retry-After`.
    pub max_inflight_bytes: usize,
    /// How far Zendesk's clock may stand from this host's. An event whose
    /// signed `time` is younger than the stream's duplicate window less this
    /// is deduplicated by JetStream alone (no Redis lookup); a skew at least
    /// as long as the window looks every event up.
    pub dedup_clock_skew: Duration,
    pub stream: ZendeskStreamSettings,
}

/// Default deadline of one Redis operation: a healthy Redis answers in well
/// under a millisecond (a few under load), so 50 ms never trips on a working
/// Redis yet bounds what a stalled one costs the requests in flight before
/// the breaker opens.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);

/// Default in-flight body budget: 32 MiB keeps the process well under 64 MB
/// resident under hundreds of parallel 1 MiB deliveries, while admitting
/// thousands of ordinary (~2-10 KB) events at once.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 32 * 1024 * 1024;

/// Default clock-skew allowance: hosts kept by NTP stand within a second of
/// each other; a minute leaves room for a drifting one.
pub const DEFAULT_DEDUP_CLOCK_SKEW: Duration = Duration::from_secs(60);

impl IngressConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = Common::from_env(env)?;
        let stream_replicas = common.nats.stream_replicas;
        let mut secrets = env.secret_list("ZENDESK_WEBHOOK_SIGNING_SECRET")?;
        if env.bool_or("ZENDESK_ACCEPT_TEST_SIGNATURES", false)? {
            secrets.push(Secret::new(ZENDESK_TEST_SIGNING_SECRET));
        }
        let body_limit = env.parse_or("INGRESS_BODY_LIMIT", 1024 * 1024usize)?;
        if body_limit == 0 {
            return Err(ConfigError::invalid(
                "INGRESS_BODY_LIMIT",
                "must be positive",
            ));
        }
        let max_inflight_bytes =
            env.parse_or("INGRESS_MAX_INFLIGHT_BYTES", DEFAULT_MAX_INFLIGHT_BYTES)?;
        if max_inflight_bytes < body_limit {
            return Err(ConfigError::invalid(
                "INGRESS_MAX_INFLIGHT_BYTES",
                "must be at least INGRESS_BODY_LIMIT",
            ));
        }
        let redis_timeout = env.duration_or("INGRESS_REDIS_TIMEOUT", DEFAULT_REDIS_TIMEOUT)?;
        if redis_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "INGRESS_REDIS_TIMEOUT",
                "must be positive",
            ));
        }
        let publish_timeout = env.duration_or("INGRESS_PUBLISH_TIMEOUT", Duration::from_secs(5))?;
        if publish_timeout >= Duration::from_secs(11) {
            return Err(ConfigError::invalid(
                "INGRESS_PUBLISH_TIMEOUT",
                "must stay below Zendesk's 12 s request timeout",
            ));
        }
        Ok(Self {
            addr: env.addr_or("INGRESS_ADDR", "0.0.0.0:8080")?,
            nats: common.nats,
            redis: common.redis,
            http: common.http,
            secrets,
            account_id: env.positive_id("ZENDESK_ACCOUNT_ID")?,
            webhook_id: env.get("ZENDESK_WEBHOOK_ID"),
            body_limit,
            signature_max_age: env.duration_opt(SIGNATURE_MAX_AGE_VAR)?,
            dedup_horizon: env
                .duration_or("INGRESS_DEDUP_HORIZON", Duration::from_secs(7 * 86400))?,
            publish_timeout,
            redis_timeout,
            redis_probe_interval: env
                .duration_or("INGRESS_REDIS_PROBE_INTERVAL", Duration::from_secs(1))?,
            max_inflight_bytes,
            dedup_clock_skew: env
                .duration_or("INGRESS_DEDUP_CLOCK_SKEW", DEFAULT_DEDUP_CLOCK_SKEW)?,
            stream: ZendeskStreamSettings {
                max_age: env
                    .duration_or("INGRESS_STREAM_MAX_AGE", Duration::from_secs(7 * 86400))?,
                duplicate_window: env
                    .duration_or("INGRESS_STREAM_DUPLICATE_WINDOW", Duration::from_secs(600))?,
                // The ingress's own name wins over the shared one.
                replicas: zengate_runtime::nats::stream_replicas(
                    env,
                    "INGRESS_STREAM_REPLICAS",
                    stream_replicas,
                )?,
            },
        })
    }

    /// Logs, once per start, the settings that leave verification weaker than
    /// an operator likely intends. Without a signature-age tolerance a
    /// captured delivery verifies forever: only the dedup horizon stops a
    /// replay, and only while its event id is remembered.
    pub fn warn_on_weak_settings(&self) {
        if self.signature_max_age.is_none() {
            tracing::warn!(
                variable = SIGNATURE_MAX_AGE_VAR,
                dedup_horizon_secs = self.dedup_horizon.as_secs(),
                "{SIGNATURE_MAX_AGE_VAR} is unset: deliveries are accepted whatever their \
                 signature timestamp, so a captured delivery can be replayed once its event \
                 id leaves the dedup horizon; set a tolerance such as 5m"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_and_defaults() {
        let e =
            IngressConfig::from_env(&Env::from_pairs([("ZENDESK_ACCOUNT_ID", "1")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ZENDESK_WEBHOOK_SIGNING_SECRET is required but not set"
        );
        let e = IngressConfig::from_env(&Env::from_pairs([
            ("ZENDESK_WEBHOOK_SIGNING_SECRET", "a"),
            ("ZENDESK_ACCOUNT_ID", "x1"),
        ]))
        .unwrap_err();
        assert!(e.to_string().starts_with("ZENDESK_ACCOUNT_ID is invalid"));
        let c = IngressConfig::from_env(&Env::from_pairs([
            ("ZENDESK_WEBHOOK_SIGNING_SECRET", "a,b"),
            ("ZENDESK_ACCOUNT_ID", "42"),
            ("ZENDESK_ACCEPT_TEST_SIGNATURES", "true"),
        ]))
        .unwrap();
        assert_eq!(c.secrets.len(), 3);
        assert_eq!(c.body_limit, 1 << 20);
        assert_eq!(c.addr.port(), 8080);
        assert!(c.signature_max_age.is_none());
        assert_eq!(c.redis_timeout, DEFAULT_REDIS_TIMEOUT);
        assert_eq!(c.max_inflight_bytes, DEFAULT_MAX_INFLIGHT_BYTES);
        let e = IngressConfig::from_env(&Env::from_pairs([
            ("ZENDESK_WEBHOOK_SIGNING_SECRET", "a"),
            ("ZENDESK_ACCOUNT_ID", "42"),
            ("INGRESS_MAX_INFLIGHT_BYTES", "1000"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("INGRESS_MAX_INFLIGHT_BYTES is invalid"),
            "{e}"
        );
        assert!(!format!("{c:?}").contains("dGhpc19"));
    }

    #[test]
    fn signature_max_age_parses_durations() {
        let with = |v: &str| {
            IngressConfig::from_env(&Env::from_pairs([
                ("ZENDESK_WEBHOOK_SIGNING_SECRET", "a"),
                ("ZENDESK_ACCOUNT_ID", "42"),
                (SIGNATURE_MAX_AGE_VAR, v),
            ]))
        };
        assert_eq!(
            with("5m").unwrap().signature_max_age,
            Some(Duration::from_secs(300))
        );
        let e = with("five minutes").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ZENDESK_SIGNATURE_MAX_AGE is invalid"),
            "{e}"
        );
    }
}
