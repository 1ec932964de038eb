//! Run-time plumbing shared by every zengate service, so each service crate
//! holds only its own behaviour.

pub mod bus;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod health;
pub mod nats;
pub mod openapi;
pub mod redis_config;
pub mod redis_store;
pub mod serve;
pub mod shutdown;
pub mod telemetry;

pub use config::{ConfigError, Env};
pub use nats::NatsConfig;
pub use redis_config::RedisConfig;
pub use serve::{Background, HttpLimits, serve};
pub use shutdown::Shutdown;
