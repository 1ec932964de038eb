//! The webhook ingress: `POST /channels/zendesk/webhook`.
//!
//! A delivery is answered `200` only once its exact signed bytes are durable in
//! JetStream (or it is a known duplicate). Everything else gets a precise
//! status so Zendesk retries exactly the deliveries worth retrying.

//! # Layout
//!
//! - `config`: settings from the environment (the one public module).
//! - `app`: `Application::build` connects NATS and Redis, provisions
//!   `ZENDESK_EVENTS` and binds the listener; `run` serves until shutdown.
//! - `webhook`: the handler, the path of one delivery: `request` prechecks the
//!   routing headers → `budget` reserves the body's bytes → the body is read
//!   and verified and the envelope checked (`request`) → `dedup` asks Redis,
//!   unless `window` shows JetStream's duplicate window covers every copy of
//!   the event or `breaker` holds Redis open → the exact bytes are published
//!   and the PubAck awaited → `200`.
//! - `metrics`, `openapi`: what operators scrape and read.

mod app;
mod breaker;
mod budget;
pub mod config;
pub mod dedup;
mod metrics;
mod openapi;
mod request;
mod webhook;
mod window;

pub use app::Application;
pub use config::IngressConfig;

/// Path of the webhook endpoint (DESIGN.md).
pub const WEBHOOK_PATH: &str = "/channels/zendesk/webhook";
