//! The ingress's OpenAPI document, derived from the handler annotations.

use zengate_runtime::error::ErrorBody;

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
