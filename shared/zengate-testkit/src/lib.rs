//! Real infrastructure for tests: each call starts a private `nats-server -js`
//! or `redis-server` on a free loopback port with its own temporary directory,
//! so tests run in parallel, can stop and restart the server mid-test (data
//! kept), and leave nothing behind (processes are killed on drop). Redis can
//! also run with extra configuration (passwords, ACL users) or TLS only;
//! NATS also as a three-node JetStream cluster, and zengate's own services
//! as separate processes that a test can kill.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod binaries;
mod cluster;
mod logs;
mod nats;
mod process;
mod redis;
mod wait;

pub use binaries::{MIN_NATS_VERSION, nats_server_binary, redis_server_binary};
pub use cluster::NatsCluster;
pub use logs::LogCapture;
pub use nats::NatsServer;
pub use process::{ServiceProcess, owns_local_port, service_binary, signal};
pub use redis::{RedisServer, RedisTls};
pub use wait::{eventually, free_port, metric_value};
