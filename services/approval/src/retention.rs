//! How long the `approvals` bucket keeps items (`APPROVAL_RETENTION`).
//!
//! The bucket's `max_age` is the retention: JetStream drops an item that was
//! not written for that long. Only settled items (rejected, expired, applied,
//! their decision on the bus) may go. Every open item (pending, escalated,
//! approved, released, failed) is rewritten unchanged by the sweeper once it
//! is half a retention old, so the worker's release gate, which reads the
//! item, and a retry of a failed write always find it. The in-memory index
//! forgets settled items once the bucket has dropped them.
//!
//! An existing bucket with another `max_age` (one created before retention
//! existed keeps everything) is updated at start; if that is refused the
//! service does not start and says why.
//!
//! The worker's idempotency records (`WORKER_RECORD_TTL`) protect the same
//! writes from the other side: an `applied` item and an `applied` record both
//! stop a second write, and a missing item makes the gate refuse a release.
//! Records that outlive the items they belong to are harmless but useless, so
//! a longer record TTL is reported at start.

use std::time::Duration;

use async_nats::jetstream;
use time::OffsetDateTime;
use zengate_runtime::bus::BusError;

use crate::app::AppState;
use crate::store::BUCKET;

/// 30 days, like the worker's records.
pub const DEFAULT: Duration = Duration::from_secs(30 * 86400);
/// Shorter retentions are refused in configuration (tests set it directly).
pub const MINIMUM: Duration = Duration::from_secs(3600);

/// Logs when the worker's records (same environment) outlive the items.
pub fn warn_if_records_outlive(retention: Duration, record_ttl: Duration) {
    if !retention.is_zero() && record_ttl > retention {
        tracing::warn!(
            retention_secs = retention.as_secs(),
            record_ttl_secs = record_ttl.as_secs(),
            "WORKER_RECORD_TTL is longer than APPROVAL_RETENTION: the worker keeps idempotency records for items the approvals bucket has already dropped"
        );
    }
}

fn bucket_error(message: String) -> BusError {
    BusError::Bucket {
        name: BUCKET.to_owned(),
        message,
    }
}

/// Makes the bucket's `max_age` equal `retention` (zero: keep everything).
pub async fn ensure(js: &jetstream::Context, retention: Duration) -> Result<(), BusError> {
    let stream_name = format!("KV_{BUCKET}");
    let stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|e| bucket_error(e.to_string()))?;
    let info = stream
        .get_info()
        .await
        .map_err(|e| bucket_error(e.to_string()))?;
    if info.config.max_age == retention {
        return Ok(());
    }
    let mut config = info.config.clone();
    config.max_age = retention;
    // JetStream requires the duplicate window to fit in the age limit.
    if !retention.is_zero() && config.duplicate_window > retention {
        config.duplicate_window = retention;
    }
    match js.update_stream(&config).await {
        Ok(_) => {
            tracing::info!(
                from_secs = info.config.max_age.as_secs(),
                to_secs = retention.as_secs(),
                "approvals bucket retention updated"
            );
            Ok(())
        }
        Err(e) => Err(bucket_error(format!(
            "keeps items for {:?} but APPROVAL_RETENTION is {retention:?}, and updating it failed ({e}); \
             allow $JS.API.STREAM.UPDATE.{stream_name} for this service, edit the bucket's max_age, \
             or set APPROVAL_RETENTION to match",
            info.config.max_age
        ))),
    }
}

/// One pass: rewrite open items half a retention old, forget settled items
/// the bucket has dropped.
pub async fn keep_open_items(app: &AppState) {
    if app.config.retention.is_zero() {
        return;
    }
    let now = OffsetDateTime::now_utc();
    let half = time::Duration::try_from(app.config.retention / 2).unwrap_or(time::Duration::MAX);
    let (Some(keep_before), Some(drop_before)) = (
        now.checked_sub(half),
        now.checked_sub(
            time::Duration::try_from(app.config.retention).unwrap_or(time::Duration::MAX),
        ),
    ) else {
        return;
    };
    for id in app.store.open_written_before(keep_before) {
        let kept = app
            .store
            .modify(&id, |cur| (!cur.is_settled()).then(|| cur.clone()))
            .await;
        match kept {
            Ok(Some(_)) => {
                tracing::debug!(approval_id = %id, "open item rewritten to stay within the retention")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(approval_id = %id, error = %e, "cannot keep an open item; next sweep retries")
            }
        }
    }
    let forgotten = app.store.forget_settled_before(drop_before);
    if forgotten > 0 {
        tracing::debug!(forgotten, "settled items past the retention left the index");
    }
}
