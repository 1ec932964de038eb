//! The token endpoints. Every request goes through the same steps, cheapest
//! first: token shape (no I/O) → per-IP and per-token limits (Redis) → user
//! lookup → issuance. Each refusal has a JSON body and a reason counter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;
use zengate_runtime::error::ApiError;
use zengate_runtime::redis_store::push_hit;

use crate::app::AppState;
use crate::issue::{IssueError, Kind};
use crate::users::{
    Lookup, LookupError, TokenShape, USER_KEY_PREFIX, UserLookup, UserRecord, check_token,
    parse_record, short_token_hash, token_sha256,
};

/// Rate-limit window.
const WINDOW: Duration = Duration::from_secs(60);
/// Seconds a client should wait when the lookup backend is unavailable.
const UNAVAILABLE_RETRY_AFTER: u64 = 5;

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    user_token: Option<String>,
}

/// `?audience=` of `GET /webhook/chat-token`.
#[derive(Debug, Deserialize)]
pub struct AudienceQuery {
    audience: Option<String>,
}

/// `{"jwt": "<compact HS256 JWT>"}`, the body of every success.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct JwtBody {
    /// The signed token, for the widget's `jwtFn` / Messaging `loginUser`.
    jwt: String,
}

/// `POST /webhook/zendesk-jwt?user_token=…`
#[utoipa::path(
    post,
    path = "/webhook/zendesk-jwt",
    tag = "auth",
    description = "The JWT URL configured in Zendesk for the Web Widget (Classic): the widget posts the visitor's user_token as a query parameter.",
    params(("user_token" = Option<String>, Query, description = "the visitor's user_token (16–128 characters of A-Z a-z 0-9 _ -)")),
    responses(
        (status = 200, description = "a Web Widget (Classic) JWT; `Cache-Control: no-store`", body = JwtBody),
        (status = 400, description = "`missing_user_token`: no or empty user_token; `malformed_user_token`: not 16–128 characters of A-Z a-z 0-9 _ -, or an unreadable query (refused before any lookup)", body = zengate_runtime::error::ErrorBody),
        (status = 405, description = "method other than POST"),
        crate::openapi::TokenRefusals,
    )
)]
pub async fn zendesk_jwt(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    serve(&app, Kind::Widget, peer, &headers, query_token(query)).await
}

/// `GET /webhook/chat-token` with `Authorization: Bearer <user_token>`.
#[utoipa::path(
    get,
    path = "/webhook/chat-token",
    tag = "auth",
    description = "A front end fetching its own Web Widget / Chat token with the visitor's user_token as a Bearer credential (CORS for the configured origins). A missing Authorization header is 400 `missing_user_token`. With `audience=zengate` the token is for zengate's own `POST /v1/ticket-requests` instead: the same claims plus `aud: \"zengate-approval\"` (the approval service refuses tokens without it).",
    params(("audience" = Option<String>, Query, description = "`zengate` for a token for zengate's approval service (claim `aud: zengate-approval`); absent for a Zendesk token")),
    responses(
        (status = 200, description = "a Web Widget (Classic) / Chat JWT (or, with `audience=zengate`, a visitor token for zengate); `Cache-Control: no-store`", body = JwtBody),
        (status = 400, description = "`missing_user_token`: no or empty user_token; `malformed_user_token`: not 16–128 characters of A-Z a-z 0-9 _ -, or a non-Bearer Authorization header (refused before any lookup); `invalid_audience`: an `audience` other than `zengate`", body = zengate_runtime::error::ErrorBody),
        (status = 405, description = "method other than GET"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = []))
)]
pub async fn chat_token(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<AudienceQuery>, QueryRejection>,
) -> Response {
    let kind = match query.map(|q| q.0.audience) {
        Ok(None) => Kind::Chat,
        Ok(Some(a)) if a == "zengate" => Kind::Approval,
        _ => return refused(&app, Refusal::InvalidAudience),
    };
    serve(&app, kind, peer, &headers, bearer(&headers)).await
}

/// `POST /webhook/messaging-jwt?user_token=…`
#[utoipa::path(
    post,
    path = "/webhook/messaging-jwt",
    tag = "auth",
    description = "A Messaging token (header `kid`, `scope: user`), user_token as a query parameter.",
    params(("user_token" = Option<String>, Query, description = "the visitor's user_token (16–128 characters of A-Z a-z 0-9 _ -)")),
    responses(
        (status = 200, description = "a Messaging JWT; `Cache-Control: no-store`", body = JwtBody),
        (status = 400, description = "`missing_user_token`: no or empty user_token; `malformed_user_token`: not 16–128 characters of A-Z a-z 0-9 _ -, or an unreadable query (refused before any lookup)", body = zengate_runtime::error::ErrorBody),
        (status = 404, description = "`messaging_not_configured`: Messaging keys are not set", body = zengate_runtime::error::ErrorBody),
        (status = 405, description = "method other than POST"),
        crate::openapi::TokenRefusals,
    )
)]
pub async fn messaging_jwt(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    serve(&app, Kind::Messaging, peer, &headers, query_token(query)).await
}

