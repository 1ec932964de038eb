//! Approver authentication: bearer tokens from `APPROVER_TOKENS`
//! (`name:token,…`). Only SHA-256 hashes are kept in memory and a presented
//! token is compared against every hash in constant time, so neither a memory
//! dump nor response timing reveals a token. The matched name is what the
//! audit history records.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zengate_core::Secret;
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
        let token = bearer(parts).ok_or_else(unauthorized)?;
        let name = state.approvers.verify(token).ok_or_else(unauthorized)?;
        Ok(Approver(name.to_owned()))
    }
}

impl Approver {
    /// For the SSE route, where browsers cannot send headers: `?token=`.
    pub fn from_query_token(state: &AppState, token: Option<&str>) -> Result<Self, ApiError> {
        let token = token.filter(|t| !t.is_empty()).ok_or_else(unauthorized)?;
        state
            .approvers
            .verify(token)
            .map(|n| Approver(n.to_owned()))
            .ok_or_else(unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_verify() {
        let t = ApproverTokens::parse(&Secret::new("alice:tok-a, bob:tok-b")).unwrap();
        assert_eq!(t.verify("tok-a"), Some("alice"));
        assert_eq!(t.verify("tok-b"), Some("bob"));
        assert_eq!(t.verify("tok-c"), None);
        assert_eq!(t.verify(""), None);
        assert!(!format!("{t:?}").contains("tok-a"));
        for bad in ["", "alice", "alice:", ":tok", "a:x,a:y", "a:x,b:x", "a b:x"] {
            let e = ApproverTokens::parse(&Secret::new(bad));
            assert!(e.is_err(), "{bad}");
        }
    }
}
