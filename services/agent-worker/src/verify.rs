//! Release verification: the executor's gate before any Zendesk write. A
//! release must carry a valid signature from the approval service and match
//! an approved item in the `approvals` bucket (`zengate_core::release`).
//! Anything else is refused: dead-lettered with the reason, counted in
//! `zengate_worker_releases_refused_total{reason}` and logged at WARN.

use async_nats::HeaderMap;
use async_nats::jetstream::kv;
use zengate_core::events::ApprovalReleased;
use zengate_core::release::{self, ApprovalRecord, Permit, Refusal};

use crate::app::WorkerState;

/// The gate's answer when it could not decide.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("release refused: {0}")]
    Refused(#[from] Refusal),
    /// The store could not be read: try again later.
    #[error("cannot read the approval item: {0}")]
    Unavailable(String),
}

/// Checks signature, subject and stored item, in that order (the cheap,
/// local checks first, so a forged flood never reaches the store).
pub async fn check(
    state: &WorkerState,
    subject: &str,
    headers: Option<&HeaderMap>,
    released: &ApprovalReleased,
) -> Result<Permit, VerifyError> {
    let Some(keys) = state.config.release_keys.as_ref() else {
        // Configuration makes this unreachable for an executor; refusing is
        // the safe answer if it ever happens.
        return Err(Refusal::Unsigned.into());
    };
    let signature = headers
        .and_then(|h| h.get(release::SIGNATURE_HEADER))
        .map(|v| v.as_str());
    release::verify_signature(keys, released, signature)?;
    release::check_subject(subject, released)?;
    let record = load(state, &released.approval_id).await?;
    Ok(release::check_record(record.as_ref(), released)?)
}

/// Reads the item; a missing bucket or key is `None` (no such approval).
async fn load(state: &WorkerState, id: &str) -> Result<Option<ApprovalRecord>, VerifyError> {
    let store = state
        .approvals
        .get_or_try_init(|| async {
            state
                .js
                .get_key_value(release::APPROVALS_BUCKET)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
    let store: &kv::Store = match store {
        Ok(s) => s,
        // Without the bucket there is no approval at all; the refusal is
        // retried (it may be created any moment) and then dead-lettered.
        Err(e) => {
            tracing::debug!(error = %e, "approvals bucket not available");
            return Ok(None);
        }
    };
    let entry = store
        .get(id)
        .await
        .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
    match entry {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| VerifyError::Unavailable(format!("unreadable approval item: {e}"))),
    }
}
