//! The auth service: HS256 JWTs that let visitors start authenticated Zendesk
//! Web Widget (Classic, incl. Chat) and Messaging sessions.
//!
//! A token is issued only to a user whose `user_token` is known (Redis or the
//! operator's own directory), every issuance is audited on the bus without the
//! token, and signing secrets rotate without a restart.

pub mod app;
pub mod audit;
/// Moved to `zengate-runtime` (approval walks `X-Forwarded-For` the same way).
pub use zengate_runtime::client_ip;
pub mod config;
pub mod http;
pub mod issue;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod openapi;
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
