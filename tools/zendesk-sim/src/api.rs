//! The simulated Ticketing API: Zendesk's paths, shapes and errors.

// Validation helpers return the ready error response; its size is irrelevant
// in a dev tool.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use zengate_core::ids::parse_canonical_id;

use crate::Shared;
use crate::store::{IdempotentEntry, RecordedRequest, SimComment, SimTicket, SimUser, now_rfc3339};

/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;
/// Zendesk's cursor page size limit.
const MAX_PAGE_SIZE: usize = 100;

pub(crate) fn routes(shared: Shared) -> Router {
    Router::new()
        .route("/api/v2/tickets.json", post(create_ticket))
        .route("/api/v2/tickets/{file}", get(get_ticket).put(update_ticket))
        .route("/api/v2/tickets/{id}/comments.json", get(list_comments))
        .route("/api/v2/users/me.json", get(me))
        .route(
            "/api/v2/help_center/articles/search",
            get(crate::help_center::search),
        )
        .route(
            "/api/v2/help_center/articles/search.json",
            get(crate::help_center::search),
        )
        .route("/api/{*rest}", any(no_route))
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

pub(crate) fn error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "description": description})),
    )
        .into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found")
}

async fn no_route() -> Response {
    error(StatusCode::NOT_FOUND, "InvalidEndpoint", "Not found")
}

/// Records the request, applies an injected fault, then checks Basic auth.
async fn gate(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLarge",
            "Body too large",
        );
    };
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let recorded = RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        peer: parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.to_string()),
    };
    let fault = shared.with_store(|s| {
        s.record(recorded);
        s.take_fault(&method, &path)
    });
    if let Some(fault) = fault {
        if let Some(latency) = fault.latency {
            tokio::time::sleep(latency).await;
        }
        if fault.status >= 400 {
            return fault_response(fault.status, fault.retry_after);
        }
    }
    let authorized = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| shared.authorization_matches(v));
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Basic realm=\"Web Password\"")],
            axum::Json(json!({"error": "Couldn't authenticate you"})),
        )
            .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn fault_response(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (code, description) = match status.as_u16() {
        429 => ("TooManyRequests", "Rate limit exceeded"),
        503 => ("ServiceUnavailable", "Service temporarily unavailable"),
        _ => ("InternalServerError", "Something went wrong"),
    };
    let mut resp = error(status, code, description);
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    if status.as_u16() == 429 {
        resp.headers_mut()
            .insert("x-rate-limit", HeaderValue::from(700u32));
        resp.headers_mut()
            .insert("x-rate-limit-remaining", HeaderValue::from(0u32));
    }
    resp
}

fn id_from_file(file: &str) -> Option<u64> {
    file.strip_suffix(".json").and_then(parse_canonical_id)
}

pub(crate) fn ticket_json(base_url: &str, t: &SimTicket) -> Value {
    json!({
        "id": t.id,
        "url": format!("{base_url}/api/v2/tickets/{}.json", t.id),
        "subject": t.subject,
        "raw_subject": t.subject,
        "description": t.description,
        "status": t.status,
        "priority": t.priority,
        "type": null,
        "tags": t.tags,
        "requester_id": t.requester_id,
        "submitter_id": t.submitter_id,
        "assignee_id": null,
        "is_public": true,
        "via": {"channel": t.channel, "source": {"from": {}, "to": {}, "rel": null}},
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    })
}

pub(crate) fn comment_json(c: &SimComment) -> Value {
    json!({
        "id": c.id,
        "type": "Comment",
        "author_id": c.author_id,
        "body": c.body,
        "html_body": format!("<div class=\"zd-comment\"><p>{}</p></div>", c.body),
        "plain_body": c.body,
        "public": c.public,
        "attachments": [],
        "via": {"channel": "api"},
        "created_at": c.created_at,
    })
}

fn user_json(u: &SimUser) -> Value {
    json!({"id": u.id, "name": u.name, "email": u.email, "role": u.role, "active": true})
}

async fn get_ticket(State(shared): State<Shared>, Path(file): Path<String>) -> Response {
    let Some(id) = id_from_file(&file) else {
        return not_found();
    };
    match shared.with_store(|s| s.tickets.get(&id).cloned()) {
        Some(t) => axum::Json(json!({"ticket": ticket_json(&shared.base_url, &t)})).into_response(),
        None => not_found(),
    }
}

async fn me(State(shared): State<Shared>) -> Response {
    let user = shared.with_store(|s| s.api_user.clone());
    axum::Json(json!({"user": user_json(&user)})).into_response()
}

fn encode_cursor(id: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{{\"o\":\"id\",\"v\":\"{id}\"}}"))
}

