//! The model-backed drafter: configuration (`DRAFTER*`), the OpenAI Chat
//! Completions and Anthropic Messages wire formats over a narrow reqwest
//! client, the ticket-bound tools, the output schema and the agent loop.

pub mod agent;
pub mod anthropic;
pub mod chat;
pub mod config;
pub mod metrics;
pub mod openai;
pub mod output;
pub mod prompt;
pub mod schema;
pub mod tools;
pub mod transport;

pub use agent::ModelDrafter;
pub use config::{DrafterConfig, Fallback, ModelConfig, Provider};
pub use transport::CallError;
