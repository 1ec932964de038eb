//! The approval service: holds proposed Zendesk writes until a human approves
//! them (API, web console, signed resume links) or they time out.
//!
//! State lives in the JetStream KV bucket `approvals`; every decision is a
//! compare-and-set on the item's revision, so any number of replicas and
//! approvers agree on a single outcome.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod console;
pub mod decide;
pub mod history;
pub mod intake;
pub mod item;
pub mod links;
pub mod metrics;
pub mod openapi;
pub mod resume;
pub mod retention;
pub mod retry;
pub mod store;
pub mod sweeper;
pub mod visitor;

pub use app::Application;
pub use config::{ApprovalConfig, OnTimeout};