fn decode_cursor(c: &str) -> Option<u64> {
    let raw = URL_SAFE_NO_PAD.decode(c).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    parse_canonical_id(v.get("v")?.as_str()?)
}

async fn list_comments(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    comments_page(&shared, &id, &q)
}

/// One cursor page of a ticket's comments (`page[size]`, `page[after]`,
/// `sort=created_at|-created_at`).
pub(crate) fn comments_page(shared: &Shared, id: &str, q: &HashMap<String, String>) -> Response {
    let Some(id) = parse_canonical_id(id) else {
        return not_found();
    };
    let size = match q.get("page[size]") {
        None => MAX_PAGE_SIZE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidPaginationParameter",
                    "page[size] must be between 1 and 100",
                );
            }
        },
    };
    let descending = match q.get("sort").map(String::as_str) {
        None | Some("created_at") => false,
        Some("-created_at") => true,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidPaginationParameter",
                "sort must be created_at or -created_at",
            );
        }
    };
    let Some(mut all) = shared.with_store(|s| {
        s.tickets
            .contains_key(&id)
            .then(|| s.comments.get(&id).cloned().unwrap_or_default())
    }) else {
        return not_found();
    };
    if descending {
        all.reverse();
    }
    let start = match q.get("page[after]") {
        None => 0,
        Some(c) => match decode_cursor(c).and_then(|cid| all.iter().position(|x| x.id == cid)) {
            Some(pos) => pos + 1,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidPaginationParameter",
                    "page[after] is not a valid cursor",
                );
            }
        },
    };
    let end = (start + size).min(all.len());
    let page = &all[start.min(end)..end];
    let has_more = end < all.len();
    let after = page.last().map(|c| encode_cursor(c.id));
    let before = page.first().map(|c| encode_cursor(c.id));
    let sort = if descending {
        "-created_at"
    } else {
        "created_at"
    };
    let base = format!("{}/api/v2/tickets/{id}/comments.json", shared.base_url);
    let next = match (&after, has_more) {
        (Some(a), true) => Some(format!(
            "{base}?page%5Bafter%5D={a}&page%5Bsize%5D={size}&sort={sort}"
        )),
        _ => None,
    };
    let prev = before
        .as_ref()
        .map(|b| format!("{base}?page%5Bbefore%5D={b}&page%5Bsize%5D={size}&sort={sort}"));
    let mut body = json!({
        "comments": page.iter().map(comment_json).collect::<Vec<_>>(),
        "meta": {"has_more": has_more, "after_cursor": after, "before_cursor": before},
        "links": {"next": next, "prev": prev},
    });
    // `include=users` sideloads the page's authors, each once.
    if q.get("include")
        .is_some_and(|v| v.split(',').any(|i| i.trim() == "users"))
    {
        let users: Vec<Value> = shared.with_store(|s| {
            let mut ids: Vec<u64> = page.iter().map(|c| c.author_id).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.iter()
                .filter_map(|id| s.users.get(id))
                .map(user_json)
                .collect()
        });
        body["users"] = Value::Array(users);
    }
    axum::Json(body).into_response()
}

fn invalid(description: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {"base": [{"description": description}]},
        })),
    )
        .into_response()
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

const STATUSES: [&str; 6] = ["new", "open", "pending", "hold", "solved", "closed"];
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

fn enum_field(v: Option<&Value>, allowed: &[&str], name: &str) -> Result<Option<String>, Response> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if allowed.contains(&s.to_ascii_lowercase().as_str()) => {
            Ok(Some(s.to_ascii_lowercase()))
        }
        Some(_) => Err(invalid(&format!("{name} is not valid"))),
    }
}

