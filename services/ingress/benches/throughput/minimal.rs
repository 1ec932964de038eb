//! The limit of this design: the least a verify-and-publish server must do.
//! Read the body, verify the HMAC, publish to JetStream with a `Nats-Msg-Id`,
//! await the PubAck, answer `200`. No envelope parse, no Redis, no logs, no
//! metrics. Runs as a child process (this binary with `ZG_BENCH_ROLE=minimal`).
//!
//! With `ZG_BENCH_SHAPE=design` it publishes the message the design asks
//! for instead: the per-ticket subject (known here from the bench's event
//! numbering, without reading the body) and the bus headers the ingress
//! writes (Zendesk's delivery headers, receipt time, `traceparent`). That
//! message costs nats-server and the client more than one header on one
//! subject, whoever publishes it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zengate_core::Secret;
use zengate_core::headers as h;
use zengate_core::signature::{self, Signature};

use crate::events::{self, ACCOUNT, SECRET};

/// Environment variable choosing the published message's shape.
pub const SHAPE_VAR: &str = "ZG_BENCH_SHAPE";

/// Stream the minimal server publishes to (same storage and window as
/// `ZENDESK_EVENTS`).
pub const STREAM: &str = "BENCH_MINIMAL";

struct Minimal {
    secrets: Vec<Secret>,
    js: jetstream::Context,
    /// Publish the design's subject and headers (see the module doc).
    design: bool,
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
        design: std::env::var(SHAPE_VAR).as_deref() == Ok("design"),
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

async fn receive(State(s): State<Arc<Minimal>>, request: Request) -> StatusCode {
    // Headers read in place, the body collected as the `Bytes` extractor does.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST;
    };
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
    let subject = if s.design {
        design_headers(&headers, &mut h);
        // `inv-<tag>-<i>` names event i, whose ticket the bench numbered.
        let i = id
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        format!(
            "bench.minimal.{ACCOUNT}.ticket.{}.comment_added",
            events::ticket(i)
        )
    } else {
        format!("bench.minimal.{ACCOUNT}")
    };
    let ack = async { s.js.publish_with_headers(subject, h, body).await?.await };
    match tokio::time::timeout(Duration::from_secs(5), ack).await {
        Ok(Ok(_)) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The bus headers the ingress writes beside the message id.
fn design_headers(request: &HeaderMap, bus: &mut async_nats::HeaderMap) {
    for (from, to) in [
        ("x-zendesk-account-id", h::BUS_ACCOUNT_ID),
        ("x-zendesk-webhook-id", h::BUS_WEBHOOK_ID),
        ("x-zendesk-webhook-invocation-id", h::BUS_INVOCATION_ID),
        (
            "x-zendesk-webhook-signature-timestamp",
            h::BUS_SIGNATURE_TIMESTAMP,
        ),
        ("x-zendesk-webhook-signature", h::BUS_SIGNATURE),
    ] {
        if let Some(v) = request.get(from).and_then(|v| v.to_str().ok()) {
            bus.insert(to, v);
        }
    }
    if let Ok(now) = OffsetDateTime::now_utc().format(&Rfc3339) {
        bus.insert(h::BUS_RECEIVED_AT, now);
    }
    let traceparent = format!(
        "00-{:032x}-{:016x}-01",
        fastrand::u128(1..),
        fastrand::u64(1..)
    );
    bus.insert(h::TRACEPARENT, traceparent);
}
