//! Decisions: approve, reject, expire/escalate. Each is one compare-and-set
//! on the item's KV revision, so among racing approvers, replicas or resume
//! links exactly one wins and the rest see `409`.
//!
//! Events are published only after the CAS succeeded: `decided` (every
//! decision) and, on approval, `released` with `Nats-Msg-Id =
//! <approval_id>:released`. The item then records that its events are on the
//! bus (`approved` → `released`). If a publish fails, the item stays
//! `approved` / unpublished and the reconciler (see `sweeper`) publishes
//! again; the stable message ids make a repeat within JetStream's duplicate
//! window a no-op, so the release happens exactly once.

use time::OffsetDateTime;
use tracing::Instrument;
use zengate_core::events::{
    self, ApprovalDecided, ApprovalReleased, Decision, V1, approval_decided_subject,
    approval_released_subject,
};
use zengate_core::release;

use crate::app::AppState;
use crate::item::{DecisionRecord, HistoryEntry, Item, State, action_body, line_diff, with_body};
use crate::store::BucketError;

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no approval item with this id")]
    NotFound,
    #[error("the item is already {0}")]
    Conflict(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] BucketError),
}

/// A human decision.
#[derive(Debug, Clone)]
pub struct HumanDecision {
    pub approve: bool,
    pub by: String,
    pub reason: Option<String>,
    /// Replacement body (edit-then-approve).
    pub body: Option<String>,
}

fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Approved => "approved",
        Decision::Rejected => "rejected",
        Decision::Expired => "expired",
        Decision::Escalated => "escalated",
    }
}

/// Applies a human decision. Returns the item as stored afterwards.
pub async fn decide(app: &AppState, id: &str, d: HumanDecision) -> Result<Item, DecideError> {
    let span = tracing::info_span!("decide", approval_id = %id, by = %d.by, approve = d.approve, ticket_id = tracing::field::Empty);
    async {
        let (rev, item) = app.store.get(id).await?.ok_or(DecideError::NotFound)?;
        if let Some(t) = item.ticket_id() {
            tracing::Span::current().record("ticket_id", t);
        }
        let now = OffsetDateTime::now_utc();
        if !item.state.decidable() {
            app.metrics.conflicts.inc();
            return Err(DecideError::Conflict(item.state.as_str()));
        }
        if item.state == State::Pending && item.expires_at <= now {
            app.metrics.conflicts.inc();
            return Err(DecideError::Conflict("expired"));
        }
        let mut next = item.clone();
        let (decision, edits) = if d.approve {
            let original = &item.request.action;
            let (action, edits) = match d.body.as_deref() {
                Some(new_body) => {
                    if new_body.trim().is_empty() {
                        return Err(DecideError::Invalid("the edited body is empty".into()));
                    }
                    let edited = with_body(original, new_body).ok_or_else(|| {
                        DecideError::Invalid(format!(
                            "a {} action has no body to edit",
                            original.kind()
                        ))
                    })?;
                    let old = action_body(original).unwrap_or_default();
                    let edits = (old != new_body).then(|| line_diff(old, new_body));
                    (edited, edits)
                }
                None => (original.clone(), None),
            };
            next.state = State::Approved;
            next.final_action = Some(action);
            (Decision::Approved, edits)
        } else {
            next.state = State::Rejected;
            (Decision::Rejected, None)
        };
        let record = DecisionRecord {
            decision,
            by: d.by.clone(),
            at: now,
            reason: d.reason.clone(),
            edits: edits.clone(),
            published: false,
        };
        next.history.push(HistoryEntry {
            at: now,
            by: d.by.clone(),
            what: decision_name(decision).to_owned(),
            reason: d.reason,
            edits,
        });
        next.decision = Some(record);
        // Sealed inside the same compare-and-set as the decision itself.
        next.release_seal = release_event(&next)
            .map(|event| release::sign(app.config.release_keys.signer(), &event));
        if app.store.cas(rev, &next).await?.is_err() {
            app.metrics.conflicts.inc();
            return Err(DecideError::Conflict("decided"));
        }
        app.metrics.decision(decision_name(decision));
        tracing::info!(decision = decision_name(decision), "decision recorded");
        Ok(finish(app, &next).await.unwrap_or(next))
    }
    .instrument(span)
    .await
}

/// Times an item out (expire or escalate). `Ok(true)` when this caller won.
pub async fn time_out(app: &AppState, id: &str, escalate: bool) -> Result<bool, BucketError> {
    let Some((rev, item)) = app.store.get(id).await? else {
        return Ok(false);
    };
    let now = OffsetDateTime::now_utc();
    if item.state != State::Pending || item.expires_at > now {
        return Ok(false);
    }
    let (state, decision) = if escalate {
        (State::Escalated, Decision::Escalated)
    } else {
        (State::Expired, Decision::Expired)
    };
    let mut next = item;
    next.state = state;
    next.history.push(HistoryEntry {
        at: now,
        by: "system".into(),
        what: decision_name(decision).to_owned(),
        reason: Some("no decision before the approval timeout".into()),
        edits: None,
    });
    next.decision = Some(DecisionRecord {
        decision,
        by: "system".into(),
        at: now,
        reason: Some("timeout".into()),
        edits: None,
        published: false,
    });
    if app.store.cas(rev, &next).await?.is_err() {
        return Ok(false);
    }
    app.metrics.expiries.inc();
    app.metrics.decision(decision_name(decision));
    tracing::info!(approval_id = %id, decision = decision_name(decision), "approval timed out");
    let _ = finish(app, &next).await;
    Ok(true)
}

