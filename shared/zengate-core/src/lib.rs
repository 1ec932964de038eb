//! zengate's pure domain types: everything that crosses a service boundary and
//! needs no I/O. Kept free of network crates so it can be fuzzed and reused by
//! every service, the CLI and the simulator alike.

pub mod env;
pub mod envelope;
pub mod events;
pub mod headers;
pub mod ids;
pub mod json;
pub mod release;
pub mod secret;
pub mod signature;
pub mod subject;

pub use envelope::{Envelope, EnvelopeError};
pub use secret::Secret;
