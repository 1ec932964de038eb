//! Signed webhook deliveries, sent in the background like Zendesk's own:
//! the API answer never waits for them.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use zengate_core::headers;
use zengate_core::signature::sign;

use crate::Shared;
use crate::config::WebhookTarget;
use crate::store::{Change, SimTicket, WebhookDelivery, now_rfc3339};

/// Zendesk waits this long for a receiver.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(12);
/// Zendesk retries 409/429/503 up to three times and timeouts or connection
/// failures up to five times.
const MAX_REFUSED_RETRIES: u32 = 3;
const MAX_NETWORK_RETRIES: u32 = 5;

fn upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

/// The ticket snapshot in `detail`: ids as strings, enums uppercase, as in
/// Zendesk's event payloads.
fn detail(t: &SimTicket, actor_id: u64) -> Value {
    json!({
        "actor_id": actor_id.to_string(),
        "assignee_id": null,
        "brand_id": "360000000001",
        "created_at": t.created_at,
        "custom_status": "1",
        "description": t.description,
        "external_id": null,
        "form_id": "360000000002",
        "group_id": null,
        "id": t.id.to_string(),
        "is_public": true,
        "organization_id": null,
        "priority": t.priority.as_deref().map(upper),
        "requester_id": t.requester_id.to_string(),
        "status": upper(&t.status),
        "subject": t.subject,
        "submitter_id": t.submitter_id.to_string(),
        "tags": t.tags,
        "type": null,
        "updated_at": t.updated_at,
        "via": {"channel": if t.channel == "api" { "web_service" } else { t.channel.as_str() }},
    })
}

/// The common event envelope for a change.
pub(crate) fn envelope(account_id: u64, change: &Change) -> (String, String, u64, Value) {
    let id = uuid::Uuid::new_v4().to_string();
    let (kind, ticket, detail_v, event) = match change {
        Change::TicketCreated(t) => ("ticket.created", t.id, detail(t, t.submitter_id), json!({})),
        Change::CommentAdded {
            ticket,
            comment,
            author,
        } => (
            "ticket.comment_added",
            ticket.id,
            detail(ticket, author.id),
            json!({"comment": {
                "id": comment.id.to_string(),
                "body": comment.body,
                "is_public": comment.public,
                "author": {
                    "id": author.id.to_string(),
                    "is_staff": author.is_staff(),
                    "name": author.name,
                },
            }}),
        ),
    };
    let event_type = format!("zen:event-type:{kind}");
    let body = json!({
        "account_id": account_id,
        "detail": detail_v,
        "event": event,
        "id": id,
        "subject": format!("zen:ticket:{ticket}"),
        "time": now_rfc3339(),
        "type": event_type,
        "zendesk_event_version": "2022-11-06",
    });
    (id, event_type, ticket, body)
}

/// Delivers queued changes one after another until the queue closes or
/// the simulator stops.
pub(crate) async fn run(
    shared: Shared,
    mut rx: mpsc::UnboundedReceiver<Change>,
    stop: CancellationToken,
) {
    let http = match reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Zendesk Webhook")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client");
            return;
        }
    };
    loop {
        let change = tokio::select! {
            _ = stop.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        let Some(target) = shared.webhook() else {
            continue;
        };
        let (event_id, event_type, ticket_id, body) = envelope(shared.config.account_id, &change);
        let bytes = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let index = shared.with_store(|s| {
            s.deliveries.push(WebhookDelivery {
                event_id: event_id.clone(),
                event_type: event_type.clone(),
                ticket_id,
                attempts: 0,
                status: None,
                delivered: false,
            });
            s.deliveries.len() - 1
        });
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = deliver(&http, &shared, &target, &bytes, index) => {}
        }
    }
}

async fn deliver(
    http: &reqwest::Client,
    shared: &Shared,
    target: &WebhookTarget,
    body: &[u8],
    index: usize,
) {
    let mut refused = 0;
    let mut network = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let timestamp = now_rfc3339();
        let signature = sign(&target.secret, &timestamp, body);
        let result = http
            .post(&target.url)
            .header("content-type", "application/json")
            .header(
                headers::ZENDESK_ACCOUNT_ID,
                shared.config.account_id.to_string(),
            )
            .header(headers::ZENDESK_WEBHOOK_ID, &target.webhook_id)
            .header(headers::ZENDESK_INVOCATION_ID, invocation_id())
            .header(headers::ZENDESK_SIGNATURE_TIMESTAMP, &timestamp)
            .header(headers::ZENDESK_SIGNATURE, signature)
            .body(body.to_vec())
            .send()
            .await;
        let (status, wait) = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let wait = match status {
                    200..=299 => None,
                    409 if refused < MAX_REFUSED_RETRIES => {
                        refused += 1;
                        Some(Duration::from_millis(200))
                    }
                    429 | 503 if refused < MAX_REFUSED_RETRIES => match retry_after {
                        Some(s) if s < 60 => {
                            refused += 1;
                            Some(Duration::from_secs(s))
                        }
                        _ => None,
                    },
                    _ => None,
                };
                (Some(status), wait)
            }
            Err(e) => {
                tracing::debug!(error = %e, "webhook delivery failed");
                let wait = (network < MAX_NETWORK_RETRIES).then(|| {
                    network += 1;
                    Duration::from_millis(100u64 << network.min(5))
                });
                (None, wait)
            }
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        shared.with_store(|s| {
            if let Some(d) = s.deliveries.get_mut(index) {
                d.attempts = attempts;
                d.status = status;
                d.delivered = delivered;
            }
        });
        match wait {
            Some(w) if !delivered => tokio::time::sleep(w).await,
            _ => return,
        }
    }
}

fn invocation_id() -> String {
    // Zendesk's invocation ids are opaque decimal strings; one per attempt.
    let n = fastrand_u64();
    format!("{}", n % 10_000_000_000_000 + 1)
}

fn fastrand_u64() -> u64 {
    let u = uuid::Uuid::new_v4();
    let b = u.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}
