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
    let token = query_token(query);
    serve(&app, Kind::Widget, peer, &headers, token.as_deref()).await
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
        _ => {
            return refuse(
                &app,
                "invalid_audience",
                ApiError::bad_request(
                    "invalid_audience",
                    "audience is either absent (a Zendesk token) or `zengate`",
                ),
            );
        }
    };
    let token = bearer(&headers);
    serve(&app, kind, peer, &headers, token.as_deref()).await
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
    let token = query_token(query);
    serve(&app, Kind::Messaging, peer, &headers, token.as_deref()).await
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
    let token = bearer(&headers);
    serve(&app, Kind::Messaging, peer, &headers, token.as_deref()).await
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

/// The `user_token` query parameter; an unreadable query (bad escapes,
/// repeated parameter) counts as malformed.
fn query_token(query: Result<Query<TokenQuery>, QueryRejection>) -> Option<String> {
    match query {
        Ok(q) => q.0.user_token,
        Err(_) => Some(MALFORMED.to_owned()),
    }
}

/// Stands for a credential that is present but unusable (refused as
/// malformed, never looked up).
const MALFORMED: &str = "\u{0}";

/// The token from `Authorization: Bearer …`; `Some("")` when the header is
/// present but not a Bearer credential (refused as malformed, not missing).
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(s) = value.to_str() else {
        return Some(MALFORMED.to_owned());
    };
    let s = s.trim();
    match s.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
            let t = rest.trim();
            Some(if t.is_empty() {
                MALFORMED.to_owned()
            } else {
                t.to_owned()
            })
        }
        _ => Some(MALFORMED.to_owned()),
    }
}

fn refuse(app: &AppState, reason: &'static str, err: ApiError) -> Response {
    app.metrics.refuse(reason);
    err.into_response()
}

async fn serve(
    app: &AppState,
    kind: Kind,
    peer: SocketAddr,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Response {
    let started = Instant::now();
    let client_ip = app.proxies.client_ip(peer.ip(), headers);
    let span = tracing::info_span!("jwt_request", kind = kind.as_str(), client_ip = %client_ip);
    async move {
        if kind == Kind::Messaging && !app.issuer.keys().messaging_enabled() {
            return refuse(
                app,
                "messaging_disabled",
                ApiError::not_found(
                    "messaging_not_configured",
                    "Messaging tokens are not configured (ZENDESK_MESSAGING_KEY_ID and ZENDESK_MESSAGING_SECRET)",
                ),
            );
        }
        let token = match check_token(token) {
            TokenShape::Missing => {
                tracing::info!("refused: missing user_token");
                return refuse(
                    app,
                    "missing_user_token",
                    ApiError::bad_request("missing_user_token", "a user_token is required"),
                );
            }
            TokenShape::Malformed => {
                tracing::info!("refused: malformed user_token");
                return refuse(
                    app,
                    "malformed_user_token",
                    ApiError::bad_request(
                        "malformed_user_token",
                        "a user_token is 16 to 128 characters of A-Z a-z 0-9 _ -",
                    ),
                );
            }
            TokenShape::Ok => token.unwrap_or_default(),
        };
        let token_sha = token_sha256(token);
        let user_hash = short_token_hash(&token_sha);

        let looked_up =
            match limit_then_lookup(app, &client_ip.to_string(), &token_sha, &user_hash).await {
                Ok(found) => found,
                Err(refused) => return refused,
            };
        let user = match looked_up {
            Ok(Some(user)) => user,
            Ok(None) => {
                tracing::info!(user = %user_hash, "refused: unknown user_token");
                return refuse(
                    app,
                    "unknown_user_token",
                    ApiError::unauthorized("unknown_user_token", "this user_token is not known"),
                );
            }
            Err(e) => {
                tracing::warn!(user = %user_hash, error = %e, "user lookup unavailable");
                return refuse(
                    app,
                    "lookup_unavailable",
                    ApiError::unavailable(
                        "lookup_unavailable",
                        "the user directory cannot be reached; retry shortly",
                        UNAVAILABLE_RETRY_AFTER,
                    ),
                );
            }
        };

        match app.issuer.issue(kind, &user, &user_hash, Some(client_ip)) {
            Ok(issued) => {
                app.metrics
                    .issue_seconds
                    .observe(started.elapsed().as_secs_f64());
                let mut res = Json(JwtBody { jwt: issued.jwt }).into_response();
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res
            }
            Err(IssueError::MessagingDisabled) => refuse(
                app,
                "messaging_disabled",
                ApiError::not_found(
                    "messaging_not_configured",
                    "Messaging tokens are not configured",
                ),
            ),
            Err(IssueError::InvalidUser(why)) => {
                tracing::warn!(user = %user_hash, why, "refused: unusable user record");
                refuse(
                    app,
                    "invalid_user_record",
                    ApiError::new(
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_user_record",
                        why,
                    ),
                )
            }
            Err(e @ IssueError::Internal(_)) => {
                tracing::error!(error = %e, "issuance failed");
                refuse(
                    app,
                    "internal",
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "cannot issue a token now",
                    ),
                )
            }
        }
    }
    .instrument(span)
    .await
}

