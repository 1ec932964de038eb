//! A narrow Zendesk Ticketing API client.
//!
//! The client only ever talks to the account's own origin
//! (`https://<subdomain>.zendesk.com`, or the single operator override
//! `ZENDESK_API_BASE_URL`), with credentials bound at construction. Nothing
//! it sends (host, path, credential) can come from an event or a drafter:
//! callers pass typed ids and typed bodies only.
//!
//! Failures are retried inside one call with capped exponential backoff and
//! jitter, honouring `Retry-After`, up to `max_attempts`:
//! - reads: on connection errors, timeouts, `429` and any `5xx`;
//! - ticket creation: the same, because it always carries an
//!   `Idempotency-Key`, so Zendesk answers a repeat with the first result;
//! - ticket updates (`PUT`, the only way to add a comment): only when the
//!   request provably was not applied, i.e. the connection never opened or
//!   Zendesk refused it with `429`/`503`. Anything else is returned, and
//!   [`ClientError::outcome_unknown`] tells the caller to check before
//!   writing again.
//!
//! A `Retry-After` longer than `max_backoff` is not slept through: the call
//! returns [`ClientError::RateLimited`] so the caller can reschedule.

mod client;
mod config;
mod error;
mod model;
mod request;
mod retry;
mod trace;
mod wire;

pub use client::ZendeskClient;
pub use config::{ClientConfig, Credentials};
pub use error::ClientError;
pub use model::{
    Article, Comment, CommentInput, CommentThread, NewTicket, Ticket, TicketUpdate, User,
};