/// The release an approved item stands for (`None` unless approved).
pub(crate) fn release_event(item: &Item) -> Option<ApprovalReleased> {
    let decision = item.decision.as_ref()?;
    if decision.decision != Decision::Approved {
        return None;
    }
    Some(ApprovalReleased {
        v: V1,
        approval_id: item.id.clone(),
        account_id: item.request.account_id.clone(),
        action: item.final_action.clone()?,
        approved_by: decision.by.clone(),
        approved_at: decision.at,
    })
}

/// Publishes the events of a decided item and records that they are on the
/// bus. Safe to call repeatedly (reconciler).
pub async fn finish(app: &AppState, item: &Item) -> Option<Item> {
    let decision = item.decision.as_ref()?;
    // An approval is published only with the seal made when a human approved
    // it: an item that reached the bucket any other way has none that
    // verifies, and nothing about it goes on the bus.
    if let Some(event) = release_event(item) {
        let seal = item.release_seal.as_deref();
        if let Err(e) = release::verify_signature(&app.config.release_keys, &event, seal) {
            app.metrics.unsealed.inc();
            tracing::error!(approval_id = %item.id, error = %e, "approved item without a valid seal; not publishing it");
            return None;
        }
    }
    let account = item.request.account_id.as_str();
    let ticket = item.ticket_id();
    let decided_ok = if decision.published {
        true
    } else {
        let event = ApprovalDecided {
            v: V1,
            approval_id: item.id.clone(),
            account_id: account.to_owned(),
            ticket_id: ticket.map(str::to_owned),
            decision: decision.decision,
            decided_by: decision.by.clone(),
            decided_at: decision.at,
            reason: decision.reason.clone(),
            edits: decision.edits.clone(),
        };
        let msg_id = format!("{}:decided:{}", item.id, decision_name(decision.decision));
        match app
            .publisher
            .json(approval_decided_subject(account, ticket), &msg_id, &event)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(approval_id = %item.id, error = %e, "decided event not published; the reconciler retries");
                false
            }
        }
    };
    let released_ok = if item.state == State::Approved {
        let event = release_event(item)?;
        let signature = item.release_seal.clone().unwrap_or_default();
        match app
            .publisher
            .json_with_headers(
                approval_released_subject(account, ticket),
                &format!("{}:released", item.id),
                &event,
                &[(release::SIGNATURE_HEADER, &signature)],
            )
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(approval_id = %item.id, error = %e, "released event not published; the reconciler retries");
                false
            }
        }
    } else {
        false
    };
    if !decided_ok && !released_ok {
        return None;
    }
    let decided_at = decision.at;
    let updated = app
        .store
        .modify(&item.id, |cur| {
            let mut next = cur.clone();
            let mut changed = false;
            if let Some(d) = next.decision.as_mut()
                && decided_ok
                && !d.published
                && d.at == decided_at
            {
                d.published = true;
                changed = true;
            }
            if released_ok && cur.state == State::Approved {
                next.state = State::Released;
                next.history.push(HistoryEntry {
                    at: OffsetDateTime::now_utc(),
                    by: "system".into(),
                    what: "released".into(),
                    reason: None,
                    edits: None,
                });
                changed = true;
            }
            changed.then_some(next)
        })
        .await;
    match updated {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(approval_id = %item.id, error = %e, "could not record publication");
            None
        }
    }
}

/// Records a worker's outcome (`zengate.action.applied|failed.>`).
pub async fn record_outcome(
    app: &AppState,
    outcome: events::ActionOutcome,
) -> Result<bool, BucketError> {
    let state = if outcome.applied {
        State::Applied
    } else {
        State::Failed
    };
    let updated = app
        .store
        .modify(&outcome.approval_id, |cur| {
            // An outcome speaks only for an item of its own account that was
            // released (or a failed one that a retry then applied, or whose
            // requested retry failed again).
            let retrying = cur
                .retry
                .as_ref()
                .is_some_and(|r| !r.settled && outcome.at >= r.at);
            let allowed = cur.request.account_id == outcome.account_id
                && (matches!(cur.state, State::Approved | State::Released)
                    || (matches!(cur.state, State::Failed) && (outcome.applied || retrying)));
            if !allowed {
                return None;
            }
            let mut next = cur.clone();
            if let Some(r) = next.retry.as_mut() {
                r.settled = true;
            }
            next.state = state;
            next.history.push(HistoryEntry {
                at: outcome.at,
                by: "agent-worker".into(),
                what: state.as_str().to_owned(),
                reason: outcome.error.clone(),
                edits: None,
            });
            next.outcome = Some(outcome.clone());
            Some(next)
        })
        .await?;
    Ok(updated.is_some())
}
