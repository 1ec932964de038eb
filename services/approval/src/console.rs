//! `GET /`: the approval console, one static page (HTML + JS, no build step).
//! It signs in with an approver token kept in `sessionStorage`, talks to the
//! `/v1` API with it, and reloads on server-sent events from `/v1/events`.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = include_str!("console.html");

#[utoipa::path(
    get,
    path = "/",
    tag = "approval",
    description = "The approval console (a static page; it signs in with an approver token).",
    responses((status = 200, description = "the console", content_type = "text/html", body = String))
)]
pub async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
        .into_response()
}
