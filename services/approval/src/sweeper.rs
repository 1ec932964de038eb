//! Periodic work every `APPROVAL_SWEEP_INTERVAL`:
//! - expiry: pending items past `expires_at` become `expired` (or
//!   `escalated`). Every replica sweeps; the CAS makes each transition
//!   single-winner, and only the winner publishes the `decided` event;
//! - reconciliation: decided items whose `decided`/`released` events are not
//!   confirmed on the bus (a publish failed after the CAS) are published
//!   again with the same `Nats-Msg-Id`, so a repeat is dropped by JetStream;
//!   so are requested retries of failed writes whose re-release is not;
//! - retention: open items are kept alive in the bucket and settled ones past
//!   `APPROVAL_RETENTION` leave the index (see `retention`).

use std::sync::Arc;

use time::OffsetDateTime;
use zengate_runtime::Shutdown;

use crate::app::AppState;
use crate::config::OnTimeout;
use crate::{decide, retention, retry};

pub async fn run(app: Arc<AppState>, shutdown: Shutdown) {
    let mut tick = tokio::time::interval(app.config.sweep_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.wait() => break,
        }
        sweep_once(&app).await;
    }
}

/// One pass of expiry and reconciliation.
pub async fn sweep_once(app: &AppState) {
    let now = OffsetDateTime::now_utc();
    let escalate = app.config.on_timeout == OnTimeout::Escalate;
    for id in app.store.due(now) {
        if let Err(e) = decide::time_out(app, &id, escalate).await {
            tracing::warn!(approval_id = %id, error = %e, "expiry failed; next sweep retries");
        }
    }
    let before = now - app.config.reconcile_after;
    for id in app.store.unfinished(before) {
        match app.store.get(&id).await {
            Ok(Some((_, item))) => {
                let retried = item.retry.as_ref().is_some_and(|r| !r.published);
                let done = if retried {
                    retry::publish(app, &item).await
                } else {
                    decide::finish(app, &item).await
                };
                if done.is_some() {
                    app.metrics.republished.inc();
                    tracing::info!(approval_id = %id, "reconciled unpublished decision");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(approval_id = %id, error = %e, "reconcile read failed"),
        }
    }
    retention::keep_open_items(app).await;
    app.metrics.sweeps.inc();
}
