//! The webhook handler: precheck → bounded body read → verify and parse →
//! dedup → publish and await the PubAck → `200`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument;
use zengate_core::envelope::Head;
use zengate_core::headers as h;
use zengate_runtime::bus::PublishError;
use zengate_runtime::error::ApiError;

use crate::app::AppState;
use crate::breaker::RedisUnavailable;
use crate::budget::Reservation;
use crate::request::{self, Delivery};

/// `POST /channels/zendesk/webhook`
#[utoipa::path(
    post,
    path = "/channels/zendesk/webhook",
    tag = "ingress",
    description = "A Zendesk webhook delivery. The body is Zendesk's common event envelope, signed with HMAC-SHA256 over timestamp ‖ body.",
    params(
        ("x-zendesk-account-id" = String, Header, description = "Zendesk account id (positive decimal)"),
        ("x-zendesk-webhook-id" = String, Header, description = "webhook id"),
        ("x-zendesk-webhook-invocation-id" = String, Header, description = "delivery attempt id"),
        ("x-zendesk-webhook-signature-timestamp" = String, Header, description = "signed timestamp"),
        ("x-zendesk-webhook-signature" = String, Header, description = "base64 HMAC-SHA256(secret, timestamp ‖ body), 44 characters"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json", description = "the event envelope, exact bytes"),
    responses(
        (status = 200, description = "durable in JetStream (or a known duplicate); empty body"),
        (status = 400, description = "bad routing header, Content-Length, UTF-8, JSON or envelope", body = zengate_runtime::error::ErrorBody),
        (status = 401, description = "signature missing, malformed, duplicated, not matching or stale", body = zengate_runtime::error::ErrorBody),
        (status = 403, description = "account or webhook not accepted here", body = zengate_runtime::error::ErrorBody),
        (status = 405, description = "method other than POST"),
        (status = 408, description = "request not completed in time"),
        (status = 413, description = "body above the limit", body = zengate_runtime::error::ErrorBody),
        (status = 415, description = "media type not application/json", body = zengate_runtime::error::ErrorBody),
        (status = 503, description = "not durable in time; retry after Retry-After seconds", body = zengate_runtime::error::ErrorBody),
    )
)]
pub async fn receive(State(app): State<Arc<AppState>>, request: Request) -> Response {
    // The headers are read in place (a `HeaderMap` extractor clones them all).
    let (parts, body) = request.into_parts();
    let res = match handle(&app, &parts.headers, body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            app.metrics.reject(e.code);
            tracing::info!(
                status = e.status.as_u16(),
                reason = e.code,
                "delivery refused"
            );
            e.into_response()
        }
    };
    app.metrics.count_status(res.status().as_u16());
    res
}