type Check = (String, u64, &'static str, &'static str);

/// Per-IP and per-token fixed windows (the same commands as
/// `RedisStore::hit`), then the user lookup, as one atomic script: one Redis
/// command and one round trip per request. `KEYS` are the counters, then
/// the user record when Redis is the lookup backend; `ARGV` the window in
/// seconds and the number of counters. Replies `count, ttl` per counter,
/// then the record (nil when unknown).
static LIMITS_THEN_USER: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local out = {}
local n = tonumber(ARGV[2])
for i = 1, n do
  redis.call('SET', KEYS[i], 0, 'EX', ARGV[1], 'NX')
  out[2 * i - 1] = redis.call('INCR', KEYS[i])
  out[2 * i] = redis.call('TTL', KEYS[i])
end
if #KEYS > n then
  out[2 * n + 1] = redis.call('GET', KEYS[n + 1])
end
return out
",
    )
});

/// Per-IP and per-token fixed windows and, with the Redis backend, the user
/// lookup in the same script ([`LIMITS_THEN_USER`]). Redis trouble skips the limits (warning and
/// counter) rather than refusing everyone; `Err` is a rate-limit refusal.
async fn limit_then_lookup(
    app: &AppState,
    ip: &str,
    token_sha: &str,
    user_hash: &str,
) -> Result<Result<Option<UserRecord>, LookupError>, Response> {
    let checks: Vec<Check> = [
        (
            format!("zengate:auth:rl:ip:{ip}"),
            app.limits.per_ip,
            "rate_limited_ip",
            "client address",
        ),
        (
            format!("zengate:auth:rl:token:{token_sha}"),
            app.limits.per_token,
            "rate_limited_token",
            "user_token",
        ),
    ]
    .into_iter()
    .filter(|(_, limit, _, _)| *limit > 0)
    .collect();
    let redis_lookup = matches!(app.lookup, Lookup::Redis(_));
    if checks.is_empty() && !redis_lookup {
        return Ok(app.lookup.lookup(token_sha).await);
    }
    let mut script = LIMITS_THEN_USER.prepare_invoke();
    for (key, _, _, _) in &checks {
        script.key(key);
    }
    if redis_lookup {
        script.key(format!("{USER_KEY_PREFIX}{token_sha}"));
    }
    script.arg(WINDOW.as_secs()).arg(checks.len());
    let values: Vec<redis::Value> = match app.redis.script(&script).await {
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
    for (i, (_, limit, reason, what)) in checks.iter().enumerate() {
        let count = int(2 * i);
        let ttl = int(2 * i + 1).max(1);
        if count.unsigned_abs() > *limit {
            tracing::info!(user = %user_hash, what, "refused: rate limited");
            return Err(refuse(
                app,
                reason,
                ApiError::too_many(
                    format!("too many token requests for this {what}"),
                    ttl.unsigned_abs(),
                ),
            ));
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