async fn create_ticket(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidJSON",
            "The request body is not valid JSON",
        );
    };
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_owned()),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidIdempotencyKey",
                "Idempotency-Key must be 1 to 255 characters",
            );
        }
    };
    let Some(t) = req.get("ticket").filter(|t| t.is_object()) else {
        return invalid("ticket is required");
    };
    let comment = t.get("comment");
    let Some(text) = comment
        .and_then(|c| c.get("body").or_else(|| c.get("html_body")))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
    else {
        return invalid("Description: cannot be blank");
    };
    let public = comment
        .and_then(|c| c.get("public"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let subject = t.get("subject").and_then(Value::as_str).unwrap_or_default();
    let priority = match enum_field(t.get("priority"), &PRIORITIES, "priority") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let status = match enum_field(t.get("status"), &STATUSES, "status") {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tags = str_list(t.get("tags"));
    let requester = t.get("requester");

    let outcome = shared.with_store(|s| {
        if let Some(k) = &key
            && let Some(entry) = s.idempotency.get(k)
        {
            if entry.request_body == req {
                return Ok((entry.status, entry.response.clone(), true, None));
            }
            return Err(error(
                StatusCode::BAD_REQUEST,
                "IdempotentRequestError",
                "The same idempotency key was used with different request parameters",
            ));
        }
        let requester = match requester {
            Some(r) => {
                let Some(email) = r
                    .get("email")
                    .and_then(Value::as_str)
                    .filter(|e| e.contains('@'))
                else {
                    return Err(invalid("Requester: email is invalid"));
                };
                let name = r.get("name").and_then(Value::as_str).unwrap_or(email);
                s.user_for(name, email)
            }
            None => s.api_user.clone(),
        };
        let author = s.api_user.id;
        let (ticket, change) = s.create_ticket(
            subject, text, public, &requester, author, "api", tags, priority, status,
        );
        let response = json!({"ticket": ticket_json(&shared.base_url, &ticket)});
        if let Some(k) = &key {
            s.idempotency.insert(
                k.clone(),
                IdempotentEntry {
                    request_body: req.clone(),
                    status: 201,
                    response: response.clone(),
                },
            );
        }
        Ok((201, response, false, Some(change)))
    });
    match outcome {
        Err(resp) => resp,
        Ok((status, response, hit, change)) => {
            if let Some(c) = change {
                shared.emit(c);
            }
            let mut resp = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED),
                axum::Json(response),
            )
                .into_response();
            if key.is_some() {
                resp.headers_mut().insert(
                    "x-idempotency-lookup",
                    HeaderValue::from_static(if hit { "hit" } else { "miss" }),
                );
            }
            resp
        }
    }
}

async fn update_ticket(
    State(shared): State<Shared>,
    Path(file): Path<String>,
    body: Bytes,
) -> Response {
    let Some(id) = id_from_file(&file) else {
        return not_found();
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidJSON",
            "The request body is not valid JSON",
        );
    };
    let Some(t) = req.get("ticket").filter(|t| t.is_object()) else {
        return invalid("ticket is required");
    };
    // Zendesk makes a comment public unless told otherwise; the simulator
    // refuses a comment without an explicit `public` so a client that
    // forgets it fails in tests rather than leaking an internal note.
    let comment = match t.get("comment") {
        None | Some(Value::Null) => None,
        Some(c) => {
            let Some(text) = c
                .get("body")
                .or_else(|| c.get("html_body"))
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
            else {
                return invalid("Comment: body cannot be blank");
            };
            let Some(public) = c.get("public").and_then(Value::as_bool) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidValue",
                    "comment.public must be sent explicitly (true or false)",
                );
            };
            Some((text.to_owned(), public))
        }
    };
    let priority = match enum_field(t.get("priority"), &PRIORITIES, "priority") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let status = match enum_field(t.get("status"), &STATUSES, "status") {
        Ok(s) => s,
        Err(r) => return r,
    };
    let replace_tags = t.get("tags").map(|v| str_list(Some(v)));
    let add_tags = str_list(t.get("additional_tags"));

    let result = shared.with_store(|s| {
        let author = s.api_user.id;
        let ticket = s.tickets.get_mut(&id)?;
        if let Some(st) = status {
            ticket.status = st;
        } else if ticket.status == "new" && comment.is_some() {
            ticket.status = "open".to_owned();
        }
        if priority.is_some() {
            ticket.priority = priority;
        }
        if let Some(tags) = replace_tags {
            ticket.tags = tags;
        }
        for tag in add_tags {
            if !ticket.tags.contains(&tag) {
                ticket.tags.push(tag);
            }
        }
        ticket.updated_at = now_rfc3339();
        let mut change = None;
        let mut comment_id = None;
        if let Some((text, public)) = &comment
            && let Some((c, ch)) = s.add_comment(id, author, text, *public)
        {
            comment_id = Some(c.id);
            change = Some(ch);
        }
        let ticket = s.tickets.get(&id)?.clone();
        Some((ticket, change, comment_id, author))
    });
    let Some((ticket, change, comment_id, author)) = result else {
        return not_found();
    };
    if let Some(c) = change {
        shared.emit(c);
    }
    let events: Vec<Value> = comment_id
        .map(|cid| json!({"id": cid, "type": "Comment", "author_id": author}))
        .into_iter()
        .collect();
    axum::Json(json!({
        "ticket": ticket_json(&shared.base_url, &ticket),
        "audit": {"ticket_id": ticket.id, "author_id": author, "created_at": ticket.updated_at, "events": events},
    }))
    .into_response()
}