/// `GET /webhook/messaging-token` with `Authorization: Bearer <user_token>`.
#[utoipa::path(
    get,
    path = "/webhook/messaging-token",
    tag = "auth",
    description = "A Messaging token, user_token as a Bearer credential (CORS for the configured origins). A missing Authorization header is 400 `missing_user_token`.",
    responses(
        (status = 200, description = "a Messaging JWT; `Cache-Control: no-store`", body = JwtBody),
        (status = 400, description = "`missing_user_token`: no or empty user_token; `malformed_user_token`: not 16–128 characters of A-Z a-z 0-9 _ -, or a non-Bearer Authorization header (refused before any lookup)", body = zengate_runtime::error::ErrorBody),
        (status = 404, description = "`messaging_not_configured`: Messaging keys are not set", body = zengate_runtime::error::ErrorBody),
        (status = 405, description = "method other than GET"),
        crate::openapi::TokenRefusals,
    ),
    security(("bearer" = []))
)]
pub async fn messaging_token(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    serve(&app, Kind::Messaging, peer, &headers, bearer(&headers)).await
}

/// The hosts Zendesk documents for the Web Widget (Classic) under a custom
/// CSP ("Content Security Policy (CSP) support"). The subdomain is not known
/// to this service, hence `*.zendesk.com`.
const ZENDESK_HOSTS: &str = "https://static.zdassets.com https://ekr.zdassets.com https://ekr.zendesk.com \
     https://*.zendesk.com https://*.zopim.com";

/// CSP of `/demo`: scripts only from this service and Zendesk's widget hosts
/// (no inline script: the page's script is `/demo.js`); the widget's
/// connections, images and frames as Zendesk documents them. Styles allow
/// `'unsafe-inline'` because the widget injects inline styles (Zendesk's
/// documented requirement); this page alone does so.
pub fn demo_csp() -> String {
    format!(
        "default-src 'self' {ZENDESK_HOSTS} https://zendesk-eu.my.sentry.io wss://*.zendesk.com wss://*.zopim.com; \
         script-src 'self' {ZENDESK_HOSTS}; \
         style-src 'self' 'unsafe-inline'; \
         img-src 'self' https://v2assets.zopim.io https://static.zdassets.com data:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `GET /demo`: a page showing the widget snippet and a token's claims.
#[utoipa::path(
    get,
    path = "/demo",
    tag = "auth",
    responses(
        (status = 200, description = "the demo page (HTML, `Cache-Control: no-store`, a Content-Security-Policy without inline scripts)", body = String, content_type = "text/html"),
        (status = 405, description = "method other than GET"),
    )
)]
pub async fn demo() -> Response {
    let csp = HeaderValue::from_str(&demo_csp())
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::CONTENT_SECURITY_POLICY, csp),
        ],
        Html(include_str!("demo.html")),
    )
        .into_response()
}

/// `GET /demo.js`: the demo page's script.
#[utoipa::path(
    get,
    path = "/demo.js",
    tag = "auth",
    responses(
        (status = 200, description = "JavaScript", body = String, content_type = "text/javascript"),
        (status = 405, description = "method other than GET"),
    )
)]
pub async fn demo_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("demo.js"),
    )
        .into_response()
}

/// The `user_token` a request carries.
#[derive(Debug, PartialEq, Eq)]
enum Credential {
    Missing,
    /// Present but unusable (refused as malformed, never looked up).
    Malformed,
    Given(String),
}

/// The `user_token` query parameter; an unreadable query (bad escapes,
/// repeated parameter) counts as malformed.
fn query_token(query: Result<Query<TokenQuery>, QueryRejection>) -> Credential {
    match query {
        Ok(Query(TokenQuery {
            user_token: Some(t),
        })) => Credential::Given(t),
        Ok(_) => Credential::Missing,
        Err(_) => Credential::Malformed,
    }
}

/// The token from `Authorization: Bearer …`; a header that is present but
/// not a Bearer credential is malformed, not missing.
fn bearer(headers: &HeaderMap) -> Credential {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Credential::Missing;
    };
    let Ok(s) = value.to_str() else {
        return Credential::Malformed;
    };
    match s.trim().split_once(' ') {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() =>
        {
            Credential::Given(rest.trim().to_owned())
        }
        _ => Credential::Malformed,
    }
}