/// Reads the body within the body limit, counting every byte against the
/// in-flight budget (the declared length is already reserved).
async fn read_body(
    body: Body,
    limit: usize,
    declared: Option<usize>,
    reservation: &mut Reservation,
) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(
                "body_read_failed",
                format!("could not read the request body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            let len = buf.len() + data.len();
            if len > limit {
                return Err(request::too_large(limit).into());
            }
            if !reservation.cover(len) {
                return Err(busy());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// A delivery whose signature and envelope hold, ready to be stored.
struct Verified {
    delivery: Delivery,
    envelope: Head,
    body: Bytes,
    received_at: OffsetDateTime,
    /// Released once the body is durable (or refused).
    reservation: Reservation,
}

async fn handle(app: &AppState, headers: &HeaderMap, body: Body) -> Result<(), ApiError> {
    let delivery = request::precheck(headers, &app.rules)?;
    let declared = delivery.declared_len;
    let mut reservation = app.budget.reserve(declared.unwrap_or(0)).ok_or_else(busy)?;
    let body = read_body(body, app.rules.body_limit, declared, &mut reservation).await?;
    let received_at = OffsetDateTime::now_utc();
    let envelope = request::verify_and_parse(&delivery, &body, &app.rules, received_at)?;
    // The span opens with every id at once: recording fields into an open
    // span makes the JSON log layer re-serialise all of them each time.
    let subject = envelope.nats_subject();
    let span = tracing::info_span!(
        "webhook",
        invocation_id = delivery.invocation_id.as_str(),
        event_id = envelope.id.as_str(),
        account_id = envelope.account_id,
        ticket_id = envelope.ticket_id(),
        subject = subject.as_str(),
    );
    let verified = Verified {
        delivery,
        envelope,
        body,
        received_at,
        reservation,
    };
    store(app, verified, subject).instrument(span).await
}

/// Dedup, then publish the exact bytes and await the PubAck.
async fn store(app: &AppState, v: Verified, subject: String) -> Result<(), ApiError> {
    let msg_id = v.envelope.msg_id();
    let lookup = if app.window.covers(&v.envelope.time, v.received_at) {
        app.metrics.redis_lookups_skipped.inc();
        Ok(false)
    } else {
        app.dedup.seen(&msg_id).await
    };
    match lookup {
        Ok(true) => {
            app.metrics.dedup_hit("redis");
            tracing::info!("duplicate delivery acknowledged");
            return Ok(());
        }
        Ok(false) => {}
        Err(RedisUnavailable::Open) => {
            app.metrics.redis_degraded.inc();
        }
        Err(e) => {
            app.metrics.redis_degraded.inc();
            tracing::warn!(error = %e, "redis unavailable; relying on the JetStream duplicate window");
        }
    }

    let headers = bus_headers(v.delivery, v.received_at);
    let started = Instant::now();
    let ack = app.publisher.bytes(subject, &msg_id, headers, v.body).await;
    app.metrics
        .publish_seconds
        .observe(started.elapsed().as_secs_f64());
    let ack = match ack {
        Ok(ack) => ack,
        Err(e @ PublishError::Timeout { .. }) => {
            tracing::warn!(error = %e, "publish not acknowledged in time; asking Zendesk to retry");
            return Err(unavailable());
        }
        Err(e) => {
            tracing::warn!(error = %e, "publish failed; asking Zendesk to retry");
            return Err(unavailable());
        }
    };
    drop(v.reservation);
    if ack.duplicate {
        app.metrics.dedup_hit("jetstream");
        tracing::info!(sequence = ack.sequence, "duplicate caught by JetStream");
    } else {
        app.metrics.published.inc();
        tracing::info!(sequence = ack.sequence, "event durable");
    }
    app.dedup.remember(&msg_id);
    Ok(())
}

fn unavailable() -> ApiError {
    ApiError::unavailable(
        "bus_unavailable",
        "the event could not be stored durably; retry shortly",
        5,
    )
}

/// The in-flight body budget is spent: nothing was accepted, Zendesk retries.
fn busy() -> ApiError {
    ApiError::unavailable(
        "busy",
        "too many request bytes in flight; retry shortly",
        BUSY_RETRY_AFTER_SECS,
    )
}

/// `Retry-After` of a `busy` answer: bursts drain within a second or two.
const BUSY_RETRY_AFTER_SECS: u64 = 2;

/// The Zendesk delivery headers carried on the bus; the publisher adds the
/// message id and `traceparent`. The delivery's strings move into the map.
fn bus_headers(d: Delivery, received_at: OffsetDateTime) -> async_nats::HeaderMap {
    use async_nats::header::{HeaderName, HeaderValue};
    let mut m = async_nats::HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        m.insert(HeaderName::from_static(name), HeaderValue::from(value));
    };
    put(h::BUS_ACCOUNT_ID, d.account_id.to_string());
    put(h::BUS_WEBHOOK_ID, d.webhook_id);
    put(h::BUS_INVOCATION_ID, d.invocation_id);
    put(h::BUS_SIGNATURE_TIMESTAMP, d.timestamp);
    put(h::BUS_SIGNATURE, d.signature_header);
    if let Ok(ts) = received_at.format(&Rfc3339) {
        put(h::BUS_RECEIVED_AT, ts);
    }
    m
}
