//! The limit of this design: the least an issuing server must do. Answer
//! `/healthz`; for `GET /webhook/chat-token`, hash the Bearer user_token,
//! fetch its record from Redis (one `GET`), sign the widget claims, queue the
//! audit and answer the JWT; a background task publishes the audits to
//! JetStream in batches (`Nats-Msg-Id` = `jti`, PubAck awaited). No rate
//! limits, logs, spans or metrics. Runs as a child process (this binary with
//! `AUTH_BENCH_ROLE=minimal`), so it pays for HTTP, Redis and NATS exactly as
//! the service does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_nats::jetstream;
use auth::jwt::{self, WidgetClaims};
use auth::keys::HmacSha256;
use auth::users::{USER_KEY_PREFIX, UserRecord, short_token_hash, token_sha256};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::join_all;
use hmac::Mac;
use tokio::sync::mpsc;
use zengate_core::events::{self, JwtIssued};

/// Environment variable that makes this binary run the minimal server.
pub const ROLE_VAR: &str = "AUTH_BENCH_ROLE";

/// Stream the audits go to (the `ZENGATE` stream's storage and window).
const STREAM: &str = "BENCH_AUTH_MINIMAL";

/// Audits published per round trip, as the service does.
const BATCH: usize = 256;

struct Minimal {
    redis: redis::aio::MultiplexedConnection,
    key: HmacSha256,
    audits: mpsc::UnboundedSender<JwtIssued>,
    /// Audits queued or in flight, for the bench to wait on between phases.
    backlog: Arc<AtomicUsize>,
}

/// Serves on `AUTH_ADDR` until killed.
pub async fn serve() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let nats = async_nats::connect(var("NATS_URL")).await.expect("nats");
    let js = jetstream::new(nats);
    let mut config = zengate_runtime::bus::zengate_stream_config();
    config.name = STREAM.to_owned();
    config.subjects = vec!["bench.auth.>".to_owned()];
    js.get_or_create_stream(config).await.expect("stream");
    let redis = redis::Client::open(var("REDIS_URL"))
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = HmacSha256::new_from_slice(var("ZENDESK_JWT_SHARED_SECRET").as_bytes())
        .expect("any key length");
    let (audits, queued) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    tokio::spawn(publish_audits(js, queued, backlog.clone()));
    let state = Arc::new(Minimal {
        redis,
        key,
        audits,
        backlog,
    });
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/audit-backlog", get(backlog_len))
        .route(auth::CHAT_TOKEN_PATH, get(chat_token))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(var("AUTH_ADDR"))
        .await
        .expect("bind");
    axum::serve(listener, router).await.expect("serve");
}

async fn backlog_len(State(s): State<Arc<Minimal>>) -> String {
    s.backlog.load(Ordering::Relaxed).to_string()
}

async fn chat_token(State(s): State<Arc<Minimal>>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let hash = token_sha256(token);
    let record: Option<Vec<u8>> = match redis::cmd("GET")
        .arg(format!("{USER_KEY_PREFIX}{hash}"))
        .query_async(&mut s.redis.clone())
        .await
    {
        Ok(r) => r,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let Some(user) = record.and_then(|r| serde_json::from_slice::<UserRecord>(&r).ok()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let iat = time::OffsetDateTime::now_utc().unix_timestamp();
    let exp = iat + 300;
    let Ok(jti) = jwt::new_jti() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let claims = WidgetClaims {
        name: &user.name,
        email: &user.email,
        external_id: &user.external_id,
        iat,
        jti: &jti,
        exp,
        aud: None,
    };
    let Ok(token) = jwt::sign_widget(&claims, &s.key) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    s.backlog.fetch_add(1, Ordering::Relaxed);
    let _ = s.audits.send(JwtIssued {
        v: events::V1,
        kind: "chat".to_owned(),
        jti,
        iat,
        exp,
        client_ip: None,
        user_token_hash: short_token_hash(&hash),
        external_id: Some(user.external_id),
        kid: None,
    });
    axum::Json(serde_json::json!({ "jwt": token })).into_response()
}

/// Publishes queued audits, up to [`BATCH`] at a time, each awaited.
async fn publish_audits(
    js: jetstream::Context,
    mut queued: mpsc::UnboundedReceiver<JwtIssued>,
    backlog: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while queued.recv_many(&mut batch, BATCH).await > 0 {
        let sends = batch.iter().map(|audit| {
            let js = js.clone();
            async move {
                let mut h = async_nats::HeaderMap::new();
                h.insert("Nats-Msg-Id", audit.jti.as_str());
                let body = serde_json::to_vec(audit).expect("an audit encodes");
                js.publish_with_headers("bench.auth.jwt_issued.chat", h, body.into())
                    .await
                    .expect("publish")
                    .await
                    .expect("ack");
            }
        });
        join_all(sends).await;
        backlog.fetch_sub(batch.len(), Ordering::Relaxed);
        batch.clear();
    }
}
