//! Consumers on stream `ZENGATE`:
//! - durable `approval` on `zengate.approval.requested.>`: stores each
//!   request as a pending item (KV `create`, so a redelivered or republished
//!   request stays one item);
//! - durable `approval-outcomes` on `zengate.action.applied|failed.>`: moves
//!   released items to `applied` / `failed`.
//!
//! Replicas share the durables, so each message is handled by one of them.
//! Unusable messages are acknowledged as terminal and copied to
//! `zengate.dlq.<subject>`; storage errors are nak'ed with a delay.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{AckKind, Message};
use base64::Engine as _;
use futures::StreamExt;
use time::OffsetDateTime;
use tracing::Instrument;
use zengate_core::events::{
    ActionOutcome, ApprovalRequested, DeadLetter, V1, ZENGATE_STREAM, dlq_subject,
};
use zengate_runtime::Shutdown;

use crate::app::AppState;
use crate::decide;
use crate::item::Item;
use crate::links;

pub const REQUESTS_DURABLE: &str = "approval";
pub const OUTCOMES_DURABLE: &str = "approval-outcomes";

const CONCURRENCY: usize = 32;

#[derive(Debug)]
enum Handled {
    Ack,
    Retry(String),
    Dead(String),
}

fn consumer_config(durable: &str, filters: Vec<String>) -> pull::Config {
    pull::Config {
        durable_name: Some(durable.to_owned()),
        filter_subjects: filters,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_deliver: 20,
        max_ack_pending: 1000,
        ..Default::default()
    }
}

/// Runs the request consumer until shutdown.
pub async fn run_requests(app: Arc<AppState>, shutdown: Shutdown) {
    let config = consumer_config(
        REQUESTS_DURABLE,
        vec!["zengate.approval.requested.>".to_owned()],
    );
    consume(app, config, shutdown, |app, msg| async move {
        on_request(&app, &msg).await
    })
    .await;
}

/// Runs the outcome consumer until shutdown.
pub async fn run_outcomes(app: Arc<AppState>, shutdown: Shutdown) {
    let config = consumer_config(
        OUTCOMES_DURABLE,
        vec![
            "zengate.action.applied.>".to_owned(),
            "zengate.action.failed.>".to_owned(),
        ],
    );
    consume(app, config, shutdown, |app, msg| async move {
        on_outcome(&app, &msg).await
    })
    .await;
}

