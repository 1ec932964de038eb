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
/// The allocator every zengate binary installs (`#[global_allocator]` in its
/// `main.rs`): per-thread heaps, so request-path allocations neither contend
/// on glibc's arena locks nor pay for its chunk consolidation (a sixth of the
/// ingress's CPU under load), and freed pages go back to the system.
pub use mimalloc::MiMalloc as Allocator;
pub use nats::NatsConfig;
pub use redis_config::RedisConfig;
pub use serve::{Background, HttpLimits, serve};
pub use shutdown::Shutdown;
