//! Worker settings, read from the environment (DESIGN.md, "Configuration").
//! Every error names the variable so a bad deployment fails at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use zendesk_client::ClientConfig;

use crate::llm::DrafterConfig;
use zengate_core::release::{self, ReleaseKeys};
use zengate_runtime::bus::Backoff;
use zengate_runtime::config::Common;
use zengate_runtime::nats::NatsConfig;
use zengate_runtime::{ConfigError, Env};

/// The ticket subjects consumed unless `WORKER_FILTER_SUBJECTS` says otherwise.
/// The variable holding the release-verification keys.
const RELEASE_KEYS_VAR: &str = "ZENGATE_RELEASE_SIGNING_SECRET";

pub const DEFAULT_FILTER: &str = "zendesk.*.ticket.*.*";

/// How long a delivery's lease lasts without a progress ack: a replica that
/// dies mid-event has its message redelivered this long after its last one.
/// A live handler renews the lease every quarter of it (`zengate_runtime::bus::with_lease`).
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(3);

/// Which halves of the worker this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Drafting and executing (the default; one binary for small deployments).
    All,
    /// Only consume ticket events and publish proposals.
    Drafter,
    /// Only execute released approvals.
    Executor,
}

impl Role {
    pub fn drafts(self) -> bool {
        matches!(self, Role::All | Role::Drafter)
    }

