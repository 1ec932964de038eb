//! The agent worker: consumes ticket events in per-ticket order, asks a
//! drafter for a proposal and publishes it for human approval; executes
//! released approvals against Zendesk exactly once.
//!
//! See `docs/worker.md` for the ordering mechanism and its failure behaviour.

pub mod app;
pub mod config;
pub mod conversation;
pub mod delivery;
pub mod dlq;
pub mod drafter;
pub mod executor;
pub mod handler;
pub mod llm;
pub mod metrics;
pub mod partition;
pub mod records;
pub mod rules;
pub mod topology;
pub mod verify;

pub use app::{Application, WorkerError, WorkerState};
pub use config::{Role, WorkerConfig};
pub use drafter::{Draft, DraftError, Drafter, Proposal, SharedDrafter, TicketContext, TicketTool};
pub use rules::RulesDrafter;
