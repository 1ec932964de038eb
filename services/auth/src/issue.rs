//! Issuing one token for a known user: claims, signature, audit, metrics.
//! Transport-free, so it can be driven in-process as well as over HTTP.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use zengate_core::events::{self, JwtIssued};
use zengate_runtime::client_ip::ClientIp;

use crate::audit::AuditQueue;
use crate::jwt::{self, MessagingClaims, WidgetClaims};
use crate::keys::KeyStore;
use crate::metrics::AuthMetrics;
use crate::users::{MAX_EXTERNAL_ID, UserRecord};

/// What a token is for; also the audit subject's last token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST /webhook/zendesk-jwt` (the JWT URL Zendesk calls).
    Widget,
    /// `GET /webhook/chat-token` (a front end fetching its own token).
    Chat,
    /// Messaging tokens (header `kid`).
    Messaging,
    /// `GET /webhook/chat-token?audience=zengate`: the widget claims plus
    /// `aud` = [`crate::APPROVAL_AUDIENCE`], for zengate's approval service.
    Approval,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Widget => "widget",
            Kind::Chat => "chat",
            Kind::Messaging => "messaging",
            Kind::Approval => "approval",
        }
    }
}

/// An issued token and what was audited about it.
#[derive(Debug, Clone)]
pub struct Issued {
    pub jwt: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("messaging tokens are not configured")]
    MessagingDisabled,
    #[error("the user record cannot be used: {0}")]
    InvalidUser(&'static str),
    #[error("cannot issue a token: {0}")]
    Internal(String),
}

#[derive(Debug)]
pub struct Issuer {
    keys: Arc<KeyStore>,
    ttl: Duration,
    audit: Arc<AuditQueue>,
    metrics: Arc<AuthMetrics>,
}

impl Issuer {
    pub fn new(
        keys: Arc<KeyStore>,
        ttl: Duration,
        audit: Arc<AuditQueue>,
        metrics: Arc<AuthMetrics>,
    ) -> Self {
        Self {
            keys,
            ttl,
            audit,
            metrics,
        }
    }

    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Signs a fresh token of `kind` for `user`, then logs and queues the
    /// audit. `user_token_sha256` is the lookup hash; only a short hash of the
    /// token is ever logged or published.
    pub fn issue(
        &self,
        kind: Kind,
        user: &UserRecord,
        user_token_hash: &str,
        client_ip: Option<ClientIp>,
    ) -> Result<Issued, IssueError> {
        let iat = OffsetDateTime::now_utc().unix_timestamp();
        let exp = iat + i64::try_from(self.ttl.as_secs()).unwrap_or(300);
        let jti = jwt::new_jti().map_err(|e| IssueError::Internal(e.to_string()))?;
        let keys = self.keys.current();
        let (jwt, kid) = match kind {
            Kind::Widget | Kind::Chat | Kind::Approval => {
                let claims = WidgetClaims {
                    name: &user.name,
                    email: &user.email,
                    external_id: &user.external_id,
                    iat,
                    jti: &jti,
                    exp,
                    aud: (kind == Kind::Approval).then_some(crate::APPROVAL_AUDIENCE),
                };
                let t = jwt::sign_widget(&claims, &keys.widget)
                    .map_err(|e| IssueError::Internal(e.to_string()))?;
                (t, None)
            }
            Kind::Messaging => {
                let key = keys
                    .active_messaging()
                    .ok_or(IssueError::MessagingDisabled)?;
                if user.external_id.is_empty() || user.external_id.len() > MAX_EXTERNAL_ID {
                    return Err(IssueError::InvalidUser(
                        "external_id must be 1 to 255 bytes for Messaging",
                    ));
                }
                let claims = MessagingClaims {
                    scope: "user",
                    external_id: &user.external_id,
                    name: &user.name,
                    email: &user.email,
                    email_verified: user.email_verified,
                    exp,
                };
                let t = jwt::sign_messaging(&claims, &key.kid, &key.mac)
                    .map_err(|e| IssueError::Internal(e.to_string()))?;
                (t, Some(key.kid.clone()))
            }
        };
        let ip = client_ip.map(|ip| ip.to_string());
        tracing::info!(
            kind = kind.as_str(),
            jti = %jti,
            iat,
            exp,
            client_ip = ip.as_deref().unwrap_or("-"),
            user = %user_token_hash,
            external_id = %user.external_id,
            kid = kid.as_deref().unwrap_or("-"),
            "jwt issued"
        );
        self.metrics.issued(kind.as_str());
        self.audit.push(JwtIssued {
            v: events::V1,
            kind: kind.as_str().to_owned(),
            jti: jti.clone(),
            iat,
            exp,
            client_ip: ip,
            user_token_hash: user_token_hash.to_owned(),
            external_id: Some(user.external_id.clone()),
            kid,
        });
        Ok(Issued { jwt, jti, iat, exp })
    }
}
