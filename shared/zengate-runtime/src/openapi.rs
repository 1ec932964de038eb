//! `GET /openapi.json` on every HTTP service. Each service derives its own
//! document from its handlers' annotations (utoipa); this adds the common
//! health routes and serves the result.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;

use crate::health::HealthApi;

/// Path the document is served at.
pub const PATH: &str = "/openapi.json";

/// The route serving `doc` (plus the health routes) as JSON. The document is
/// rendered once, at start-up.
pub fn routes<S: Clone + Send + Sync + 'static>(mut doc: OpenApi) -> Router<S> {
    doc.merge(HealthApi::openapi());
    let body: Arc<str> = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot render the OpenAPI document: {e}\"}}"))
        .into();
    Router::new().route(
        PATH,
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
        }),
    )
}
