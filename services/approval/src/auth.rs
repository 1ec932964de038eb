//! Approver authentication: bearer tokens from `APPROVER_TOKENS`
//! (`name:token,…`). Only SHA-256 hashes are kept in memory and a presented
//! token is compared against every hash in constant time, so neither a memory
//! dump nor response timing reveals a token. The matched name is what the
//! audit history records.
//!
//! Tokens shorter than [`MIN_TOKEN_LEN`] characters and the placeholders the
//! repository ships in examples are refused at start-up, naming the approver.
//!
//! Failed authentications (no, unknown or refused credential, including stream
//! tickets) are counted per client address in a Redis fixed window
//! (`APPROVAL_AUTH_FAILURE_LIMIT` per `APPROVAL_AUTH_FAILURE_WINDOW`). Once the
//! limit is reached every request from that client, even one with a correct
//! token, gets `429` with `Retry-After` until the window ends, so guessing is
//! bounded and a guess cannot be confirmed by a success. If Redis is down the
//! limit is skipped (WARN): an outage of the counter must not lock approvers
//! out.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zengate_core::Secret;
use zengate_runtime::client_ip::ClientIp;
use zengate_runtime::error::ApiError;

use crate::app::AppState;

/// The configured approvers: name and SHA-256 of the token.
#[derive(Clone)]
pub struct ApproverTokens {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for ApproverTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ApproverTokens")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

/// Shortest approver token accepted (characters).
pub const MIN_TOKEN_LEN: usize = 32;

/// Tokens that appear in this repository's examples, demos and deploy
/// overlays, and the usual "fill me in" words: refused even if long enough.
const PLACEHOLDERS: &[&str] = &[
    "zengate-demo-approver-token",
    "change-me-approver-token",
    "dev-approver-token",
    "e2e-approver-token",
    "changeme",
    "change-me",
    "change_me",
    "example",
    "secret",
    "password",
    "token",
];

/// Fragments that mark a value as a placeholder wherever they appear
/// (`.env.example` and the deploy overlays use `REPLACE_ME…`).
const PLACEHOLDER_MARKS: &[&str] = &[
    "replace_me",
    "replace-me",
    "replaceme",
    "changeme",
    "change-me",
    "change_me",
];

/// Why a token cannot be used; `None` when it can.
fn weak(token: &str) -> Option<String> {
    let lower = token.to_ascii_lowercase();
    if PLACEHOLDERS.contains(&lower.as_str()) || PLACEHOLDER_MARKS.iter().any(|m| lower.contains(m))
    {
        return Some(
            "the token is a published placeholder; generate one, e.g. `openssl rand -hex 32`"
                .to_owned(),
        );
    }
    if token.chars().count() < MIN_TOKEN_LEN {
        return Some(format!(
            "the token is shorter than {MIN_TOKEN_LEN} characters; generate one, e.g. `openssl rand -hex 32`"
        ));
    }
    None
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl ApproverTokens {
    /// Parses `name:token,name2:token2`. The error never contains a token.
    pub fn parse(raw: &Secret) -> Result<Self, String> {
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for (i, item) in raw.expose().split([',', '\n']).enumerate() {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((name, token)) = item.split_once(':') else {
                return Err(format!("entry {} is not name:token", i + 1));
            };
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() || token.is_empty() {
                return Err(format!("entry {} has an empty name or token", i + 1));
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
            {
                return Err(format!(
                    "entry {}: approver names use letters, digits, . _ @ -",
                    i + 1
                ));
            }
            if let Some(why) = weak(token) {
                return Err(format!("approver {name}: {why}"));
            }
            let hash = digest(token);
            if entries.iter().any(|(n, h)| n == name || *h == hash) {
                return Err(format!("entry {} repeats a name or a token", i + 1));
            }
            entries.push((name.to_owned(), hash));
        }
        if entries.is_empty() {
            return Err("at least one name:token is required".to_owned());
        }
        Ok(Self { entries })
    }

    /// The approver a token belongs to. Every entry is compared, whether or not
    /// an earlier one matched.
    pub fn verify(&self, token: &str) -> Option<&str> {
        let presented = digest(token);
        let mut found = None;
        for (name, hash) in &self.entries {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// An authenticated approver (request extractor).
#[derive(Debug, Clone)]
pub struct Approver(pub String);

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn unauthorized() -> ApiError {
    let mut e = ApiError::unauthorized("unauthorized", "a valid approver token is required");
    e.retry_after = None;
    e
}

impl FromRequestParts<Arc<AppState>> for Approver {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        // A valid token always passes: the limit counts and stops failures,
        // so nobody can lock approvers out by failing from a shared address.
        if let Some(name) = bearer(parts).and_then(|t| state.config.approvers.verify(t)) {
            return Ok(Approver(name.to_owned()));
        }
        let limiter = FailureLimit::new(state, client_of(state, parts));
        Err(limiter.reject(unauthorized()).await)
    }
}

/// The client address of a request (`APPROVAL_TRUSTED_PROXIES` decides
/// whether `X-Forwarded-For` is believed). Without connection info (an
/// in-process router) the client is unknown.
pub fn client_of(state: &AppState, parts: &Parts) -> ClientIp {
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => state
            .config
            .trusted_proxies
            .client_ip(peer.ip(), &parts.headers),
        None => ClientIp::Unknown,
    }
}

/// The failed-authentication counter of one client.
#[derive(Debug)]
pub struct FailureLimit<'a> {
    app: &'a AppState,
    key: String,
}

impl<'a> FailureLimit<'a> {
    pub fn new(app: &'a AppState, client: ClientIp) -> Self {
        Self {
            app,
            key: format!("zengate:approval:auth-fail:{client}"),
        }
    }

    fn enabled(&self) -> bool {
        self.app.config.auth_failure_limit > 0
    }

    fn refusal(&self, retry_after: u64) -> ApiError {
        ApiError::too_many(
            "too many failed authentications from this address; try again later",
            retry_after.max(1),
        )
    }

    /// `429` while the client's window holds `limit` failures or more.
    pub async fn check(&self) -> Result<(), ApiError> {
        if !self.enabled() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&self.key).cmd("TTL").arg(&self.key);
        match self.app.redis.pipeline::<(Option<u64>, i64)>(&pipe).await {
            Ok((Some(count), ttl)) if count >= self.app.config.auth_failure_limit => {
                tracing::info!("refused: too many failed authentications");
                Err(self.refusal(ttl.max(1).unsigned_abs()))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "auth failure limit skipped: redis unavailable");
                Ok(())
            }
        }
    }

    /// A failed authentication: `429` while the window is full, otherwise
    /// counted and answered with `err` (or `429` if this one went over).
    pub async fn reject(&self, err: ApiError) -> ApiError {
        match self.check().await {
            Err(limited) => limited,
            Ok(()) => self.failed(err).await,
        }
    }

    /// Counts one failure; answers `err`, or `429` if this one went over.
    pub async fn failed(&self, err: ApiError) -> ApiError {
        if !self.enabled() {
            return err;
        }
        match self
            .app
            .redis
            .hit(&self.key, self.app.config.auth_failure_window)
            .await
        {
            Ok((count, ttl)) if count > self.app.config.auth_failure_limit => self.refusal(ttl),
            Ok(_) => err,
            Err(e) => {
                tracing::warn!(error = %e, "auth failure not counted: redis unavailable");
                err
            }
        }
    }
}

/// Single-use tickets for the event stream (`EventSource` cannot send an
/// `Authorization` header, and a long-lived token in a URL ends up in
/// histories and proxy logs). Kept in Redis, so any replica can redeem them.
pub mod stream_ticket {
    use std::time::Duration;