    pub fn executes(self) -> bool {
        matches!(self, Role::All | Role::Executor)
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Role::All),
            "drafter" => Ok(Role::Drafter),
            "executor" => Ok(Role::Executor),
            _ => Err("expected all, drafter or executor".to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub addr: SocketAddr,
    pub nats: NatsConfig,
    pub redis: zengate_runtime::RedisConfig,
    /// Bounds on HTTP clients (`HTTP_*`).
    pub http: zengate_runtime::HttpLimits,
    /// The only account whose events and approvals this worker acts on.
    pub account_id: u64,
    pub zendesk: ClientConfig,
    /// Number of ordering partitions. Fixed per deployment: changing it would
    /// move tickets between partitions while their events are in flight.
    pub partitions: u32,
    /// Provider subjects to consume, each `zendesk.<account|*>.ticket.*.<action|*>`.
    pub filter_subjects: Vec<String>,
    /// How long a delivery may stay unacknowledged before it is redelivered
    /// (a live handler extends it with confirmed progress acks, and stops
    /// when it cannot). Bounds fail-over after a replica dies.
    pub ack_wait: Duration,
    /// Deliveries per message before it goes to the dead-letter subject.
    pub max_deliver: u32,
    /// First redelivery delay after a failed attempt; doubles per attempt.
    pub retry_backoff: Duration,
    /// Upper bound of the redelivery delay.
    pub retry_backoff_max: Duration,
    /// How long one pull request waits for a message; bounds shutdown latency.
    pub fetch_wait: Duration,
    pub rules_file: Option<PathBuf>,
    pub role: Role,
    /// Also skip comments by staff authors other than the API user.
    pub skip_staff_comments: bool,
    /// How many recent comments the drafter sees.
    pub comments_limit: usize,
    /// How long "already proposed" and execution records are kept; longer than
    /// any redelivery or replay of the same source can happen.
    pub record_ttl: Duration,
    /// Concurrent executions per process.
    pub executor_concurrency: usize,
    pub redis_timeout: Duration,
    pub nats_timeout: Duration,
    /// Keys that verify release signatures (`ZENGATE_RELEASE_SIGNING_SECRET`);
    /// required when this worker executes.
    pub release_keys: Option<ReleaseKeys>,
    /// `DRAFTER*`: the rules drafter (default) or a model.
    pub drafter: DrafterConfig,
}

impl WorkerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let common = Common::from_env(env)?;
        let partitions: u32 = env.parse_or("WORKER_PARTITIONS", 32)?;
        if !(1..=1024).contains(&partitions) {
            return Err(ConfigError::invalid(
                "WORKER_PARTITIONS",
                "must be between 1 and 1024",
            ));
        }
        let filter_subjects =
            parse_filters(&env.string_or("WORKER_FILTER_SUBJECTS", DEFAULT_FILTER))
                .map_err(|reason| ConfigError::invalid("WORKER_FILTER_SUBJECTS", reason))?;
        let ack_wait = env.duration_or("WORKER_ACK_WAIT", DEFAULT_ACK_WAIT)?;
        if ack_wait < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "WORKER_ACK_WAIT",
                "must be at least 1s",
            ));
        }
        let max_deliver: u32 = env.parse_or("WORKER_MAX_DELIVER", 5)?;
        if !(1..=100).contains(&max_deliver) {
            return Err(ConfigError::invalid(
                "WORKER_MAX_DELIVER",
                "must be between 1 and 100",
            ));
        }
        let executor_concurrency: usize = env.parse_or("WORKER_EXECUTOR_CONCURRENCY", 4)?;
        if executor_concurrency == 0 {
            return Err(ConfigError::invalid(
                "WORKER_EXECUTOR_CONCURRENCY",
                "must be positive",
            ));
        }
        let fetch_wait = env.duration_or("WORKER_FETCH_WAIT", Duration::from_secs(2))?;
        if fetch_wait < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "WORKER_FETCH_WAIT",
                "must be at least 100ms",
            ));
        }
        let account_id = env.positive_id("ZENDESK_ACCOUNT_ID")?;
        let role = env.parse_or("WORKER_ROLE", Role::All)?;
        let release_keys = if role.executes() {
            let keys = env.signing_keys(RELEASE_KEYS_VAR, release::MIN_KEY_LEN)?;
            Some(ReleaseKeys::new(keys).ok_or_else(|| ConfigError::Missing {
                var: RELEASE_KEYS_VAR.to_owned(),
            })?)
        } else {
            None
        };
        Ok(Self {
            addr: env.addr_or("WORKER_ADDR", "0.0.0.0:8083")?,
            nats: common.nats,
            redis: common.redis,
            http: common.http,
            account_id,
            zendesk: ClientConfig::from_env(env)?,
            partitions,
            filter_subjects,
            ack_wait,
            max_deliver,
            retry_backoff: env.duration_or("WORKER_RETRY_BACKOFF", Duration::from_secs(1))?,
            retry_backoff_max: env
                .duration_or("WORKER_RETRY_BACKOFF_MAX", Duration::from_secs(60))?,
            fetch_wait,
            rules_file: env.get("WORKER_RULES_FILE").map(PathBuf::from),
            role,
            skip_staff_comments: env.bool_or("WORKER_SKIP_STAFF_COMMENTS", true)?,
            comments_limit: env.parse_or("WORKER_COMMENTS_LIMIT", 10usize)?,
            record_ttl: env.duration_or("WORKER_RECORD_TTL", Duration::from_secs(30 * 86400))?,
            executor_concurrency,
            redis_timeout: env.duration_or("REDIS_TIMEOUT", Duration::from_millis(500))?,
            nats_timeout: env.duration_or("WORKER_NATS_TIMEOUT", Duration::from_secs(5))?,
            release_keys,
            drafter: DrafterConfig::from_env(env)?,
        })
    }

    /// How long an execution claim whose holder stopped renewing it stays
    /// untouchable: the holder's lease on the delivery plus the longest a
    /// Zendesk request it had sent can take. After that the next attempt
    /// takes over, checking the ticket for the write before writing.
    pub fn execution_lease(&self) -> Duration {
        self.ack_wait + self.zendesk.timeout
    }

    /// Redelivery delays after a failed attempt.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            first: self.retry_backoff,
            max: self.retry_backoff_max,
        }
    }
}

