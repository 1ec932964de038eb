//! The one test harness: each call starts a private `nats-server -js` or
//! `redis-server` on a free loopback port with its own temporary directory,
//! so tests run in parallel, can stop and restart the server mid-test (data
//! kept), and leave nothing behind (processes are killed on drop). Redis can
//! also run with extra configuration (passwords, ACL users) or TLS only;
//! NATS also as a three-node JetStream cluster ([`NatsCluster`]), and
//! zengate's own services as separate processes a test can kill
//! ([`ServiceProcess`]). [`Infra`] bundles NATS and Redis with a JetStream
//! handle, [`TestService`] runs a service on port 0 and scrapes its metrics,
//! [`init_telemetry`] sets up logging once, [`eventually`] awaits a condition
//! with a deadline, [`proc_stats`] reads a process's memory and CPU time.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod binaries;
mod cluster;
mod infra;
mod logs;
mod nats;
mod process;
mod procstat;
mod redis;
mod service;
mod telemetry;
mod wait;

pub use binaries::{MIN_NATS_VERSION, nats_server_binary, redis_server_binary};
pub use cluster::NatsCluster;
pub use infra::{Infra, read_all};
pub use logs::LogCapture;
pub use nats::NatsServer;
pub use process::{IMAGE_ALLOCATOR_ENV, ServiceProcess, owns_local_port, service_binary, signal};
pub use procstat::{ProcStats, cpu_of, machine_busy, machine_steal, proc_stats};
pub use redis::{RedisServer, RedisTls};
pub use service::TestService;
pub use telemetry::init_telemetry;
pub use wait::{eventually, free_port, metric_value};
