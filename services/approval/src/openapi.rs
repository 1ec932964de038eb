//! The approval service's OpenAPI document, derived from the handler
//! annotations. Response shapes built ad hoc with `json!` in the handlers are
//! described here by schema-only types so the document names their fields.

use utoipa::Modify;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::item::{DecisionRecord, HistoryEntry, Item, ResumeLinks, RetryRecord, State};
use zengate_runtime::error::ErrorBody;

/// Security scheme name: an approver token from `APPROVER_TOKENS`.
pub const APPROVER: &str = "approver_token";
/// Security scheme name: a single-use stream ticket as `?ticket=` (server-sent events only).
pub const STREAM_TICKET: &str = "stream_ticket";
/// Security scheme name: a visitor JWT (HS256, `ZENDESK_JWT_SHARED_SECRET`).
pub const VISITOR: &str = "visitor_jwt";

/// One page of `GET /v1/approvals`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ItemPage {
    items: Vec<Item>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// One page of `GET /v1/approvals/history`.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct HistoryPage {
    items: Vec<Item>,
    /// Pass as `before` for the next page; null when nothing older is kept.
    next_before: Option<u64>,
}

/// The answer to an accepted visitor ticket request.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TicketAccepted {
    /// Id of the approval item now holding the request.
    approval_id: String,
    /// Always `pending`.
    state: State,
}

/// The answer of a resume link used by a non-browser client.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ResumeResult {
    id: String,
    state: State,
}

/// The refusals approve and reject share (each documents its own `400`).
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum DecisionRefusals {
    /// No approver token, or an unknown one.
    #[response(status = 401, description = "missing or unknown approver token")]
    Unauthenticated(ErrorBody),
    /// No such item.
    #[response(status = 404, description = "no item with this id")]
    NotFound(ErrorBody),
    /// The client failed to authenticate too often.
    #[response(
        status = 429,
        description = "too many failed authentications from this client (with Retry-After)"
    )]
    Throttled(ErrorBody),
    /// Lost the compare-and-set: someone decided first.
    #[response(
        status = 409,
        description = "the item is already decided (`already_decided`)"
    )]
    AlreadyDecided(ErrorBody),
    /// Body over the limit.
    #[response(status = 413, description = "body larger than 64 KiB")]
    TooLarge,
    /// The KV store cannot be reached.
    #[response(
        status = 503,
        description = "the approvals store is unavailable (with Retry-After)"
    )]
    Unavailable(ErrorBody),
}

/// Adds the three credentials the routes use.
#[derive(Debug)]
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            APPROVER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("an approver token (`APPROVER_TOKENS`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            STREAM_TICKET,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "ticket",
                "a single-use ticket from `POST /v1/events/ticket`, valid 30 s; only `GET /v1/events` takes it, because EventSource cannot send headers",
            ))),
        );
        components.add_security_scheme(
            VISITOR,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "a visitor JWT signed HS256 with `ZENDESK_JWT_SHARED_SECRET` and minted for zengate (`GET /webhook/chat-token?audience=zengate`): claims name, email, jti, iat, exp (at most 420 s after iat), aud `zengate-approval`, optional nbf and external_id; each jti works once",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(
        title = "zengate approval",
        description = "Holds proposed Zendesk writes until a person approves or rejects them"
    ),
    paths(
        crate::console::page,
        crate::console::script,
        crate::console::style,
        crate::console::page_style,
        crate::api::list,
        crate::api::history,
        crate::api::get,
        crate::api::approve,
        crate::api::reject,
        crate::api::retry,
        crate::api::events_ticket,
        crate::api::events,
        crate::visitor::create,
        crate::resume::confirm,
        crate::resume::resume,
    ),
    components(schemas(
        ErrorBody,
        ItemPage,
        HistoryPage,
        RetryRecord,
        TicketAccepted,
        ResumeResult,
        Item,
        State,
        HistoryEntry,
        DecisionRecord,
        ResumeLinks,
        crate::api::ApproveBody,
        crate::api::RejectBody,
        crate::api::StreamTicket,
        crate::visitor::TicketRequestBody,
    )),
    modifiers(&Security)
)]
pub struct ApiDoc;
