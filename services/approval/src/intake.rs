//! Consumers on stream `ZENGATE`:
//! - durable `approval` on `zengate.approval.requested.>`: stores each
//!   request as a pending item (KV `create`, so a redelivered or republished
//!   request stays one item);
//! - durable `approval-outcomes` on `zengate.action.applied|failed.>`: moves
//!   released items to `applied` / `failed`.
//!
//! Replicas share the durables, so each message is handled by one of them.
//! Unusable messages are copied to `zengate.dlq.<subject>` and acknowledged;
//! storage errors are nak'ed with a delay (and dead-lettered on the last
//! delivery).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use time::OffsetDateTime;
use zengate_core::events::{ActionOutcome, ApprovalRequested, V1, ZENGATE_STREAM};
use zengate_runtime::Shutdown;
use zengate_runtime::bus::{self, Backoff, Pull, Settler, Verdict};

use crate::app::AppState;
use crate::decide;
use crate::item::Item;
use crate::links;

pub const REQUESTS_DURABLE: &str = "approval";
pub const OUTCOMES_DURABLE: &str = "approval-outcomes";

/// Deliveries before a message is dead-lettered (the consumer's own limit).
const MAX_DELIVER: u32 = 20;

fn consumer_config(durable: &str, filters: Vec<String>) -> pull::Config {
    pull::Config {
        durable_name: Some(durable.to_owned()),
        filter_subjects: filters,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_deliver: i64::from(MAX_DELIVER),
        max_ack_pending: 1000,
        ..Default::default()
    }
}

/// Messages in flight per consumer and replica.
const PULL: Pull = Pull {
    batch: 100,
    concurrency: 32,
    fetch_wait: Duration::from_secs(5),
    lease: None,
};

/// Runs the request consumer until shutdown.
pub async fn run_requests(app: Arc<AppState>, shutdown: Shutdown) {
    let config = consumer_config(
        REQUESTS_DURABLE,
        vec!["zengate.approval.requested.>".to_owned()],
    );
    run(app, config, shutdown, |app, msg| async move {
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
    run(app, config, shutdown, |app, msg| async move {
        on_outcome(&app, &msg).await
    })
    .await;
}

/// Opens the durable (retrying until NATS answers), then consumes it.
async fn run<F, Fut>(app: Arc<AppState>, config: pull::Config, shutdown: Shutdown, handle: F)
where
    F: Fn(Arc<AppState>, Arc<Message>) -> Fut,
    Fut: std::future::Future<Output = Verdict>,
{
    let durable = config.durable_name.clone().unwrap_or_default();
    let consumer = loop {
        let opened = async {
            let stream = app
                .js
                .get_stream(ZENGATE_STREAM)
                .await
                .map_err(|e| e.to_string())?;
            stream
                .get_or_create_consumer::<pull::Config>(&durable, config.clone())
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match opened {
            Ok(c) => break c,
            Err(e) => tracing::warn!(durable = %durable, error = %e, "cannot open consumer"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = shutdown.wait() => return,
        }
    };
    let settler = Settler::new(
        app.publisher.clone(),
        MAX_DELIVER,
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(1),
        },
    );
    bus::consume(&consumer, PULL, &settler, &shutdown, |msg| {
        handle(app.clone(), msg)
    })
    .await;
    tracing::info!(durable = %durable, "consumer stopped");
}

async fn on_request(app: &AppState, msg: &Message) -> Verdict {
    let request: ApprovalRequested = match serde_json::from_slice(&msg.payload) {
        Ok(r) => r,
        Err(e) => {
            app.metrics.intake("invalid");
            return Verdict::GiveUp(format!("not an ApprovalRequested: {e}"));
        }
    };
    if request.v != V1 {
        app.metrics.intake("invalid");
        return Verdict::GiveUp(format!("unsupported schema version {}", request.v));
    }
    if request.approval_id != request.source.approval_id() {
        app.metrics.intake("invalid");
        return Verdict::GiveUp("approval_id does not match its source".into());
    }
    tracing::Span::current().record("subject", msg.subject.as_str());
    match hold(app, request).await {
        Ok(true) => {
            app.metrics.intake("stored");
            Verdict::Done("stored")
        }
        Ok(false) => {
            app.metrics.intake("duplicate");
            Verdict::Done("duplicate")
        }
        Err(e) => Verdict::Retry(e.to_string(), None),
    }
}

/// Stores a request as a pending item; `Ok(false)` if it is already held.
pub async fn hold(
    app: &AppState,
    request: ApprovalRequested,
) -> Result<bool, crate::store::BucketError> {
    let now = OffsetDateTime::now_utc();
    let expires_at = now + app.config.timeout;
    let links = links::for_item(
        &app.config.public_url,
        &app.config.resume_secret,
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

async fn on_outcome(app: &AppState, msg: &Message) -> Verdict {
    let outcome: ActionOutcome = match serde_json::from_slice(&msg.payload) {
        Ok(o) => o,
        Err(e) => return Verdict::GiveUp(format!("not an ActionOutcome: {e}")),
    };
    let id = outcome.approval_id.clone();
    match decide::record_outcome(app, outcome).await {
        Ok(true) => {
            tracing::info!(approval_id = %id, "action outcome recorded");
            Verdict::Done("recorded")
        }
        Ok(false) => {
            tracing::info!(approval_id = %id, "outcome for an unknown or unreleased item ignored");
            Verdict::Done("ignored")
        }
        Err(e) => Verdict::Retry(e.to_string(), None),
    }
}
