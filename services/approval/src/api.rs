//! The approver API (bearer token from `APPROVER_TOKENS`):
//! `GET /v1/approvals?state=&limit=&cursor=`, `GET /v1/approvals/{id}`,
//! `POST /v1/approvals/{id}/approve` (`{"body"?, "reason"?}`),
//! `POST /v1/approvals/{id}/reject` (`{"reason"?}`),
//! `POST /v1/approvals/{id}/retry` (a failed write, released again),
//! `GET /v1/approvals/history?state=&ticket=&q=&before=&limit=` (pages read
//! from the bucket, not the in-memory index), and `GET /v1/events`
//! (server-sent events of item changes for the console).
//!
//! `EventSource` cannot send headers, so `/v1/events` takes `?ticket=`: a
//! single-use ticket valid for 30 s from `POST /v1/events/ticket` (bearer).
//! The long-lived approver token never appears in a URL; `?token=` is refused.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use zengate_runtime::error::ApiError;

use crate::app::AppState;
use crate::auth::{Approver, FailureLimit, client_of, stream_ticket};
use crate::decide::{self, DecideError, HumanDecision};
use crate::errors::not_found;
use crate::history;
use crate::item::State as ItemState;
use crate::retry;

const MAX_LIMIT: usize = 500;
/// How often the event stream sends a visible `ping`.
const PING_EVERY: Duration = Duration::from_secs(5);
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

fn parse_state(s: Option<&str>) -> Result<Option<ItemState>, ApiError> {
    match s {
        None | Some("") | Some("all") => Ok(None),
        Some(s) => ItemState::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request("invalid_state", format!("unknown state {s:?}"))),
    }
}

/// `GET /v1/approvals`
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "approval",
    description = "Lists approval items from the in-memory index, newest first, one page at a time: every open item (pending, escalated, approved, released, failed) and the newest `APPROVAL_RECENT_LIMIT` settled ones (rejected, expired, applied). Older history: `GET /v1/approvals/history`.",
    params(ListQuery),
    responses(
        (status = 200, description = "one page of items", body = crate::openapi::ItemPage),
        (status = 400, description = "unknown `state` (`invalid_state`) or a malformed query string", body = zengate_runtime::error::ErrorBody),
        (status = 401, description = "missing or unknown approver token", body = zengate_runtime::error::ErrorBody),
        (status = 429, description = "too many failed authentications from this client (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    ),
    security(("approver_token" = []))
)]
pub async fn list(
    State(app): State<Arc<AppState>>,
    _who: Approver,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let state = parse_state(q.state.as_deref())?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let (items, next) = app.store.list(state, q.cursor.as_deref(), limit);
    let items: Vec<&crate::item::Item> = items.iter().map(AsRef::as_ref).collect();
    Ok(Json(serde_json::json!({
        "items": items,
        "next_cursor": next,
    }))
    .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only items in this state; empty or `all` for every state.
    pub state: Option<String>,
    /// Only items of this ticket id.
    pub ticket: Option<String>,
    /// Words that must all appear (case-insensitive) in the subject, the
    /// requester, the proposal, the ticket id or the drafter.
    pub q: Option<String>,
    /// `next_before` of the previous page (a position in the bucket).
    pub before: Option<u64>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
}

/// `GET /v1/approvals/history`
#[utoipa::path(
    get,
    path = "/v1/approvals/history",
    tag = "approval",
    description = "Pages through every item the bucket still keeps (settled items for `APPROVAL_RETENTION`), most recently changed first, read from the store rather than the in-memory index. A page examines at most 5000 items: with a sparse filter it may hold fewer than `limit` items and still carry a `next_before`.",
    params(HistoryQuery),
    responses(
        (status = 200, description = "one page of items", body = crate::openapi::HistoryPage),
        (status = 400, description = "unknown `state` (`invalid_state`) or a malformed query string", body = zengate_runtime::error::ErrorBody),
        (status = 401, description = "missing or unknown approver token", body = zengate_runtime::error::ErrorBody),
        (status = 429, description = "too many failed authentications from this client (with Retry-After)", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "the approvals store is unavailable (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    ),
    security(("approver_token" = []))
)]
pub async fn history(
    State(app): State<Arc<AppState>>,
    _who: Approver,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let filter = history::Filter::new(
        parse_state(q.state.as_deref())?,
        q.ticket.as_deref(),
        q.q.as_deref(),
    );
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let page = history::page(&app.store, &filter, q.before, limit).await?;
    Ok(Json(serde_json::json!({
        "items": page.items,
        "next_before": page.next_before,
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
        (status = 429, description = "too many failed authentications from this client (with Retry-After)", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "the approvals store is unavailable (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    ),
    security(("approver_token" = []))
)]
pub async fn get(
    State(app): State<Arc<AppState>>,
    _who: Approver,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, item) = app.store.get(&id).await?.ok_or_else(not_found)?;
    Ok(Json(item).into_response())
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

/// `POST /v1/approvals/{id}/retry`
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/retry",
    tag = "approval",
    description = "Releases a `failed` write again with its original seal. The item stays `failed` (with `retry`) until the worker answers; the worker first looks for the write on the ticket, so a write that landed after all is not repeated. A permanent Zendesk refusal the worker recorded is answered with the same failure.",
    params(("id" = String, Path, description = "approval id")),
    responses(
        (status = 200, description = "retry recorded; the item as stored", body = crate::item::Item),
        (status = 401, description = "missing or unknown approver token", body = zengate_runtime::error::ErrorBody),
        (status = 404, description = "no item with this id", body = zengate_runtime::error::ErrorBody),
        (status = 409, description = "the item is not `failed` (`not_failed`), a retry is already in flight (`retry_in_flight`), it carries no valid seal (`unsealed`) or it changed while the retry was recorded (`changed`)", body = zengate_runtime::error::ErrorBody),
        (status = 429, description = "too many failed authentications from this client (with Retry-After)", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "the approvals store is unavailable (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    ),
    security(("approver_token" = []))
)]
pub async fn retry(
    State(app): State<Arc<AppState>>,
    Approver(by): Approver,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(retry::retry(&app, &id, by).await?).into_response())
}

fn decided(r: Result<crate::item::Item, DecideError>) -> Result<Response, ApiError> {
    Ok(Json(r?).into_response())
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    pub ticket: Option<String>,
    /// No longer accepted; present only to refuse it with a clear message.
    pub token: Option<String>,
}

/// A stream ticket: `GET /v1/events?ticket=…` within `expires_in` seconds, once.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamTicket {
    /// 64 hex characters.
    pub ticket: String,
    /// Seconds the ticket stays valid (`APPROVAL_STREAM_TICKET_TTL`, 30 by default).
    pub expires_in: u64,
}

/// `POST /v1/events/ticket`
#[utoipa::path(
    post,
    path = "/v1/events/ticket",
    tag = "approval",
    description = "A single-use ticket for `GET /v1/events` (EventSource cannot send an Authorization header, and the approver token must not travel in a URL). Valid for 30 seconds, once.",
    responses(
        (status = 200, description = "the ticket; `Cache-Control: no-store`", body = StreamTicket),
        (status = 401, description = "missing or unknown approver token", body = zengate_runtime::error::ErrorBody),
        (status = 429, description = "too many failed authentications from this client (with Retry-After)", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "the ticket store (Redis) is unavailable (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    ),
    security(("approver_token" = []))
)]
pub async fn events_ticket(
    State(app): State<Arc<AppState>>,
    Approver(by): Approver,
) -> Result<Response, ApiError> {
    let ticket = stream_ticket::issue(&app.redis, &by, app.config.stream_ticket_ttl)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot issue a stream ticket");
            ApiError::unavailable(
                "store_unavailable",
                "stream tickets are unavailable; retry shortly",
                2,
            )
        })?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(StreamTicket {
            ticket,
            expires_in: app.config.stream_ticket_ttl.as_secs().max(1),
        }),
    )
        .into_response())
}

