//! Redis records that make redeliveries harmless beyond JetStream's duplicate
//! window: "this source was already proposed" and the per-approval execution
//! guard: `executing:<unix time>` (a claim, renewed while its holder works,
//! leased for [`crate::WorkerConfig::execution_lease`]) →
//! `applied:<id>` / `failed:<reason>`, or `interrupted:<time>` when an attempt
//! ended without knowing whether its write landed.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use zengate_runtime::redis_store::{RedisStore, StoreError};

const PROPOSED_PREFIX: &str = "zengate:worker:proposed:";
const EXEC_PREFIX: &str = "zengate:worker:exec:";

/// What `begin_execution` found, and whether this attempt now holds the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecState {
    /// No record: this attempt claimed it; nobody wrote before.
    Fresh,
    /// An earlier attempt ended without knowing whether its write landed
    /// (a failure after the claim, or a crash whose claim went stale). This
    /// attempt now holds the claim and must check before writing.
    Resume,
    /// Another attempt claimed it less than a lease ago and may be writing
    /// right now; `remaining` is what is left of its lease.
    Busy { remaining: Duration },
    /// Done; `result_id` is the comment or ticket written, when known.
    Applied { result_id: Option<String> },
    /// Given up on for good; the reason.
    Failed { reason: String },
}

#[derive(Debug, Clone)]
pub struct Records {
    redis: Arc<RedisStore>,
    ttl: Duration,
}

impl Records {
    pub fn new(redis: Arc<RedisStore>, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    pub async fn was_proposed(&self, approval_id: &str) -> Result<bool, StoreError> {
        let n: u64 = self
            .redis
            .query(redis::cmd("EXISTS").arg(format!("{PROPOSED_PREFIX}{approval_id}")))
            .await?;
        Ok(n > 0)
    }

    pub async fn mark_proposed(&self, approval_id: &str) -> Result<(), StoreError> {
        let _: () = self
            .redis
            .query(
                redis::cmd("SET")
                    .arg(format!("{PROPOSED_PREFIX}{approval_id}"))
                    .arg(OffsetDateTime::now_utc().unix_timestamp())
                    .arg("EX")
                    .arg(self.ttl_secs()),
            )
            .await?;
        Ok(())
    }

    /// Atomically claims the approval (`executing:<now>`) when there is no
    /// record, an `interrupted` one, or an `executing` one older than
    /// `lease` (its holder crashed); otherwise reports what is there.
    pub async fn begin_execution(
        &self,
        approval_id: &str,
        lease: Duration,
    ) -> Result<ExecState, StoreError> {
        let script = redis::Script::new(
            r"local v = redis.call('GET', KEYS[1])
              local now = tonumber(ARGV[1])
              local claim = function()
                redis.call('SET', KEYS[1], 'executing:' .. ARGV[1], 'EX', ARGV[2])
              end
              if not v then claim() return {'fresh', ''} end
              if string.sub(v, 1, 12) == 'interrupted:' then claim() return {'resume', v} end
              if string.sub(v, 1, 10) == 'executing:' then
                local since = tonumber(string.sub(v, 11)) or 0
                if now - since >= tonumber(ARGV[3]) then claim() return {'resume', v} end
                return {'busy', v}
              end
              return {'done', v}",
        );
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let lease_secs = lease.as_secs().max(1);
        let mut invocation = script.key(format!("{EXEC_PREFIX}{approval_id}"));
        invocation.arg(now).arg(self.ttl_secs()).arg(lease_secs);
        let (kind, previous): (String, String) = self.redis.script(&invocation).await?;
        Ok(match kind.as_str() {
            "fresh" => ExecState::Fresh,
            "resume" => ExecState::Resume,
            "busy" => {
                let since: i64 = previous
                    .strip_prefix("executing:")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(now);
                let left = (since + lease_secs as i64 - now).max(1) as u64;
                ExecState::Busy {
                    remaining: Duration::from_secs(left),
                }
            }
            _ => parse_done(&previous),
        })
    }

    /// Renews a live claim (`executing:<now>`), so it goes stale only a
    /// lease after its holder stopped; any other state is left alone.
    pub async fn renew_execution(&self, approval_id: &str) -> Result<(), StoreError> {
        let script = redis::Script::new(
            r"local v = redis.call('GET', KEYS[1])
              if v and string.sub(v, 1, 10) == 'executing:' then
                redis.call('SET', KEYS[1], 'executing:' .. ARGV[1], 'EX', ARGV[2])
              end
              return 0",
        );
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut invocation = script.key(format!("{EXEC_PREFIX}{approval_id}"));
        invocation.arg(now).arg(self.ttl_secs());
        let _: i64 = self.redis.script(&invocation).await?;
        Ok(())
    }

    /// The attempt holding the claim ended without knowing whether its write
    /// landed; the next attempt may take over at once (after checking).
    pub async fn mark_interrupted(&self, approval_id: &str) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.set_exec(approval_id, format!("interrupted:{now}"))
            .await
    }

    pub async fn mark_applied(
        &self,
        approval_id: &str,
        result_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.set_exec(approval_id, format!("applied:{}", result_id.unwrap_or("")))
            .await
    }

    pub async fn mark_failed(&self, approval_id: &str, reason: &str) -> Result<(), StoreError> {
        self.set_exec(approval_id, format!("failed:{reason}")).await
    }

    async fn set_exec(&self, approval_id: &str, value: String) -> Result<(), StoreError> {
        let _: () = self
            .redis
            .query(
                redis::cmd("SET")
                    .arg(format!("{EXEC_PREFIX}{approval_id}"))
                    .arg(value)
                    .arg("EX")
                    .arg(self.ttl_secs()),
            )
            .await?;
        Ok(())
    }
}

fn parse_done(v: &str) -> ExecState {
    if let Some(rest) = v.strip_prefix("applied:") {
        ExecState::Applied {
            result_id: (!rest.is_empty()).then(|| rest.to_owned()),
        }
    } else {
        ExecState::Failed {
            reason: v.strip_prefix("failed:").unwrap_or(v).to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_states_parse() {
        assert_eq!(
            parse_done("applied:123"),
            ExecState::Applied {
                result_id: Some("123".into())
            }
        );
        assert_eq!(
            parse_done("applied:"),
            ExecState::Applied { result_id: None }
        );
        assert_eq!(
            parse_done("failed:nope: x"),
            ExecState::Failed {
                reason: "nope: x".into()
            }
        );
    }
}
