//! Settings every service shares, read through [`Env`] (which lives in
//! `zengate-core`, re-exported here).

pub use zengate_core::env::{ConfigError, Env, read_secret_file};

use crate::nats::NatsConfig;
use crate::redis_config::RedisConfig;
use crate::serve::HttpLimits;

/// Connection settings every service shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub nats: NatsConfig,
    pub redis: RedisConfig,
    pub http: HttpLimits,
}

impl Common {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            nats: NatsConfig::from_env(env)?,
            redis: RedisConfig::from_env(env)?,
            http: HttpLimits::from_env(env)?,
        })
    }
}
