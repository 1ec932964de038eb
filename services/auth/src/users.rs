//! Who a user_token belongs to (the runbook's "Lookup User" step).
//!
//! Tokens are never stored: the Redis backend keys records by the SHA-256 of
//! the token, and the HTTP callback backend sends only that hash. Both answer
//! through [`UserLookup`], so the issuing code does not care which is in use.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zengate_core::Secret;
use zengate_runtime::redis_store::{RedisStore, StoreError};

/// Key prefix of user records (`<prefix><sha256 hex>`).
pub const USER_KEY_PREFIX: &str = "zengate:auth:user:";
/// Set of the SHA-256 hashes of every stored token, for listing.
pub const USER_INDEX_KEY: &str = "zengate:auth:users";
/// Zendesk Messaging limit on `external_id`.
pub const MAX_EXTERNAL_ID: usize = 255;

/// A user as stored and as returned by the HTTP callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub email: String,
    pub external_id: String,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<OffsetDateTime>,
}

/// Why a user_token was refused before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenShape {
    Ok,
    Missing,
    Malformed,
}

/// Length 16..=128, charset `[A-Za-z0-9_-]`. Checked before any I/O.
pub fn check_token(token: Option<&str>) -> TokenShape {
    match token {
        None | Some("") => TokenShape::Missing,
        Some(t)
            if (16..=128).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            TokenShape::Ok
        }
        Some(_) => TokenShape::Malformed,
    }
}

/// SHA-256 of the token, lowercase hex: the only form that is stored or sent.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The short hash logged and audited for a token (`events::short_hash`),
/// taken from its SHA-256 hex instead of hashing the token a second time.
pub fn short_token_hash(token_sha256: &str) -> String {
    token_sha256[..12.min(token_sha256.len())].to_owned()
}

/// A fresh user_token: 32 random bytes, base64url without padding (43 chars).
pub fn generate_user_token() -> Result<Secret, getrandom::Error> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf)?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(buf)))
}

/// What `zengate users add` prints: a summary, then the token alone on the
/// last line (so scripts can take `tail -n1`). The only time it is shown.
pub fn added_report(record: &UserRecord, token: &str) -> String {
    format!(
        "added user {} <{}> external_id={}\nuser_token (shown once, store it now):\n{token}\n",
        record.name, record.email, record.external_id
    )
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The backend cannot answer now; the client should retry later.
    #[error("user lookup unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for LookupError {
    fn from(e: StoreError) -> Self {
        LookupError::Unavailable(e.to_string())
    }
}

/// Finds the user for a token hash; `Ok(None)` means unknown.
pub trait UserLookup: Send + Sync {
    fn lookup(
        &self,
        token_sha256: &str,
    ) -> impl Future<Output = Result<Option<UserRecord>, LookupError>> + Send;
}

/// The configured backend.
#[derive(Debug)]
pub enum Lookup {
    Redis(RedisUsers),
    Http(HttpLookup),
}

impl UserLookup for Lookup {
    async fn lookup(&self, token_sha256: &str) -> Result<Option<UserRecord>, LookupError> {
        match self {
            Lookup::Redis(r) => r.lookup(token_sha256).await,
            Lookup::Http(h) => h.lookup(token_sha256).await,
        }
    }
}

/// User records in Redis, shared with `zengate users`.
#[derive(Debug, Clone)]
pub struct RedisUsers {
    store: Arc<RedisStore>,
}

/// New user for [`RedisUsers::add`].
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    /// Generated when absent.
    pub external_id: Option<String>,
    pub email_verified: bool,
}

/// Which users `remove` deletes.
#[derive(Debug, Clone)]
pub enum Selector {
    ExternalId(String),
    Email(String),
}

/// A stored user as listed: the record and a short hash of its token.
#[derive(Debug, Clone)]
pub struct ListedUser {
    pub token_hash: String,
    pub record: UserRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot generate a random token: {0}")]
    Random(String),
}

