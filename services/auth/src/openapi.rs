//! The auth service's OpenAPI document, derived from the handler annotations.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// `{"error": code, "message": text}`, the body of every refusal.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// Stable code (`missing_user_token`, `rate_limited`, …).
    error: String,
    /// What is wrong, for the caller.
    message: String,
}

/// The visitor's user_token as `Authorization: Bearer …` on the browser endpoints.
#[derive(Debug)]
struct BearerUserToken;

impl Modify for BearerUserToken {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the visitor's user_token (not a JWT)"))
                    .build(),
            ),
        );
    }
}

#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "zengate auth",
        description = "HS256 JWTs for authenticated Zendesk Web Widget (Classic, incl. Chat) and Messaging visitors"
    ),
    paths(
        crate::http::zendesk_jwt,
        crate::http::chat_token,
        crate::http::messaging_jwt,
        crate::http::messaging_token,
        crate::http::demo,
    ),
    components(schemas(crate::http::JwtBody, ErrorBody)),
    modifiers(&BearerUserToken)
)]
pub struct ApiDoc;