/// Why a token request is refused: its counter reason and its answer.
#[derive(Debug)]
enum Refusal {
    InvalidAudience,
    MessagingDisabled,
    MissingToken,
    MalformedToken,
    RateLimited { per: Limit, retry_after: u64 },
    UnknownToken,
    LookupUnavailable,
    InvalidUser(&'static str),
    Internal,
}

/// Which rate limit refused.
#[derive(Debug, Clone, Copy)]
enum Limit {
    Ip,
    Token,
}

impl Refusal {
    /// The `reason` label of `zengate_auth_refused_total`.
    fn reason(&self) -> &'static str {
        match self {
            Refusal::InvalidAudience => "invalid_audience",
            Refusal::MessagingDisabled => "messaging_disabled",
            Refusal::MissingToken => "missing_user_token",
            Refusal::MalformedToken => "malformed_user_token",
            Refusal::RateLimited { per: Limit::Ip, .. } => "rate_limited_ip",
            Refusal::RateLimited {
                per: Limit::Token, ..
            } => "rate_limited_token",
            Refusal::UnknownToken => "unknown_user_token",
            Refusal::LookupUnavailable => "lookup_unavailable",
            Refusal::InvalidUser(_) => "invalid_user_record",
            Refusal::Internal => "internal",
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::InvalidAudience => ApiError::bad_request(
                "invalid_audience",
                "audience is either absent (a Zendesk token) or `zengate`",
            ),
            Refusal::MessagingDisabled => ApiError::not_found(
                "messaging_not_configured",
                "Messaging tokens are not configured (ZENDESK_MESSAGING_KEY_ID and ZENDESK_MESSAGING_SECRET)",
            ),
            Refusal::MissingToken => {
                ApiError::bad_request("missing_user_token", "a user_token is required")
            }
            Refusal::MalformedToken => ApiError::bad_request(
                "malformed_user_token",
                "a user_token is 16 to 128 characters of A-Z a-z 0-9 _ -",
            ),
            Refusal::RateLimited { per, retry_after } => {
                let what = match per {
                    Limit::Ip => "client address",
                    Limit::Token => "user_token",
                };
                ApiError::too_many(
                    format!("too many token requests for this {what}"),
                    retry_after,
                )
            }
            Refusal::UnknownToken => {
                ApiError::unauthorized("unknown_user_token", "this user_token is not known")
            }
            Refusal::LookupUnavailable => ApiError::unavailable(
                "lookup_unavailable",
                "the user directory cannot be reached; retry shortly",
                UNAVAILABLE_RETRY_AFTER,
            ),
            Refusal::InvalidUser(why) => ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_user_record",
                why,
            ),
            Refusal::Internal => ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "cannot issue a token now",
            ),
        }
    }
}

impl From<IssueError> for Refusal {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::MessagingDisabled => Refusal::MessagingDisabled,
            IssueError::InvalidUser(why) => Refusal::InvalidUser(why),
            IssueError::Internal(_) => Refusal::Internal,
        }
    }
}

/// Counts the refusal and answers it.
fn refused(app: &AppState, refusal: Refusal) -> Response {
    app.metrics.refuse(refusal.reason());
    ApiError::from(refusal).into_response()
}

