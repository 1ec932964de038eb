//! The limit of this design: the least a verify-and-publish server must do.
//! Read the body, verify the HMAC, publish to JetStream with a `Nats-Msg-Id`,
//! await the PubAck, answer `200`. No envelope parse, no Redis, no logs, no
//! metrics. Runs as a child process (this binary with `ZG_BENCH_ROLE=minimal`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use zengate_core::Secret;
use zengate_core::signature::{self, Signature};

use crate::events::SECRET;

/// Stream the minimal server publishes to (same storage and window as
/// `ZENDESK_EVENTS`).
pub const STREAM: &str = "BENCH_MINIMAL";

struct Minimal {
    secrets: Vec<Secret>,
    js: jetstream::Context,
}

/// Serves until killed; prints `minimal listening <addr>` once bound.
pub async fn serve() {
    let nats = std::env::var("NATS_URL").expect("NATS_URL");
    let client = async_nats::connect(nats).await.expect("nats");
    let js = jetstream::new(client);
    let mut config = zengate_runtime::bus::zendesk_stream_config(&Default::default());
    config.name = STREAM.to_owned();
    config.subjects = vec!["bench.minimal.>".to_owned()];
    js.get_or_create_stream(config).await.expect("stream");
    let state = Arc::new(Minimal {
        secrets: vec![Secret::new(SECRET)],
        js,
    });
    let router = Router::new()
        .route(ingress::WEBHOOK_PATH, post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("minimal listening {}", listener.local_addr().expect("addr"));
    axum::serve(listener, router).await.expect("serve");
}

async fn receive(State(s): State<Arc<Minimal>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let (Some(ts), Some(sig), Some(id)) = (
        header("x-zendesk-webhook-signature-timestamp"),
        header("x-zendesk-webhook-signature"),
        headers.get("x-zendesk-webhook-invocation-id"),
    ) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(sig) = Signature::parse(sig) else {
        return StatusCode::UNAUTHORIZED;
    };
    if signature::verify(&s.secrets, ts, &body, &sig).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(id) = id.to_str() else {
        return StatusCode::BAD_REQUEST;
    };
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", id);
    let ack = async {
        s.js.publish_with_headers("bench.minimal.42", h, body)
            .await?
            .await
    };
    match tokio::time::timeout(Duration::from_secs(5), ack).await {
        Ok(Ok(_)) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}