/// Splits and checks the comma list: every entry must be a five-token ticket
/// subject with a wildcard ticket id, so it can be partitioned by ticket.
pub fn parse_filters(raw: &str) -> Result<Vec<String>, String> {
    let filters: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if filters.is_empty() {
        return Err("at least one subject is required".to_owned());
    }
    for f in &filters {
        let t: Vec<&str> = f.split('.').collect();
        let ok = t.len() == 5
            && t[0] == "zendesk"
            && t[2] == "ticket"
            && t[3] == "*"
            && t.iter()
                .all(|tok| *tok == "*" || zengate_core::subject::is_token(tok));
        if !ok {
            return Err(format!(
                "{f:?} must look like zendesk.<account or *>.ticket.*.<action or *>"
            ));
        }
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ZENDESK_ACCOUNT_ID", "42"),
            ("ZENDESK_SUBDOMAIN", "acme"),
            ("ZENDESK_EMAIL", "bot@example.com"),
            ("ZENDESK_API_TOKEN", "tok"),
            (
                "ZENGATE_RELEASE_SIGNING_SECRET",
                "release-key-0123456789abcdef0123456789",
            ),
        ]
    }

    #[test]
    fn release_keys_are_required_to_execute_only() {
        let without: Vec<_> = base()
            .into_iter()
            .filter(|(k, _)| *k != "ZENGATE_RELEASE_SIGNING_SECRET")
            .collect();
        let e = WorkerConfig::from_env(&Env::from_pairs(without.clone())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ZENGATE_RELEASE_SIGNING_SECRET is required but not set"
        );
        let mut drafter = without;
        drafter.push(("WORKER_ROLE", "drafter"));
        let c = WorkerConfig::from_env(&Env::from_pairs(drafter)).unwrap();
        assert!(c.release_keys.is_none());
        let mut short = base();
        short.retain(|(k, _)| *k != "ZENGATE_RELEASE_SIGNING_SECRET");
        short.push(("ZENGATE_RELEASE_SIGNING_SECRET", "short-key"));
        let e = WorkerConfig::from_env(&Env::from_pairs(short)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("ZENGATE_RELEASE_SIGNING_SECRET is invalid"),
            "{e}"
        );
        assert!(!e.to_string().contains("short-key"), "{e}");
    }

    #[test]
    fn defaults() {
        let c = WorkerConfig::from_env(&Env::from_pairs(base())).unwrap();
        assert_eq!(c.partitions, 32);
        assert_eq!(c.filter_subjects, vec![DEFAULT_FILTER.to_owned()]);
        assert_eq!(c.ack_wait, Duration::from_secs(3));
        assert_eq!(c.execution_lease(), Duration::from_secs(13));
        assert_eq!(c.max_deliver, 5);
        assert_eq!(c.role, Role::All);
        assert_eq!(c.addr.port(), 8083);
        assert!(!format!("{c:?}").contains("tok\""));
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("WORKER_PARTITIONS", "0"),
            ("WORKER_FILTER_SUBJECTS", "zendesk.>"),
            ("WORKER_FILTER_SUBJECTS", "zendesk.*.ticket.5.created"),
            ("WORKER_ACK_WAIT", "soon"),
            ("WORKER_MAX_DELIVER", "0"),
            ("WORKER_ROLE", "boss"),
            ("WORKER_ADDR", "nowhere"),
        ] {
            let mut pairs = base();
            pairs.push((var, value));
            let e = WorkerConfig::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert!(e.to_string().starts_with(var), "{var}: {e}");
        }
        let e =
            WorkerConfig::from_env(&Env::from_pairs([("ZENDESK_SUBDOMAIN", "acme")])).unwrap_err();
        assert_eq!(e.to_string(), "ZENDESK_ACCOUNT_ID is required but not set");
    }

    #[test]
    fn filters_and_backoff() {
        let f =
            parse_filters("zendesk.*.ticket.*.created, zendesk.42.ticket.*.comment_added").unwrap();
        assert_eq!(f.len(), 2);
        let mut pairs = base();
        pairs.push(("WORKER_RETRY_BACKOFF", "1s"));
        pairs.push(("WORKER_RETRY_BACKOFF_MAX", "5s"));
        let c = WorkerConfig::from_env(&Env::from_pairs(pairs)).unwrap();
        assert_eq!(c.backoff().after(1), Duration::from_secs(1));
        assert_eq!(c.backoff().after(2), Duration::from_secs(2));
        assert_eq!(c.backoff().after(10), Duration::from_secs(5));
    }
}