    use sha2::{Digest, Sha256};
    use zengate_runtime::redis_store::{RedisStore, StoreError};

    /// How long a ticket can wait before it is used, by default
    /// (`APPROVAL_STREAM_TICKET_TTL`).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

    fn key(ticket: &str) -> String {
        format!(
            "zengate:approval:stream-ticket:{}",
            hex::encode(Sha256::digest(ticket.as_bytes()))
        )
    }

    #[derive(Debug, thiserror::Error)]
    pub enum TicketError {
        #[error("no randomness: {0}")]
        Random(#[from] getrandom::Error),
        #[error(transparent)]
        Store(#[from] StoreError),
    }

    /// A fresh ticket for `approver` (only its hash is stored).
    pub async fn issue(
        redis: &RedisStore,
        approver: &str,
        ttl: Duration,
    ) -> Result<String, TicketError> {
        let mut buf = [0u8; 32];
        getrandom::fill(&mut buf)?;
        let ticket = hex::encode(buf);
        let _: () = redis
            .query(
                redis::cmd("SET")
                    .arg(key(&ticket))
                    .arg(approver)
                    .arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)),
            )
            .await?;
        Ok(ticket)
    }

    /// The approver a ticket was issued to; the ticket is gone afterwards.
    pub async fn redeem(redis: &RedisStore, ticket: &str) -> Result<Option<String>, StoreError> {
        if ticket.len() != 64 || !ticket.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        redis.query(redis::cmd("GETDEL").arg(key(ticket))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "tok-a-0123456789abcdef0123456789ab";
    const B: &str = "tok-b-0123456789abcdef0123456789ab";

    #[test]
    fn parse_and_verify() {
        let t = ApproverTokens::parse(&Secret::new(format!("alice:{A}, bob:{B}"))).unwrap();
        assert_eq!(t.verify(A), Some("alice"));
        assert_eq!(t.verify(B), Some("bob"));
        assert_eq!(t.verify("tok-c"), None);
        assert_eq!(t.verify(""), None);
        assert!(!format!("{t:?}").contains(A));
        for bad in [
            "".to_owned(),
            "alice".into(),
            "alice:".into(),
            format!(":{A}"),
            format!("a:{A},a:{B}"),
            format!("a:{A},b:{A}"),
            format!("a b:{A}"),
        ] {
            let e = ApproverTokens::parse(&Secret::new(bad.clone()));
            assert!(e.is_err(), "{bad}");
        }
    }

    #[test]
    fn short_and_placeholder_tokens_are_refused_naming_the_approver() {
        let long_placeholder = "REPLACE_ME_with_openssl_rand_hex_32_output";
        for token in [
            "tok-a",
            &"x".repeat(31),
            "zengate-demo-approver-token",
            "change-me-approver-token",
            "dev-approver-token",
            "e2e-approver-token",
            "changeme",
            "password",
            "secret",
            "example",
            long_placeholder,
            "my-changeme-token-which-is-long-enough-0123",
        ] {
            let e =
                ApproverTokens::parse(&Secret::new(format!("carol:{token}, bob:{B}"))).unwrap_err();
            assert!(e.starts_with("approver carol: "), "{e}");
            assert!(!e.contains(token), "{e} leaks the token");
        }
        assert!(ApproverTokens::parse(&Secret::new(format!("carol:{}", "x".repeat(32)))).is_ok());
    }
}