impl RedisUsers {
    pub fn new(store: Arc<RedisStore>) -> Self {
        Self { store }
    }

    /// Stores a user under a newly generated token and returns the token: the
    /// only moment it exists outside the caller's hands.
    pub async fn add(&self, user: NewUser) -> Result<(Secret, UserRecord), UsersError> {
        let name = user.name.trim().to_owned();
        let email = user.email.trim().to_owned();
        if name.is_empty() || email.is_empty() {
            return Err(UsersError::Invalid(
                "name and email must not be empty".into(),
            ));
        }
        if !email.contains('@') {
            return Err(UsersError::Invalid("email must contain @".into()));
        }
        let external_id = match user.external_id.map(|s| s.trim().to_owned()) {
            Some(id) if id.is_empty() => {
                return Err(UsersError::Invalid("external id must not be empty".into()));
            }
            Some(id) => id,
            None => format!("zg-{}", uuid::Uuid::new_v4().simple()),
        };
        if external_id.len() > MAX_EXTERNAL_ID {
            return Err(UsersError::Invalid(format!(
                "external id must be at most {MAX_EXTERNAL_ID} bytes"
            )));
        }
        let record = UserRecord {
            name,
            email,
            external_id,
            email_verified: user.email_verified,
            created_at: Some(OffsetDateTime::now_utc()),
        };
        let token = generate_user_token().map_err(|e| UsersError::Random(e.to_string()))?;
        let hash = token_sha256(token.expose());
        let json = serde_json::to_string(&record)
            .map_err(|e| UsersError::Invalid(format!("cannot encode the record: {e}")))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(format!("{USER_KEY_PREFIX}{hash}"))
            .arg(json)
            .ignore()
            .cmd("SADD")
            .arg(USER_INDEX_KEY)
            .arg(&hash)
            .ignore();
        self.store.pipeline::<()>(&pipe).await?;
        Ok((token, record))
    }

