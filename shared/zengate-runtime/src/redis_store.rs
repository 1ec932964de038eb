//! Redis access that never becomes an outage by itself: the connection is made
//! lazily (a service starts while Redis is down), every operation has a
//! deadline, and callers decide whether an error degrades or refuses.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

use crate::redis_config::RedisConfig;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The settings cannot make a client (never quotes a password).
    #[error("invalid redis settings: {0}")]
    Config(String),
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    #[error("redis operation timed out after {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A shared, lazily connected Redis handle.
pub struct RedisStore {
    client: redis::Client,
    manager: Mutex<Option<ConnectionManager>>,
    op_timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Validates the settings (URL, credentials, TLS material); does not
    /// connect yet.
    pub fn new(config: &RedisConfig, op_timeout: Duration) -> Result<Self, StoreError> {
        let client = config
            .client()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Self {
            client,
            manager: Mutex::new(None),
            op_timeout,
        })
    }

    /// A store for a bare URL (tests, tools without other settings).
    pub fn from_url(url: &str, op_timeout: Duration) -> Result<Self, StoreError> {
        Self::new(&RedisConfig::from(url), op_timeout)
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.manager.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.op_timeout))
            .set_response_timeout(Some(self.op_timeout))
            .set_number_of_retries(1);
        let m = tokio::time::timeout(
            self.op_timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| StoreError::Timeout(self.op_timeout * 2))??;
        *slot = Some(m.clone());
        Ok(m)
    }

    /// Runs one command (or pipeline) with the operation deadline.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(self.op_timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| StoreError::Timeout(self.op_timeout))?
            .map_err(StoreError::from)
    }

    /// Runs a pipeline with the operation deadline.
    pub async fn pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(self.op_timeout, pipe.query_async(&mut conn))
            .await
            .map_err(|_| StoreError::Timeout(self.op_timeout))?
            .map_err(StoreError::from)
    }

    /// Runs a Lua script with the operation deadline.
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(self.op_timeout, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| StoreError::Timeout(self.op_timeout))?
            .map_err(StoreError::from)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "unexpected PING reply {pong:?}"
            )))
        }
    }

    /// Fixed-window counter: increments `key`, setting its expiry on first
    /// use; returns the count and the seconds left in the window.
    pub async fn hit(&self, key: &str, window: Duration) -> Result<(u64, u64), StoreError> {
        let mut pipe = redis::pipe();
        push_hit(pipe.atomic(), key, window);
        let (count, ttl): (u64, i64) = self.pipeline(&pipe).await?;
        Ok((count, ttl.max(1).unsigned_abs()))
    }
}

/// Adds one fixed-window hit of `key` to `pipe`: creates the counter with
/// `window` as expiry if it is new, increments it, and reads its expiry, so
/// the pipeline replies the count and then the seconds left. `pipe` must be
/// atomic (`MULTI`/`EXEC`): between separate commands the counter could
/// expire and come back from `INCR` without an expiry, counting for good.
pub fn push_hit(pipe: &mut redis::Pipeline, key: &str, window: Duration) {
    pipe.cmd("SET")
        .arg(key)
        .arg(0)
        .arg("EX")
        .arg(window.as_secs().max(1))
        .arg("NX")
        .ignore()
        .cmd("INCR")
        .arg(key)
        .cmd("TTL")
        .arg(key);
}