async fn consume<F, Fut>(app: Arc<AppState>, config: pull::Config, shutdown: Shutdown, handle: F)
where
    F: Fn(Arc<AppState>, Arc<Message>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Handled> + Send,
{
    let durable = config.durable_name.clone().unwrap_or_default();
    while !shutdown.is_triggered() {
        let opened = async {
            let stream = app
                .js
                .get_stream(ZENGATE_STREAM)
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .get_or_create_consumer(&durable, config.clone())
                .await
                .map_err(|e| e.to_string())?;
            consumer
                .stream()
                .max_messages_per_batch(100)
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match opened {
            Ok(messages) => {
                let stop = shutdown.clone();
                let result = messages
                    .take_until(async move { stop.wait().await })
                    .map(|m| m.map_err(|e| e.to_string()))
                    .for_each_concurrent(CONCURRENCY, |m| {
                        let app = app.clone();
                        let handle = handle.clone();
                        async move {
                            match m {
                                Ok(msg) => process(app, Arc::new(msg), handle).await,
                                Err(e) => tracing::warn!(error = %e, "consumer error"),
                            }
                        }
                    });
                result.await;
            }
            Err(e) => tracing::warn!(durable = %durable, error = %e, "cannot open consumer"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shutdown.wait() => {}
        }
    }
    tracing::info!(durable = %durable, "consumer stopped");
}

async fn process<F, Fut>(app: Arc<AppState>, msg: Arc<Message>, handle: F)
where
    F: Fn(Arc<AppState>, Arc<Message>) -> Fut,
    Fut: std::future::Future<Output = Handled>,
{
    let subject = msg.subject.to_string();
    let span = tracing::info_span!("consume", subject = %subject);
    async {
        let outcome = handle(app.clone(), msg.clone()).await;
        let ack = match outcome {
            Handled::Ack => msg.ack().await,
            Handled::Retry(reason) => {
                tracing::warn!(%reason, "will retry");
                msg.ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await
            }
            Handled::Dead(reason) => {
                tracing::warn!(%reason, "unusable message moved to the DLQ");
                dead_letter(&app, &msg, &reason).await;
                msg.ack_with(AckKind::Term).await
            }
        };
        if let Err(e) = ack {
            tracing::warn!(error = %e, "ack failed; the message will be redelivered");
        }
    }
    .instrument(span)
    .await;
}

async fn dead_letter(app: &AppState, msg: &Message, reason: &str) {
    let info = msg.info().ok();
    let headers = msg
        .headers
        .iter()
        .flat_map(|h| {
            h.iter().flat_map(|(k, vs)| {
                vs.iter()
                    .map(move |v| (k.to_string(), v.as_str().to_owned()))
            })
        })
        .collect();
    let letter = DeadLetter {
        v: V1,
        original_subject: msg.subject.to_string(),
        stream: ZENGATE_STREAM.to_owned(),
        stream_sequence: info.as_ref().map_or(0, |i| i.stream_sequence),
        deliveries: info
            .as_ref()
            .map_or(0, |i| i.delivered.max(0).unsigned_abs()),
        reason: reason.to_owned(),
        headers,
        body_base64: base64::engine::general_purpose::STANDARD.encode(&msg.payload),
        failed_at: OffsetDateTime::now_utc(),
    };
    let msg_id = format!(
        "dlq:{}:{}",
        ZENGATE_STREAM,
        info.as_ref().map_or(0, |i| i.stream_sequence)
    );
    if let Err(e) = app
        .publisher
        .json(dlq_subject(&msg.subject), &msg_id, &letter)
        .await
    {
        tracing::warn!(error = %e, "dead letter not published");
    }
}

async fn on_request(app: &AppState, msg: &Message) -> Handled {
    let request: ApprovalRequested = match serde_json::from_slice(&msg.payload) {
        Ok(r) => r,
        Err(e) => {
            app.metrics.intake("invalid");
            return Handled::Dead(format!("not an ApprovalRequested: {e}"));
        }
    };
    if request.v != V1 {
        app.metrics.intake("invalid");
        return Handled::Dead(format!("unsupported schema version {}", request.v));
    }
    if request.approval_id != request.source.approval_id() {
        app.metrics.intake("invalid");
        return Handled::Dead("approval_id does not match its source".into());
    }
    tracing::Span::current().record("subject", msg.subject.as_str());
    match hold(app, request).await {
        Ok(true) => {
            app.metrics.intake("stored");
            Handled::Ack
        }
        Ok(false) => {
            app.metrics.intake("duplicate");
            Handled::Ack
        }
        Err(e) => Handled::Retry(e.to_string()),
    }
}

/// Stores a request as a pending item; `Ok(false)` if it is already held.
pub async fn hold(
    app: &AppState,
    request: ApprovalRequested,
) -> Result<bool, crate::store::StoreError> {
    let now = OffsetDateTime::now_utc();
    let expires_at = now + app.timeout;
    let links = links::for_item(
        &app.public_url,
        &app.resume_secret,
        &request.approval_id,
        expires_at.unix_timestamp(),
    );
    let id = request.approval_id.clone();
    let item = Item::new(request, now, expires_at, links);
    let created = app.store.create(&item).await?.is_some();
    if created {
        tracing::info!(approval_id = %id, ticket_id = ?item.ticket_id(), "approval item held");
    } else {
        tracing::info!(approval_id = %id, "duplicate approval request; already held");
    }
    Ok(created)
}

async fn on_outcome(app: &AppState, msg: &Message) -> Handled {
    let outcome: ActionOutcome = match serde_json::from_slice(&msg.payload) {
        Ok(o) => o,
        Err(e) => return Handled::Dead(format!("not an ActionOutcome: {e}")),
    };
    let id = outcome.approval_id.clone();
    match decide::record_outcome(app, outcome).await {
        Ok(true) => {
            tracing::info!(approval_id = %id, "action outcome recorded");
            Handled::Ack
        }
        Ok(false) => {
            tracing::info!(approval_id = %id, "outcome for an unknown or unreleased item ignored");
            Handled::Ack
        }
        Err(e) => Handled::Retry(e.to_string()),
    }
}
