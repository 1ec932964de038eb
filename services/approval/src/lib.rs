//! The approval service: holds proposed Zendesk writes until a human approves
//! them (API, web console, signed resume links) or they time out.
//!
//! State lives in the JetStream KV bucket `approvals`; every decision is a
//! compare-and-set on the item's revision, so any number of replicas and
//! approvers agree on a single outcome.
//!
//! # Layout
//!
//! - `app`: `Application` (build, run), the router and the shared
//!   `AppState`; `config`: `ApprovalConfig` from the environment;
//! - `intake`: the consumers of proposals and action outcomes
//!   (`zengate_runtime::bus::consume`);
//! - `store`: the `approvals` KV bucket with compare-and-set updates;
//!   `item`: an approval item and its history (public: the data model);
//! - `decide`: approve/reject/expire, sealing and publishing the release;
//!   `sweeper`: timeouts and reconciliation of unpublished events;
//! - `api`, `console`, `resume`, `visitor`: the HTTP surfaces (approver API,
//!   web console, signed resume links, visitor ticket requests); `auth`:
//!   approver tokens and visitor stream tickets; `links`: signed resume links (public: their format is a contract);
//!   `errors`: domain errors as HTTP answers; `metrics`, `openapi`;
//! - `history`: the console's paged history read from the bucket;
//!   `retention`: how long decided items are kept (public: its default);
//!   `retry`: an approver's retry of a failed write.
//!
//! A proposal's path: `zengate.approval.requested.…` → `intake` → `store`
//! (pending item) → `api`/`console`/`resume` → `decide` (compare-and-set,
//! sealed) → `zengate.approval.decided|released.…` → the worker's executor →
//! `zengate.action.applied|failed.…` → `intake` → item `applied`/`failed`.

mod api;
mod app;
mod auth;
mod config;
mod console;
mod decide;
mod errors;
mod history;
mod intake;
pub mod item;
pub mod links;
mod metrics;
mod openapi;
mod resume;
pub mod retention;
mod retry;
mod store;
mod sweeper;
mod visitor;

pub use app::{Application, bucket_config, bucket_config_for};
pub use auth::ApproverTokens;
pub use config::{ApprovalConfig, OnTimeout};