async fn serve(
    app: &AppState,
    kind: Kind,
    peer: SocketAddr,
    headers: &HeaderMap,
    token: Credential,
) -> Response {
    let started = Instant::now();
    let client_ip = app.proxies.client_ip(peer.ip(), headers);
    let span = tracing::info_span!("jwt_request", kind = kind.as_str(), client_ip = %client_ip);
    let issued = issue(app, kind, client_ip, token).instrument(span).await;
    match issued {
        Ok(jwt) => {
            app.metrics
                .issue_seconds
                .observe(started.elapsed().as_secs_f64());
            let mut res = Json(JwtBody { jwt }).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(refusal) => refused(app, refusal),
    }
}

/// Shape → limits and lookup → issuance; the signed JWT or why not.
async fn issue(
    app: &AppState,
    kind: Kind,
    client_ip: zengate_runtime::client_ip::ClientIp,
    token: Credential,
) -> Result<String, Refusal> {
    if kind == Kind::Messaging && !app.issuer.keys().messaging_enabled() {
        return Err(Refusal::MessagingDisabled);
    }
    let token = match token {
        Credential::Missing => None,
        Credential::Malformed => {
            tracing::info!("refused: malformed user_token");
            return Err(Refusal::MalformedToken);
        }
        Credential::Given(t) => Some(t),
    };
    let token = match check_token(token.as_deref()) {
        TokenShape::Missing => {
            tracing::info!("refused: missing user_token");
            return Err(Refusal::MissingToken);
        }
        TokenShape::Malformed => {
            tracing::info!("refused: malformed user_token");
            return Err(Refusal::MalformedToken);
        }
        TokenShape::Ok => token.unwrap_or_default(),
    };
    let token_sha = token_sha256(&token);
    let user_hash = short_token_hash(&token_sha);
    let looked_up = limit_then_lookup(app, &client_ip.to_string(), &token_sha, &user_hash).await?;
    let user = match looked_up {
        Ok(Some(user)) => user,
        Ok(None) => {
            tracing::info!(user = %user_hash, "refused: unknown user_token");
            return Err(Refusal::UnknownToken);
        }
        Err(e) => {
            tracing::warn!(user = %user_hash, error = %e, "user lookup unavailable");
            return Err(Refusal::LookupUnavailable);
        }
    };
    match app.issuer.issue(kind, &user, &user_hash, Some(client_ip)) {
        Ok(issued) => Ok(issued.jwt),
        Err(e) => {
            match &e {
                IssueError::InvalidUser(why) => {
                    tracing::warn!(user = %user_hash, why, "refused: unusable user record");
                }
                IssueError::Internal(_) => tracing::error!(error = %e, "issuance failed"),
                IssueError::MessagingDisabled => {}
            }
            Err(e.into())
        }
    }
}

type Check = (String, u64, Limit);

/// Per-IP and per-token fixed windows ([`push_hit`], as
/// `RedisStore::hit`), then the user lookup, as one `MULTI`/`EXEC`
/// transaction: one round trip per request, and atomic, so a counter is
/// never left without its expiry. Replies `count, ttl` per counter, then the
/// record (nil when unknown) when Redis is the lookup backend. A Lua script
/// doing the same cost redis-server about twice the CPU per request.
fn limits_then_user(checks: &[Check], user_key: Option<String>) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (key, _, _) in checks {
        push_hit(&mut pipe, key, WINDOW);
    }
    if let Some(key) = user_key {
        pipe.cmd("GET").arg(key);
    }
    pipe
}

/// Per-IP and per-token fixed windows and, with the Redis backend, the user
/// lookup in the same transaction ([`limits_then_user`]). Redis trouble skips the limits (warning and
/// counter) rather than refusing everyone; `Err` is a rate-limit refusal.
async fn limit_then_lookup(
    app: &AppState,
    ip: &str,
    token_sha: &str,
    user_hash: &str,
) -> Result<Result<Option<UserRecord>, LookupError>, Refusal> {
    let checks: Vec<Check> = [
        (
            format!("zengate:auth:rl:ip:{ip}"),
            app.limits.per_ip,
            Limit::Ip,
        ),
        (
            format!("zengate:auth:rl:token:{token_sha}"),
            app.limits.per_token,
            Limit::Token,
        ),
    ]
    .into_iter()
    .filter(|(_, limit, _)| *limit > 0)
    .collect();
    let redis_lookup = matches!(app.lookup, Lookup::Redis(_));
    if checks.is_empty() && !redis_lookup {
        return Ok(app.lookup.lookup(token_sha).await);
    }
    let pipe = limits_then_user(
        &checks,
        redis_lookup.then(|| format!("{USER_KEY_PREFIX}{token_sha}")),
    );
    let values: Vec<redis::Value> = match app.redis.pipeline(&pipe).await {
        Ok(v) => v,
        Err(e) => {
            if !checks.is_empty() {
                tracing::warn!(error = %e, "rate limit skipped: redis unavailable");
                app.metrics.rate_limit_skipped.inc();
            }
            return Ok(if redis_lookup {
                Err(LookupError::from(e))
            } else {
                app.lookup.lookup(token_sha).await
            });
        }
    };
    let int = |i: usize| {
        values
            .get(i)
            .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok())
            .unwrap_or(0)
    };
    for (i, (_, limit, per)) in checks.iter().enumerate() {
        let count = int(2 * i);
        let ttl = int(2 * i + 1).max(1);
        if count.unsigned_abs() > *limit {
            tracing::info!(user = %user_hash, limit = ?per, "refused: rate limited");
            return Err(Refusal::RateLimited {
                per: *per,
                retry_after: ttl.unsigned_abs(),
            });
        }
    }
    if !redis_lookup {
        return Ok(app.lookup.lookup(token_sha).await);
    }
    let stored: Option<String> = values
        .get(2 * checks.len())
        .and_then(|v| redis::from_redis_value_ref(v).ok())
        .flatten();
    Ok(match stored {
        None => Ok(None),
        Some(json) => parse_record(&json).map(Some),
    })
}
