//! The ingress's OpenAPI document, derived from the handler annotations.

/// `{"error": code, "message": text}`, the body of every refusal.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// Stable code (also the metrics `reason` label).
    error: String,
    /// What is wrong, for the sender.
    message: String,
}

#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "zengate ingress",
        description = "Verified Zendesk webhook intake"
    ),
    paths(crate::webhook::receive),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;
