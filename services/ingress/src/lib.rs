//! The webhook ingress: `POST /channels/zendesk/webhook`.
//!
//! A delivery is answered `200` only once its exact signed bytes are durable in
//! JetStream (or it is a known duplicate). Everything else gets a precise
//! status so Zendesk retries exactly the deliveries worth retrying.

pub mod app;
pub mod breaker;
pub mod budget;
pub mod config;
pub mod dedup;
pub mod metrics;
pub mod openapi;
pub mod request;
pub mod webhook;

pub use app::Application;
pub use config::IngressConfig;

/// Path of the webhook endpoint (DESIGN.md).
pub const WEBHOOK_PATH: &str = "/channels/zendesk/webhook";
