//! Retrying a failed write (`POST /v1/approvals/{id}/retry`).
//!
//! A `failed` item was approved, sealed and released, and the worker gave up
//! on its write. A retry publishes the same sealed release again under a new
//! message id (`<id>:released:retry<n>`, so JetStream's duplicate window does
//! not swallow it) and leaves the item `failed` while it is in flight: the
//! worker's release gate answers a `failed` item with "look on the ticket
//! for the write before writing again", so a write that landed after all is
//! never repeated. The worker's outcome then moves the item to `applied` (or
//! records the new failure reason).
//!
//! The retry is recorded on the item by compare-and-set before anything is
//! published; a publish that fails is finished by the reconciler (see
//! `sweeper`) with the same message id.

use time::OffsetDateTime;
use tracing::Instrument;
use zengate_core::events::approval_released_subject;
use zengate_core::release;

use crate::app::AppState;
use crate::decide::release_event;
use crate::item::{HistoryEntry, Item, RetryRecord, State};
use crate::store::BucketError;

/// A retry whose outcome has not arrived for this long may be requested again
/// (the worker's own claim still keeps the write to one at a time).
pub const IN_FLIGHT: time::Duration = time::Duration::minutes(2);

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("no approval item with this id")]
    NotFound,
    #[error("only a failed write can be retried; the item is {0}")]
    NotFailed(&'static str),
    #[error("a retry of this write is already in flight")]
    InFlight,
    #[error("the item carries no valid release seal")]
    Unsealed,
    #[error("the item changed meanwhile; reload it")]
    Changed,
    #[error(transparent)]
    Store(#[from] BucketError),
}

/// Records a retry requested by `by` and re-releases the item.
pub async fn retry(app: &AppState, id: &str, by: String) -> Result<Item, RetryError> {
    let span =
        tracing::info_span!("retry", approval_id = %id, %by, ticket_id = tracing::field::Empty);
    async {
        let (rev, item) = app.store.get(id).await?.ok_or(RetryError::NotFound)?;
        if let Some(t) = item.ticket_id() {
            tracing::Span::current().record("ticket_id", t);
        }
        if item.state != State::Failed {
            return Err(RetryError::NotFailed(item.state.as_str()));
        }
        let now = OffsetDateTime::now_utc();
        if item
            .retry
            .as_ref()
            .is_some_and(|r| !r.settled && now - r.at < IN_FLIGHT)
        {
            return Err(RetryError::InFlight);
        }
        if sealed_release(app, &item).is_none() {
            return Err(RetryError::Unsealed);
        }
        let mut next = item.clone();
        next.retry = Some(RetryRecord {
            attempt: item
                .retry
                .as_ref()
                .map_or(1, |r| r.attempt.saturating_add(1)),
            by: by.clone(),
            at: now,
            published: false,
            settled: false,
        });
        next.history.push(HistoryEntry {
            at: now,
            by,
            what: "retry requested".into(),
            reason: None,
            edits: None,
        });
        if app.store.cas(rev, &next).await?.is_err() {
            return Err(RetryError::Changed);
        }
        app.metrics.decision("retried");
        tracing::info!("retry of a failed write recorded");
        Ok(publish(app, &next).await.unwrap_or(next))
    }
    .instrument(span)
    .await
}

/// The release of a failed item and its seal, when the seal verifies.
fn sealed_release(
    app: &AppState,
    item: &Item,
) -> Option<(zengate_core::events::ApprovalReleased, String)> {
    let event = release_event(item)?;
    let seal = item.release_seal.clone()?;
    match release::verify_signature(&app.config.release_keys, &event, Some(&seal)) {
        Ok(()) => Some((event, seal)),
        Err(e) => {
            app.metrics.unsealed.inc();
            tracing::error!(approval_id = %item.id, error = %e, "failed item without a valid seal; not releasing it again");
            None
        }
    }
}

/// Publishes a recorded, unpublished retry and marks it published. Safe to
/// call repeatedly (reconciler): the message id is the same for one attempt.
pub async fn publish(app: &AppState, item: &Item) -> Option<Item> {
    let attempt = item.retry.as_ref().filter(|r| !r.published)?.attempt;
    if item.state != State::Failed {
        return None;
    }
    let (event, seal) = sealed_release(app, item)?;
    let subject = approval_released_subject(&item.request.account_id, item.ticket_id());
    let msg_id = format!("{}:released:retry{attempt}", item.id);
    if let Err(e) = app
        .publisher
        .json_with_headers(
            subject,
            &msg_id,
            &event,
            &[(release::SIGNATURE_HEADER, &seal)],
        )
        .await
    {
        tracing::warn!(approval_id = %item.id, error = %e, "retry not published; the reconciler retries");
        return None;
    }
    let updated = app
        .store
        .modify(&item.id, |cur| {
            let mut next = cur.clone();
            let r = next.retry.as_mut().filter(|r| r.attempt == attempt)?;
            if r.published {
                return None;
            }
            r.published = true;
            Some(next)
        })
        .await;
    match updated {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(approval_id = %item.id, error = %e, "could not record the retry's publication");
            None
        }
    }
}
