//! The auth service: HS256 JWTs that let visitors start authenticated Zendesk
//! Web Widget (Classic, incl. Chat) and Messaging sessions.
//!
//! A token is issued only to a user whose `user_token` is known (Redis or the
//! operator's own directory), every issuance is audited on the bus without the
//! token, and signing secrets rotate without a restart.
//!
//! # Layout
//!
//! - `app`: `Application` (build, run), the router and the shared
//!   `AppState`; `config`: `AuthConfig` from the environment;
//! - `http`: the token endpoints (shape → rate limits and lookup →
//!   issuance) and their refusals;
//! - `users`: visitors by `user_token` (Redis or the operator's directory);
//!   `keys`: the signing secrets and their rotation; `issue` / `jwt`: the
//!   claims and the signed token;
//! - `audit`: the bounded queue of issuance audits drained to the bus;
//! - `metrics`, `openapi`.
//!
//! A token request's path: `http` → `users` (lookup, one Redis round trip
//! with the rate limits) → `issue` (signed with `keys`) → the JWT, and an
//! audit queued → `audit` → `zengate.audit.jwt_issued.…`.

mod app;
mod audit;
/// Moved to `zengate-runtime` (approval walks `X-Forwarded-For` the same way).
pub use zengate_runtime::client_ip;
pub mod config;
mod http;
pub mod issue;
pub mod jwt;
pub mod keys;
mod metrics;
mod openapi;
pub mod users;

pub use app::{Application, AuthError};
pub use config::AuthConfig;

/// The JWT URL configured in Zendesk (DESIGN.md).
pub const ZENDESK_JWT_PATH: &str = "/webhook/zendesk-jwt";
/// A front end fetching its own widget/chat token (Bearer user_token).
pub const CHAT_TOKEN_PATH: &str = "/webhook/chat-token";
/// Messaging token, user_token as query parameter.
pub const MESSAGING_JWT_PATH: &str = "/webhook/messaging-jwt";
/// Messaging token, Bearer user_token.
pub const MESSAGING_TOKEN_PATH: &str = "/webhook/messaging-token";
/// `aud` of visitor tokens minted for zengate's own approval service
/// (`GET /webhook/chat-token?audience=zengate`); Zendesk tokens carry no `aud`,
/// so one minted for Zendesk cannot be replayed at `POST /v1/ticket-requests`.
pub const APPROVAL_AUDIENCE: &str = "zengate-approval";