/// `GET /v1/events?ticket=…`: one `item` event per change.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "approval",
    description = "Server-sent events for the console: `item` with `{\"id\",\"state\"}` on every change, `resync` when the client fell behind and should reload, `ping` every 5 s (a stream silent for longer is dead). Opened with a single-use `ticket` from `POST /v1/events/ticket`; an approver token in the URL (`?token=`) is refused.",
    params(("ticket" = String, Query, description = "a stream ticket from `POST /v1/events/ticket` (single use, 30 s)")),
    responses(
        (status = 200, description = "an event stream", content_type = "text/event-stream", body = String),
        (status = 401, description = "missing, used, expired or unknown ticket (`invalid_ticket`), or a `?token=` (`token_in_url`)", body = zengate_runtime::error::ErrorBody),
        (status = 429, description = "too many failed authentications from this client (with Retry-After)", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "the ticket store (Redis) is unavailable (with Retry-After)", body = zengate_runtime::error::ErrorBody),
    ),
    security(("stream_ticket" = []))
)]
pub async fn events(
    State(app): State<Arc<AppState>>,
    parts: Parts,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = Query::<EventsQuery>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limiter = FailureLimit::new(&app, client_of(&app, &parts));
    if q.token.is_some() {
        return Err(limiter
            .reject(ApiError::unauthorized(
                "token_in_url",
                "approver tokens are not accepted in a URL; POST /v1/events/ticket (bearer) for a stream ticket",
            ))
            .await);
    }
    let ticket = q.ticket.unwrap_or_default();
    let who = stream_ticket::redeem(&app.redis, &ticket)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot redeem a stream ticket");
            ApiError::unavailable(
                "store_unavailable",
                "stream tickets are unavailable; retry shortly",
                2,
            )
        })?;
    if who.is_none() {
        return Err(limiter
            .reject(ApiError::unauthorized(
                "invalid_ticket",
                "a valid stream ticket is required (POST /v1/events/ticket); each works once, for 30 s",
            ))
            .await);
    }
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
    // A heartbeat the console can see (keep-alive comments are invisible to
    // EventSource): a silent stream means the server is gone.
    let pings = futures::stream::unfold(tokio::time::interval(PING_EVERY), |mut tick| async move {
        tick.tick().await;
        Some((Ok(Event::default().event("ping").data("{}")), tick))
    });
    let stream = futures::stream::select(stream, pings);
    // Open streams must not hold up a graceful shutdown.
    let stop = app.shutdown.clone();
    let stream = stream.take_until(async move { stop.wait().await });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
