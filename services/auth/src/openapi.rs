//! The auth service's OpenAPI document, derived from the handler annotations.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use zengate_runtime::error::ErrorBody;

/// The refusals every token endpoint shares (each also documents its own
/// `400`, `405` and, for Messaging, `404`).
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum TokenRefusals {
    /// `unknown_user_token`: the lookup found nobody.
    #[response(
        status = 401,
        description = "`unknown_user_token`: the lookup found nobody"
    )]
    Unknown(ErrorBody),
    /// The request did not complete in time.
    #[response(status = 408, description = "request not completed in time")]
    Timeout,
    /// `invalid_user_record`: the record cannot be put in a token.
    #[response(
        status = 422,
        description = "`invalid_user_record`: the user record cannot be put in a token (e.g. external_id not 1–255 bytes)"
    )]
    InvalidRecord(ErrorBody),
    /// `rate_limited`: over a per-minute limit.
    #[response(
        status = 429,
        description = "`rate_limited`: over the per-minute limit for this client address or user_token; retry after `Retry-After` seconds",
        headers(("Retry-After" = u64, description = "seconds until the window resets"))
    )]
    RateLimited(ErrorBody),
    /// `internal`: signing failed.
    #[response(
        status = 500,
        description = "`internal`: the token cannot be signed now"
    )]
    Internal(ErrorBody),
    /// `lookup_unavailable`: the user directory is down.
    #[response(
        status = 503,
        description = "`lookup_unavailable`: the user directory cannot be reached; retry after `Retry-After` seconds",
        headers(("Retry-After" = u64, description = "seconds to wait (5)"))
    )]
    LookupUnavailable(ErrorBody),
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
        crate::http::demo_js,
    ),
    components(schemas(crate::http::JwtBody, ErrorBody)),
    modifiers(&BearerUserToken)
)]
pub struct ApiDoc;
