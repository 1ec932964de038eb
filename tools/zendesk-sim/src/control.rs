//! `/__sim/...`: drive and inspect the simulator from other processes
//! (local stack, benchmarks). No authentication: dev/test only.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::api::{comments_page, error};
use crate::store::Fault;

pub(crate) fn routes(shared: Shared) -> Router {
    Router::new()
        .route("/__sim/tickets", get(list_tickets).post(create_ticket))
        .route(
            "/__sim/tickets/{id}/comments",
            get(list_comments).post(add_comment),
        )
        .route("/__sim/requests", get(requests).delete(clear_requests))
        .route("/__sim/faults", get(faults).post(inject))
        .route("/__sim/deliveries", get(deliveries))
        .route("/__sim/me", get(api_user))
        .with_state(shared)
}

#[derive(Deserialize)]
struct NewEnduserTicket {
    subject: String,
    body: String,
    requester_name: String,
    requester_email: String,
}

async fn create_ticket(
    State(shared): State<Shared>,
    axum::Json(req): axum::Json<NewEnduserTicket>,
) -> Response {
    let ticket = shared.create_enduser_ticket(
        &req.subject,
        &req.body,
        &req.requester_name,
        &req.requester_email,
    );
    (StatusCode::CREATED, axum::Json(json!({"ticket": ticket}))).into_response()
}

async fn list_tickets(State(shared): State<Shared>) -> Response {
    let tickets: Vec<_> = shared.with_store(|s| s.tickets.values().cloned().collect());
    axum::Json(json!({"tickets": tickets})).into_response()
}

#[derive(Deserialize)]
struct NewEnduserComment {
    body: String,
}

async fn add_comment(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    axum::Json(req): axum::Json<NewEnduserComment>,
) -> Response {
    let comment = zengate_core::ids::parse_canonical_id(&id)
        .and_then(|id| shared.add_enduser_comment(id, &req.body));
    match comment {
        Some(c) => (StatusCode::CREATED, axum::Json(json!({"comment": c}))).into_response(),
        None => error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found"),
    }
}

async fn list_comments(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    comments_page(&shared, &id, &q)
}

async fn requests(State(shared): State<Shared>) -> Response {
    let requests: Vec<_> = shared.with_store(|s| s.requests.iter().cloned().collect());
    axum::Json(json!({"requests": requests})).into_response()
}

async fn clear_requests(State(shared): State<Shared>) -> StatusCode {
    shared.with_store(|s| s.requests.clear());
    StatusCode::NO_CONTENT
}

async fn faults(State(shared): State<Shared>) -> Response {
    let faults = shared.with_store(|s| s.faults.clone());
    axum::Json(json!({"faults": faults})).into_response()
}

async fn inject(State(shared): State<Shared>, axum::Json(fault): axum::Json<Fault>) -> Response {
    shared.with_store(|s| s.faults.push(fault.clone()));
    (StatusCode::CREATED, axum::Json(json!({"fault": fault}))).into_response()
}

async fn deliveries(State(shared): State<Shared>) -> Response {
    let deliveries = shared.with_store(|s| s.deliveries.clone());
    axum::Json(json!({"deliveries": deliveries})).into_response()
}

async fn api_user(State(shared): State<Shared>) -> Response {
    let user = shared.with_store(|s| s.api_user.clone());
    axum::Json(json!({"user": user})).into_response()
}
