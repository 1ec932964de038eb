//! `GET|POST /webhook/resume/{id}?decision=approve|reject&expires=<unix>&signature=<hex>`
//!
//! The link itself is the credential (see `links` for the signature). `GET`
//! renders a small confirmation page whose button POSTs the same URL, so a
//! link pasted into chat or mail is not triggered by link previews. `POST`
//! decides; the decision is recorded as made by `resume-link`. A browser
//! (Accept: text/html) gets a page, anything else JSON.
//!
//! 401 bad/missing signature or tampered parameters, 410 link expired,
//! 404 unknown item, 409 already decided (a link works once).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use zengate_runtime::error::ApiError;

use crate::app::AppState;
use crate::decide::{self, HumanDecision};
use crate::errors::not_found;
use crate::item::action_body;
use crate::links;

pub const RESUME_APPROVER: &str = "resume-link";

/// The signed parameters of a resume link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResumeQuery {
    /// `approve` or `reject`.
    pub decision: Option<String>,
    /// Unix seconds after which the link no longer works.
    pub expires: Option<String>,
    /// Hex HMAC-SHA256(`APPROVAL_RESUME_SECRET`, `id:decision:expires`).
    pub signature: Option<String>,
}

/// A verified link: the decision it carries.
fn check(app: &AppState, id: &str, q: &ResumeQuery) -> Result<bool, ApiError> {
    let bad = || ApiError::unauthorized("invalid_signature", "the link signature is not valid");
    let decision = q.decision.as_deref().ok_or_else(bad)?;
    let signature = q.signature.as_deref().ok_or_else(bad)?;
    let expires: i64 = q
        .expires
        .as_deref()
        .and_then(|e| e.parse().ok())
        .ok_or_else(bad)?;
    if !links::verify(&app.config.resume_secret, id, decision, expires, signature) {
        return Err(bad());
    }
    if OffsetDateTime::now_utc().unix_timestamp() >= expires {
        return Err(ApiError::new(
            StatusCode::GONE,
            "link_expired",
            "this link has expired",
        ));
    }
    match decision {
        links::APPROVE => Ok(true),
        links::REJECT => Ok(false),
        _ => Err(bad()),
    }
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{t}</title>\
         <link rel=\"stylesheet\" href=\"{css}\">\
         </head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title),
        css = crate::console::PAGE_STYLE_PATH,
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, crate::console::RESUME_CSP),
        ],
        Html(html),
    )
        .into_response()
}

fn error_page(e: ApiError) -> Response {
    let status = e.status;
    page(
        status,
        "Cannot use this link",
        &format!("<p>{}</p>", escape(&e.message)),
    )
}

/// `GET /webhook/resume/{id}`: the confirmation page.
#[utoipa::path(
    get,
    path = "/webhook/resume/{id}",
    tag = "approval",
    description = "Shows what a signed resume link would decide, with a button that POSTs the same URL (so link previews decide nothing). Every answer is an HTML page.",
    params(("id" = String, Path, description = "approval id"), ResumeQuery),
    responses(
        (status = 200, description = "the confirmation page", content_type = "text/html", body = String),
        (status = 401, description = "missing or bad signature, or tampered parameters", content_type = "text/html", body = String),
        (status = 404, description = "no item with this id", content_type = "text/html", body = String),
        (status = 409, description = "the item is already decided", content_type = "text/html", body = String),
        (status = 410, description = "the link has expired", content_type = "text/html", body = String),
        (status = 503, description = "the approvals store is unavailable", content_type = "text/html", body = String),
    )
)]
pub async fn confirm(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<ResumeQuery>,
) -> Response {
    let approve = match check(&app, &id, &q) {
        Ok(a) => a,
        Err(e) => return error_page(e),
    };
    let item = match app.store.get(&id).await {
        Ok(Some((_, item))) => item,
        Ok(None) => return error_page(not_found()),
        Err(e) => return error_page(e.into()),
    };
    if !item.state.decidable() {
        return error_page(ApiError::conflict(
            "already_decided",
            format!("the item is already {}", item.state.as_str()),
        ));
    }
    let verb = if approve { "Approve" } else { "Reject" };
    let ctx = &item.request.context;
    let action = format!(
        "{} {}",
        item.request.action.kind(),
        item.ticket_id()
            .map(|t| format!("on ticket {t}"))
            .unwrap_or_else(|| "(new ticket)".into())
    );
    let form_action = format!(
        "/webhook/resume/{}?decision={}&expires={}&signature={}",
        id,
        q.decision.as_deref().unwrap_or_default(),
        q.expires.as_deref().unwrap_or_default(),
        q.signature.as_deref().unwrap_or_default()
    );
    let body = format!(
        "<p><strong>{subject}</strong></p><p>{action}</p><pre>{text}</pre>\
         <form method=\"post\" action=\"{form}\"><button id=\"confirm\" type=\"submit\">{verb}</button></form>",
        subject = escape(ctx.ticket_subject.as_deref().unwrap_or("(no subject)")),
        action = escape(&action),
        text = escape(action_body(&item.request.action).unwrap_or("")),
        form = escape(&form_action),
    );
    page(StatusCode::OK, &format!("{verb} this proposal?"), &body)
}

/// `POST /webhook/resume/{id}`: decides.
#[utoipa::path(
    post,
    path = "/webhook/resume/{id}",
    tag = "approval",
    description = "Decides through a signed resume link (recorded as `resume-link`); a link works once. Answers an HTML page when the request accepts text/html, JSON otherwise.",
    params(("id" = String, Path, description = "approval id"), ResumeQuery),
    responses(
        (status = 200, description = "decided", content(
            (crate::openapi::ResumeResult = "application/json"),
            (String = "text/html"),
        )),
        (status = 401, description = "missing or bad signature, or tampered parameters (`invalid_signature`)", body = zengate_runtime::error::ErrorBody),
        (status = 404, description = "no item with this id", body = zengate_runtime::error::ErrorBody),
        (status = 409, description = "the item is already decided (`already_decided`)", body = zengate_runtime::error::ErrorBody),
        (status = 410, description = "the link has expired (`link_expired`)", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "the approvals store is unavailable (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    )
)]
pub async fn resume(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<ResumeQuery>,
    headers: HeaderMap,
) -> Response {
    let html = wants_html(&headers);
    let result = async {
        let approve = check(&app, &id, &q)?;
        let decision = HumanDecision {
            approve,
            by: RESUME_APPROVER.to_owned(),
            reason: Some("decided through a signed resume link".to_owned()),
            body: None,
        };
        decide::decide(&app, &id, decision)
            .await
            .map_err(ApiError::from)
    }
    .await;
    match (result, html) {
        (Ok(item), true) => page(
            StatusCode::OK,
            "Done",
            &format!(
                "<p id=\"result\">The proposal is {}.</p>",
                item.state.as_str()
            ),
        ),
        (Ok(item), false) => {
            Json(serde_json::json!({"id": item.id, "state": item.state})).into_response()
        }
        (Err(e), true) => error_page(e),
        (Err(e), false) => e.into_response(),
    }
}
