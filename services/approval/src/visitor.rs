//! `POST /v1/ticket-requests`: a chat visitor, authenticated by the HS256 JWT
//! the auth service issued, asks for a ticket. The requester's name and email
//! come from the verified claims only. The request is held like any proposal
//! (`create_ticket`, source `ticket_request` with `request_id = jti`) and
//! published on `zengate.approval.requested.<account>.new`.
//!
//! Only tokens minted for zengate are taken: `aud` must be
//! [`APPROVAL_AUDIENCE`] (the auth service sets it on
//! `GET /webhook/chat-token?audience=zengate`). Tokens for Zendesk carry no
//! `aud`, so one captured from the widget cannot be replayed here.
//!
//! Refused with `401`: no token, `alg` other than HS256 (including `none`),
//! wrong key, no or another `aud`, expired, `nbf` or `iat` in the future
//! (60 s leeway), a lifetime `exp − iat` over 420 s (Zendesk's own limit),
//! missing `name`/`email`/`iat`/`exp`/`jti`. A replayed `jti` (kept as its
//! full SHA-256 until the token expires) gets `409`; more than
//! `APPROVAL_VISITOR_RATE_LIMIT` requests per visitor (external_id, else
//! email) per window get `429` with `Retry-After`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracing::Instrument;
use zengate_core::Secret;
use zengate_core::events::{
    Action, ApprovalRequested, ProposalContext, ProposalSource, Requester, V1,
    approval_requested_subject, short_hash,
};
use zengate_runtime::error::ApiError;

use crate::app::AppState;
use crate::intake;

/// Allowed clock skew for `exp`/`nbf`/`iat`, seconds (Zendesk allows ~2 min).
const LEEWAY: u64 = 60;

/// Longest accepted lifetime `exp − iat`, seconds (the auth service never
/// issues more: Zendesk refuses longer Chat tokens).
pub const MAX_LIFETIME: i64 = 420;

/// The `aud` the auth service puts on visitor tokens for zengate (same value
/// as `auth::APPROVAL_AUDIENCE`).
pub const APPROVAL_AUDIENCE: &str = "zengate-approval";

#[derive(Debug, Deserialize)]
pub struct VisitorClaims {
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub external_id: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Verifies visitor JWTs: HS256 only, `exp` required and checked.
#[derive(Clone)]
pub struct VisitorVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for VisitorVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitorVerifier").finish_non_exhaustive()
    }
}

impl VisitorVerifier {
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.set_audience(&[APPROVAL_AUDIENCE]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = LEEWAY;
        Self {
            key: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// The verified claims, or why the token is refused.
    pub fn verify(&self, token: &str) -> Result<VisitorClaims, String> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<VisitorClaims>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidAudience => not_for_zengate(),
                ErrorKind::MissingRequiredClaim(c) if c == "aud" => not_for_zengate(),
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
                _ => e.to_string(),
            })?;
        let c = data.claims;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if c.iat > now + LEEWAY as i64 {
            return Err("iat is in the future".into());
        }
        if c.exp.saturating_sub(c.iat) > MAX_LIFETIME {
            return Err(format!(
                "the token lives longer than {MAX_LIFETIME} s (exp - iat)"
            ));
        }
        if c.name.trim().is_empty() || c.email.trim().is_empty() || c.jti.trim().is_empty() {
            return Err("name, email and jti must not be empty".into());
        }
        if c.jti.len() > 200 || !c.email.contains('@') {
            return Err("malformed jti or email claim".into());
        }
        Ok(c)
    }
}

fn not_for_zengate() -> String {
    format!(
        "the token is not meant for zengate (aud must be {APPROVAL_AUDIENCE:?}; fetch it with GET /webhook/chat-token?audience=zengate)"
    )
}

/// A visitor's request for a new ticket, held for approval.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TicketRequestBody {
    /// Non-empty, at most 250 characters.
    pub subject: String,
    /// Non-empty, at most 32 KiB.
    pub body: String,
}

fn bearer(parts: &Parts) -> Option<&str> {
    crate::auth::bearer(parts)
}

