//! The approver API (bearer token from `APPROVER_TOKENS`):
//! `GET /v1/approvals?state=&limit=&cursor=`, `GET /v1/approvals/{id}`,
//! `POST /v1/approvals/{id}/approve` (`{"body"?, "reason"?}`),
//! `POST /v1/approvals/{id}/reject` (`{"reason"?}`), and `GET /v1/events`
//! (server-sent events of item changes for the console).
//!
//! `/v1/events` takes the token as `?token=` because `EventSource` cannot
//! send headers; it is the only route that does, and the token is never
//! logged (request URIs are not traced).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use zengate_runtime::error::ApiError;

use crate::app::AppState;
use crate::auth::Approver;
use crate::decide::{self, DecideError, HumanDecision};
use crate::item::State as ItemState;

const MAX_LIMIT: usize = 500;
const MAX_REASON: usize = 2000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only items in this state (`pending`, `approved`, `rejected`, `expired`,
    /// `escalated`, `released`, `applied`, `failed`); empty or `all` for every item.
    pub state: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /v1/approvals`
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "approval",
    description = "Lists approval items, oldest first, one page at a time.",
    params(ListQuery),
    responses(
        (status = 200, description = "one page of items", body = crate::openapi::ItemPage),
        (status = 400, description = "unknown `state` (`invalid_state`) or a malformed query string", body = zengate_runtime::error::ErrorBody),
        (status = 401, description = "missing or unknown approver token", body = zengate_runtime::error::ErrorBody),
    ),
    security(("approver_token" = []))
)]
pub async fn list(
    State(app): State<Arc<AppState>>,
    _who: Approver,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let state = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(ItemState::parse(s).ok_or_else(|| {
            ApiError::bad_request("invalid_state", format!("unknown state {s:?}"))
        })?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let (items, next) = app.store.list(state, q.cursor.as_deref(), limit);
    let items: Vec<&crate::item::Item> = items.iter().map(AsRef::as_ref).collect();
    Ok(Json(serde_json::json!({
        "items": items,
        "next_cursor": next,
    }))
    .into_response())
}

/// `GET /v1/approvals/{id}`
#[utoipa::path(
    get,
    path = "/v1/approvals/{id}",
    tag = "approval",
    params(("id" = String, Path, description = "approval id")),
    responses(
        (status = 200, description = "the item", body = crate::item::Item),
        (status = 401, description = "missing or unknown approver token", body = zengate_runtime::error::ErrorBody),
        (status = 404, description = "no item with this id", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "the approvals store is unavailable (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    ),
    security(("approver_token" = []))
)]
pub async fn get(
    State(app): State<Arc<AppState>>,
    _who: Approver,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match app.store.get(&id).await {
        Ok(Some((_, item))) => Ok(Json(item).into_response()),
        Ok(None) => Err(not_found()),
        Err(e) => Err(store_error(&e)),
    }
}

/// Optional body of an approval; an empty request body means no edits.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ApproveBody {
    /// Replacement text for a reply, note or new ticket (the approver's edit).
    pub body: Option<String>,
    /// Why, for the audit trail (at most 2000 bytes).
    pub reason: Option<String>,
}

/// Optional body of a rejection; an empty request body is allowed.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct RejectBody {
    /// Why, for the audit trail (at most 2000 bytes).
    pub reason: Option<String>,
}

fn parse_optional<T: Default + for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid JSON body: {e}")))
}

fn clean_reason(r: Option<String>) -> Result<Option<String>, ApiError> {
    let r = r.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if r.as_ref().is_some_and(|s| s.len() > MAX_REASON) {
        return Err(ApiError::bad_request("invalid_body", "reason too long"));
    }
    Ok(r)
}

/// `POST /v1/approvals/{id}/approve`
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/approve",
    tag = "approval",
    description = "Approves a pending or escalated item, optionally with an edited body; exactly one decision wins a race.",
    params(("id" = String, Path, description = "approval id")),
    request_body(content = Option<ApproveBody>, content_type = "application/json", description = "optional; empty means approve as proposed"),
    responses(
        (status = 200, description = "approved; the item as stored", body = crate::item::Item),
        (status = 400, description = "malformed JSON, reason too long (`invalid_body`) or an unusable edit (`invalid_edit`)", body = zengate_runtime::error::ErrorBody),
        crate::openapi::DecisionRefusals,
    ),
    security(("approver_token" = []))
)]
pub async fn approve(
    State(app): State<Arc<AppState>>,
    Approver(by): Approver,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: ApproveBody = parse_optional(&body)?;
    let decision = HumanDecision {
        approve: true,
        by,
        reason: clean_reason(b.reason)?,
        body: b.body,
    };
    decided(decide::decide(&app, &id, decision).await)
}

/// `POST /v1/approvals/{id}/reject`
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/reject",
    tag = "approval",
    description = "Rejects a pending or escalated item; nothing is released.",
    params(("id" = String, Path, description = "approval id")),
    request_body(content = Option<RejectBody>, content_type = "application/json", description = "optional"),
    responses(
        (status = 200, description = "rejected; the item as stored", body = crate::item::Item),
        (status = 400, description = "malformed JSON or reason too long (`invalid_body`)", body = zengate_runtime::error::ErrorBody),
        crate::openapi::DecisionRefusals,
    ),
    security(("approver_token" = []))
)]
pub async fn reject(
    State(app): State<Arc<AppState>>,
    Approver(by): Approver,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let b: RejectBody = parse_optional(&body)?;
    let decision = HumanDecision {
        approve: false,
        by,
        reason: clean_reason(b.reason)?,
        body: None,
    };
    decided(decide::decide(&app, &id, decision).await)
}

fn decided(r: Result<crate::item::Item, DecideError>) -> Result<Response, ApiError> {
    r.map(|item| Json(item).into_response())
        .map_err(|e| decide_error(&e))
}

pub fn decide_error(e: &DecideError) -> ApiError {
    match e {
        DecideError::NotFound => not_found(),
        DecideError::Conflict(state) => {
            ApiError::conflict("already_decided", format!("the item is already {state}"))
        }
        DecideError::Invalid(m) => ApiError::bad_request("invalid_edit", m.clone()),
        DecideError::Store(e) => store_error(e),
    }
}

pub fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no approval item with this id")
}

pub fn store_error(e: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "approvals bucket unavailable");
    ApiError::unavailable("store_unavailable", "the approvals store is unavailable", 2)
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    pub token: Option<String>,
}

/// `GET /v1/events?token=…`: one `item` event per change.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "approval",
    description = "Server-sent events for the console: `item` with `{\"id\",\"state\"}` on every change, `resync` when the client fell behind and should reload.",
    responses(
        (status = 200, description = "an event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "missing or unknown approver token", body = zengate_runtime::error::ErrorBody),
    ),
    security(("approver_query_token" = []))
)]
pub async fn events(
    State(app): State<Arc<AppState>>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    Approver::from_query_token(&app, q.token.as_deref())?;
    let rx = app.store.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(item) => Event::default()
                .event("item")
                .json_data(serde_json::json!({"id": item.id, "state": item.state}))
                .unwrap_or_else(|_| Event::default().event("resync").data("{}")),
            // Fell behind: tell the client to reload everything.
            Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    // Open streams must not hold up a graceful shutdown.
    let stop = app.shutdown.clone();
    let stream = stream.take_until(async move { stop.wait().await });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
