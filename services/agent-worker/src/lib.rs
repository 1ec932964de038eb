//! The agent worker: consumes ticket events in per-ticket order, asks a
//! drafter for a proposal and publishes it for human approval; executes
//! released approvals against Zendesk exactly once.
//!
//! See `docs/worker.md` for the ordering mechanism and its failure behaviour.
//!
//! # Layout
//!
//! - `app`: `Application` (build, run) and the shared `WorkerState`;
//! - `config`: `WorkerConfig` from the environment;
//! - `topology`: the work stream, its partition consumers and the executor
//!   consumer (public: provisioning is shared with tools and tests);
//! - `partition`: one pull loop per partition (drafting side);
//! - `handler`: one ticket event → context from Zendesk → drafter → proposal;
//! - `drafter` / `rules`: the drafting extension point and the built-in rules;
//! - `executor`: one release → `verify` → Zendesk write → outcome;
//! - `verify`: the release gate (signature and approved item) that comes
//!   before any write; `records`: the per-approval execution records (Redis);
//! - `metrics`: the Prometheus series.
//!
//! A ticket event's path: `ZENDESK_EVENTS` → `ZENGATE_WORK.<partition>` →
//! `partition` (`zengate_runtime::bus::consume`) → `handler` → drafter →
//! `zengate.approval.requested.…`. A release's path:
//! `zengate.approval.released.…` → `executor` → `verify::check` → Zendesk →
//! `zengate.action.applied|failed.…`. Anything given up on goes to
//! `zengate.dlq.…`.

mod app;
mod config;
pub mod conversation;
pub mod drafter;
mod executor;
mod handler;
pub mod llm;
mod metrics;
mod partition;
mod records;
mod rules;
pub mod topology;
mod verify;

pub use app::{Application, WorkerError, WorkerState, drafter_from_config};
pub use config::{Role, WorkerConfig};
pub use drafter::{Draft, DraftError, Drafter, Proposal, SharedDrafter, TicketContext, TicketTool};
pub use rules::RulesDrafter;