    /// Every stored user (never a token; at most a short hash of its SHA-256).
    pub async fn list(&self) -> Result<Vec<ListedUser>, UsersError> {
        let hashes: Vec<String> = self
            .store
            .query(redis::cmd("SMEMBERS").arg(USER_INDEX_KEY))
            .await?;
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = hashes
            .iter()
            .map(|h| format!("{USER_KEY_PREFIX}{h}"))
            .collect();
        let values: Vec<Option<String>> = self.store.query(redis::cmd("MGET").arg(&keys)).await?;
        let mut out: Vec<ListedUser> = hashes
            .into_iter()
            .zip(values)
            .filter_map(|(h, v)| {
                let record = serde_json::from_str(&v?).ok()?;
                Some(ListedUser {
                    token_hash: h[..12.min(h.len())].to_owned(),
                    record,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.record.email, &a.record.external_id).cmp(&(&b.record.email, &b.record.external_id))
        });
        Ok(out)
    }

    /// Deletes every user matching `selector`; returns how many.
    pub async fn remove(&self, selector: &Selector) -> Result<usize, UsersError> {
        let hashes: Vec<String> = self
            .store
            .query(redis::cmd("SMEMBERS").arg(USER_INDEX_KEY))
            .await?;
        let mut removed = 0;
        for hash in hashes {
            let key = format!("{USER_KEY_PREFIX}{hash}");
            let value: Option<String> = self.store.query(redis::cmd("GET").arg(&key)).await?;
            let record: Option<UserRecord> = value.and_then(|v| serde_json::from_str(&v).ok());
            let matches = match (&record, selector) {
                (Some(r), Selector::ExternalId(id)) => r.external_id == *id,
                (Some(r), Selector::Email(e)) => r.email.eq_ignore_ascii_case(e.trim()),
                // A dangling index entry: clean it up on the way.
                (None, _) => {
                    let _: u64 = self
                        .store
                        .query(redis::cmd("SREM").arg(USER_INDEX_KEY).arg(&hash))
                        .await?;
                    false
                }
            };
            if matches {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("DEL")
                    .arg(&key)
                    .ignore()
                    .cmd("SREM")
                    .arg(USER_INDEX_KEY)
                    .arg(&hash)
                    .ignore();
                self.store.pipeline::<()>(&pipe).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl UserLookup for RedisUsers {
    async fn lookup(&self, token_sha256: &str) -> Result<Option<UserRecord>, LookupError> {
        let value: Option<String> = self
            .store
            .query(redis::cmd("GET").arg(format!("{USER_KEY_PREFIX}{token_sha256}")))
            .await?;
        value.as_deref().map(parse_record).transpose()
    }
}

/// Decodes a stored user record (also used where the lookup is pipelined).
pub fn parse_record(json: &str) -> Result<UserRecord, LookupError> {
    serde_json::from_str(json)
        .map_err(|e| LookupError::Unavailable(format!("stored user record unreadable: {e}")))
}

/// The operator's own user directory, asked over HTTP.
///
/// Request: `POST <AUTH_USER_LOOKUP_URL>` with JSON
/// `{"user_token_sha256": "<lowercase hex>"}` (the token itself never leaves
/// this service), plus `Authorization: <AUTH_USER_LOOKUP_AUTHORIZATION>` when
/// configured. Answers: `200 {"name","email","external_id"[,"email_verified"]}`
/// = known; `404` = unknown; anything else, or no answer within
/// `AUTH_USER_LOOKUP_TIMEOUT` = unavailable (`503` + `Retry-After` to the caller).
#[derive(Debug)]
pub struct HttpLookup {
    client: reqwest::Client,
    url: String,
    authorization: Option<Secret>,
}

#[derive(Serialize)]
struct LookupRequest<'a> {
    user_token_sha256: &'a str,
}

impl HttpLookup {
    pub fn new(
        url: String,
        timeout: Duration,
        authorization: Option<Secret>,
    ) -> Result<Self, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            client,
            url,
            authorization,
        })
    }
}

impl UserLookup for HttpLookup {
    async fn lookup(&self, token_sha256: &str) -> Result<Option<UserRecord>, LookupError> {
        let mut req = self.client.post(&self.url).json(&LookupRequest {
            user_token_sha256: token_sha256,
        });
        if let Some(auth) = &self.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth.expose());
        }
        let res = req.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "request failed"
            };
            LookupError::Unavailable(format!("user lookup callback {what}"))
        })?;
        match res.status().as_u16() {
            200 => {
                let record: UserRecord = res.json().await.map_err(|_| {
                    LookupError::Unavailable("user lookup callback sent an unreadable user".into())
                })?;
                if record.external_id.is_empty() {
                    return Err(LookupError::Unavailable(
                        "user lookup callback sent a user without external_id".into(),
                    ));
                }
                Ok(Some(record))
            }
            404 => Ok(None),
            other => Err(LookupError::Unavailable(format!(
                "user lookup callback answered {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes() {
        assert_eq!(check_token(None), TokenShape::Missing);
        assert_eq!(check_token(Some("")), TokenShape::Missing);
        assert_eq!(check_token(Some("short")), TokenShape::Malformed);
        assert_eq!(check_token(Some(&"a".repeat(129))), TokenShape::Malformed);
        assert_eq!(check_token(Some(&"a".repeat(128))), TokenShape::Ok);
        assert_eq!(
            check_token(Some("abcdefgh.ijklmnop")),
            TokenShape::Malformed
        );
        assert_eq!(
            check_token(Some("abcdefgh ijklmnop")),
            TokenShape::Malformed
        );
        assert_eq!(check_token(Some("abc-DEF_0123456789")), TokenShape::Ok);
        let t = generate_user_token().unwrap();
        assert_eq!(
            short_token_hash(&token_sha256(t.expose())),
            zengate_core::events::short_hash(t.expose())
        );
        assert_eq!(t.expose().len(), 43);
        assert_eq!(check_token(Some(t.expose())), TokenShape::Ok);
    }
}