/// `POST /v1/ticket-requests`
#[utoipa::path(
    post,
    path = "/v1/ticket-requests",
    tag = "approval",
    description = "An authenticated chat visitor asks for a ticket; the request is held as an approval item (create_ticket). Rate-limited per visitor; each JWT (jti) works once.",
    request_body(content = TicketRequestBody, content_type = "application/json"),
    responses(
        (status = 202, description = "held for approval", body = crate::openapi::TicketAccepted),
        (status = 400, description = "malformed, empty or oversized body (`invalid_body`)", body = zengate_runtime::error::ErrorBody),
        (status = 401, description = "missing (`unauthorized`) or refused (`invalid_token`: bad signature, no `aud: zengate-approval`, expired, not yet valid, lifetime over 420 s, …) visitor JWT", body = zengate_runtime::error::ErrorBody),
        (status = 409, description = "this JWT was already used (`replayed_token`)", body = zengate_runtime::error::ErrorBody),
        (status = 413, description = "body larger than 64 KiB"),
        (status = 429, description = "too many requests from this visitor (with Retry-After)", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "rate limiting or the approvals store is unavailable (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    ),
    security(("visitor_jwt" = []))
)]
pub async fn create(State(app): State<Arc<AppState>>, parts: Parts, body: Bytes) -> Response {
    let span = tracing::info_span!(
        "ticket_request",
        jti = tracing::field::Empty,
        visitor = tracing::field::Empty,
        approval_id = tracing::field::Empty
    );
    match handle(&app, &parts, &body).instrument(span).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(app: &AppState, parts: &Parts, body: &[u8]) -> Result<Response, ApiError> {
    let token = bearer(parts).ok_or_else(|| {
        ApiError::unauthorized(
            "unauthorized",
            "a visitor JWT is required as a bearer token",
        )
    })?;
    let claims = app.visitor.verify(token).map_err(|reason| {
        tracing::info!(%reason, "visitor JWT refused");
        ApiError::unauthorized("invalid_token", format!("visitor JWT refused: {reason}"))
    })?;
    let req: TicketRequestBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("expected {{\"subject\",\"body\"}}: {e}"),
        )
    })?;
    let subject = req.subject.trim();
    if subject.is_empty() || req.body.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "subject and body must not be empty",
        ));
    }
    if subject.chars().count() > 250 || req.body.len() > 32 * 1024 {
        return Err(ApiError::bad_request(
            "invalid_body",
            "subject or body too long",
        ));
    }
    let visitor = claims
        .external_id
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| claims.email.to_ascii_lowercase());
    let span = tracing::Span::current();
    span.record("jti", claims.jti.as_str());
    span.record("visitor", short_hash(&visitor).as_str());

    let key = format!("zengate:approval:visitor-rate:{}", short_hash(&visitor));
    let (count, ttl) = app
        .redis
        .hit(&key, app.config.visitor_rate_window)
        .await
        .map_err(|e| store_down(&e))?;
    if count > app.config.visitor_rate_limit {
        return Err(ApiError::too_many(
            "too many ticket requests; try again later",
            ttl,
        ));
    }
    let remaining = claims.exp - OffsetDateTime::now_utc().unix_timestamp() + LEEWAY as i64;
    // The full digest: a truncated one would let two tokens collide.
    let replay_key = format!(
        "zengate:approval:jti:{}",
        hex::encode(Sha256::digest(claims.jti.as_bytes()))
    );
    let fresh: Option<String> = app
        .redis
        .query(
            redis::cmd("SET")
                .arg(&replay_key)
                .arg(1)
                .arg("EX")
                .arg(remaining.clamp(60, 7 * 24 * 3600))
                .arg("NX"),
        )
        .await
        .map_err(|e| store_down(&e))?;
    if fresh.is_none() {
        return Err(ApiError::conflict(
            "replayed_token",
            "this visitor JWT was already used",
        ));
    }

    let source = ProposalSource::TicketRequest {
        request_id: claims.jti.clone(),
    };
    let account = app.config.account_id.to_string();
    let request = ApprovalRequested {
        v: V1,
        approval_id: source.approval_id(),
        account_id: account.clone(),
        source,
        action: Action::CreateTicket {
            subject: subject.to_owned(),
            body: req.body.clone(),
            requester: Requester {
                name: claims.name.clone(),
                email: claims.email.clone(),
                external_id: claims.external_id.clone(),
            },
            tags: vec!["zengate_visitor_request".to_owned()],
        },
        reasons: vec!["requested by an authenticated chat visitor".to_owned()],
        proposed_by: "visitor".to_owned(),
        requested_at: OffsetDateTime::now_utc(),
        context: ProposalContext {
            ticket_subject: Some(subject.to_owned()),
            requester: Some(format!("{} <{}>", claims.name, claims.email)),
            last_comment: None,
            ..ProposalContext::default()
        },
    };
    let id = request.approval_id.clone();
    span.record("approval_id", id.as_str());
    intake::hold(app, request.clone()).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot store ticket request");
        ApiError::unavailable(
            "store_unavailable",
            "the request could not be stored; retry",
            5,
        )
    })?;
    if let Err(e) = app
        .publisher
        .json(
            approval_requested_subject(&account, None),
            &format!("{id}:requested"),
            &request,
        )
        .await
    {
        // The item is held already; other consumers miss only the copy.
        tracing::warn!(error = %e, "ticket request held but not published");
    }
    tracing::info!(approval_id = %id, "visitor ticket request held");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"approval_id": id, "state": "pending"})),
    )
        .into_response())
}

fn store_down(e: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "redis unavailable for visitor checks");
    ApiError::unavailable(
        "store_unavailable",
        "rate limiting is unavailable; retry shortly",
        5,
    )
}
