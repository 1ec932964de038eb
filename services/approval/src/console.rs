//! `GET /`: the approval console, one static page (HTML + JS + CSS files, no
//! build step). It signs in with an approver token kept in `sessionStorage`,
//! talks to the `/v1` API with it, and reloads on server-sent events from
//! `/v1/events` (opened with a single-use ticket, never the token).
//!
//! Every page is sent with a Content-Security-Policy that allows no inline
//! script or style (the script and styles are served files), so an injected
//! string cannot run; every response also forbids framing and sniffing and
//! sends no referrer.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;

const PAGE: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");
const PAGE_STYLE: &str = include_str!("page.css");

pub const SCRIPT_PATH: &str = "/assets/console.js";
pub const STYLE_PATH: &str = "/assets/console.css";
pub const PAGE_STYLE_PATH: &str = "/assets/page.css";

/// The console: its own script, styles and API only.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// Resume pages: one stylesheet and a form posting back to the same service.
pub const RESUME_CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// Everything else (JSON, event stream, assets): nothing may load or frame.
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Headers every response carries; pages set their own CSP first.
pub fn security_headers(router: Router) -> Router {
    let fixed = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    router
        .layer(fixed(header::X_FRAME_OPTIONS, "DENY"))
        .layer(fixed(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(fixed(header::REFERRER_POLICY, "no-referrer"))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CSP),
        ))
}

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
            (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
        ],
        Html(PAGE),
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/assets/console.js",
    tag = "approval",
    description = "The console's script.",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String))
)]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[utoipa::path(
    get,
    path = "/assets/console.css",
    tag = "approval",
    description = "The console's styles.",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String))
)]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[utoipa::path(
    get,
    path = "/assets/page.css",
    tag = "approval",
    description = "The styles of the resume-link pages.",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String))
)]
pub async fn page_style() -> Response {
    asset("text/css; charset=utf-8", PAGE_STYLE)
}
