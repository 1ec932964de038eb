//! The executing side: performs each released approval's Zendesk write
//! exactly once, whatever redeliveries or crashes happen, then publishes the
//! outcome. Only releases that pass `verify` (signed by the approval service
//! and matching an approved item) get that far.
//!
//! - `CreateTicket` carries `Idempotency-Key = approval_id`: Zendesk itself
//!   turns a repeated create into a replay of the first response.
//! - Comment and field updates are PUTs with no idempotency key. A Redis
//!   record per approval is claimed atomically before the PUT
//!   (`executing:<time>`, renewed while the attempt runs, going stale one
//!   execution lease — a Zendesk request timeout plus an ack wait — after
//!   its holder stopped) and settled after it
//!   (`applied` / `failed`). A redelivery that finds `applied` or `failed`
//!   only re-publishes the outcome; one that finds a live claim waits for it;
//!   one that finds `interrupted` (an attempt that failed after claiming) or
//!   a stale claim (its holder crashed) takes the claim over and first looks
//!   for the exact body written by the API user among the ticket's recent
//!   comments before writing again.

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{Message, consumer::PullConsumer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{Instrument, field};
use zendesk_client::{ClientError, CommentInput, NewTicket, TicketUpdate};
use zengate_core::events::{
    Action, ActionOutcome, ApprovalReleased, FieldChanges, V1, action_outcome_subject,
};
use zengate_core::ids::parse_canonical_id;
use zengate_core::release::Permit;
use zengate_runtime::Shutdown;
use zengate_runtime::bus::{self, PublishError, Settled, Verdict};

use crate::app::WorkerState;
use crate::handler::Failure;
use crate::records::ExecState;
use crate::verify::{self, VerifyError};

/// How far before the approval a matching comment still counts as written
/// for it (clock skew between the approval service and Zendesk).
const COMMENT_CLOCK_SKEW_SECS: i64 = 120;

/// Runs one executor pull loop until shutdown.
pub async fn run(state: Arc<WorkerState>, consumer: PullConsumer, shutdown: Shutdown) {
    let metrics = state.clone();
    let settler = state
        .settler()
        .on_settled(Arc::new(move |_, settled| match settled {
            Settled::DeadLettered => {
                metrics.metrics.dead_letters.inc();
            }
            // The claim stays until its lease ends; the next attempt then
            // looks for this attempt's write before writing.
            Settled::LeaseLost => metrics.metrics.execution("lease_lost"),
            _ => {}
        }));
    let pull = state.pull(1);
    bus::consume(&consumer, pull, &settler, &shutdown, |msg| {
        let state = state.clone();
        async move { on_message(&state, &msg).await }
    })
    .await;
}

async fn on_message(state: &WorkerState, msg: &Message) -> Verdict {
    let started = Instant::now();
    let span = tracing::info_span!(
        "worker.execute",
        subject = %msg.subject,
        approval_id = field::Empty,
        ticket_id = field::Empty,
        action = field::Empty,
    );
    async {
        let verdict = decide(state, msg).await;
        state
            .metrics
            .execute_seconds
            .observe(started.elapsed().as_secs_f64());
        verdict
    }
    .instrument(span)
    .await
}

/// What to do with one release: the gate first, then the write.
async fn decide(state: &WorkerState, msg: &Message) -> Verdict {
    let subject = msg.subject.as_str();
    let (_, delivered) = bus::position(msg);
    let max = u64::from(state.config.max_deliver);
    let released: ApprovalReleased = match serde_json::from_slice(&msg.payload) {
        Ok(r) => r,
        Err(e) => {
            state.metrics.execution("dead_lettered");
            return Verdict::GiveUp(format!("unreadable release: {e}"));
        }
    };
    let span = tracing::Span::current();
    span.record("approval_id", released.approval_id.as_str());
    span.record("action", released.action.kind());
    if let Some(t) = released.action.ticket_id() {
        span.record("ticket_id", t);
    }
    // The gate comes first: nothing from an unverified release, not even
    // a failure outcome, may reach Zendesk or the approval item.
    let permit = verify::check(state, subject, msg.headers.as_ref(), &released).await;
    let recheck = match permit {
        Ok(Permit::Execute) => false,
        Ok(Permit::Retry) => true,
        Ok(Permit::AlreadyApplied) => {
            tracing::info!("the approval item records this write as applied; not writing again");
            state.metrics.execution("replayed");
            return Verdict::Done("replayed");
        }
        Err(e) => return refuse(state, delivered, e),
    };
    if released.account_id != state.config.account_id.to_string() {
        // Another account's release on the shared executor consumer: left
        // for that account's workers, never recorded or answered here.
        let reason = format!(
            "release for account {}, this worker serves {}",
            released.account_id, state.config.account_id
        );
        state.metrics.execution("foreign_account");
        return Verdict::Retry(reason, None);
    }
    if delivered > max {
        let reason = "the executor stopped during the last attempt";
        return give_up(state, &released, delivered, reason).await;
    }
    match execute(state, &released, recheck).await {
        Ok(label) => {
            state.metrics.execution(label);
            Verdict::Done(label)
        }
        Err(f @ (Failure::Retryable(_) | Failure::RetryAfter(..))) if delivered < max => {
            state.metrics.execution("retried");
            f.into()
        }
        Err(
            Failure::Retryable(reason)
            | Failure::RetryAfter(reason, _)
            | Failure::Permanent(reason),
        ) => give_up(state, &released, delivered, &reason).await,
    }
}

/// A release the gate did not let through: retried while the store may just
/// be behind (or unreachable), otherwise dead-lettered with the reason.
/// Never publishes an outcome: the release may name someone else's item.
fn refuse(state: &WorkerState, delivered: u64, error: VerifyError) -> Verdict {
    let last = delivered >= u64::from(state.config.max_deliver);
    let refusal = match error {
        VerifyError::Unavailable(reason) => {
            state.metrics.execution("retried");
            return Verdict::Retry(reason, None);
        }
        VerifyError::Refused(r) if r.may_be_stale() && !last => {
            tracing::info!(refusal = %r, "release not backed by an approved item yet; looking again later");
            state.metrics.execution("retried");
            return Verdict::Retry(r.to_string(), None);
        }
        VerifyError::Refused(r) => r,
    };
    state.metrics.release_refused(refusal.reason());
    state.metrics.execution("refused");
    tracing::warn!(reason = refusal.reason(), %refusal, "release refused; nothing written to Zendesk");
    Verdict::GiveUp(format!("release refused: {refusal}"))
}

/// Last attempt failed: announce the failure, then dead-letter the release.
async fn give_up(
    state: &WorkerState,
    released: &ApprovalReleased,
    delivered: u64,
    reason: &str,
) -> Verdict {
    let reason = format!("gave up after {delivered} deliveries: {reason}");
    // The record stays `executing` (not `failed`): whether the last write
    // landed is unknown, so a replay of the dead letter checks before writing.
    if let Err(e) = publish_outcome(state, released, false, None, Some(reason.clone())).await {
        tracing::warn!(error = %e, "cannot publish the failure outcome");
    }
    state.metrics.execution("failed");
    Verdict::GiveUp(reason)
}

/// Performs (or recognises as performed) one release; returns the metrics
/// label. `recheck`: the item says an earlier attempt failed, so the write
/// may have landed anyway; look for it before writing, whatever the
/// executor's own records say (they may have expired).
async fn execute(
    state: &WorkerState,
    released: &ApprovalReleased,
    recheck: bool,
) -> Result<&'static str, Failure> {
    let store = |e: zengate_runtime::redis_store::StoreError| Failure::Retryable(e.to_string());
    let claim = state
        .records
        .begin_execution(&released.approval_id, state.config.execution_lease())
        .await
        .map_err(store)?;
    let resume = match claim {
        ExecState::Applied { result_id } => {
            publish_outcome(state, released, true, result_id, None).await?;
            return Ok("replayed");
        }
        ExecState::Failed { reason } => {
            publish_outcome(state, released, false, None, Some(reason)).await?;
            return Ok("replayed");
        }
        ExecState::Busy { remaining } => {
            return Err(Failure::RetryAfter(
                "another executor holds this approval".to_owned(),
                remaining,
            ));
        }
        ExecState::Resume => true,
        ExecState::Fresh => recheck,
    };
    // This attempt holds the claim now, and renews it while it works.
    let result = renewing(
        state,
        &released.approval_id,
        claimed(state, released, resume),
    )
    .await;
    match &result {
        Err(Failure::Retryable(_) | Failure::RetryAfter(..)) => {
            if let Err(e) = state.records.mark_interrupted(&released.approval_id).await {
                tracing::warn!(error = %e, "cannot release the claim; it expires with its lease");
            }
        }
        Err(Failure::Permanent(reason)) => {
            if let Err(e) = state
                .records
                .mark_failed(&released.approval_id, reason)
                .await
            {
                tracing::warn!(error = %e, "cannot record the failure");
            }
        }
        Ok(_) => {}
    }
    result
}

/// Runs `work` while renewing the approval's execution claim, so a long
/// attempt (Zendesk retries) is never taken for a crashed one.
async fn renewing<T>(
    state: &WorkerState,
    approval_id: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let every = state.config.execution_lease() / 4;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            _ = tick.tick() => {
                if let Err(e) = state.records.renew_execution(approval_id).await {
                    tracing::debug!(error = %e, "cannot renew the execution claim");
                }
            }
        }
    }
}

/// The claimed part: check for an earlier write when resuming, then write.
async fn claimed(
    state: &WorkerState,
    released: &ApprovalReleased,
    resume: bool,
) -> Result<&'static str, Failure> {
    if resume && let Some(comment_id) = already_commented(state, released).await? {
        tracing::info!(%comment_id, "write found on the ticket; not repeating it");
        state
            .records
            .mark_applied(&released.approval_id, Some(&comment_id))
            .await
            .map_err(|e| Failure::Retryable(e.to_string()))?;
        publish_outcome(state, released, true, Some(comment_id), None).await?;
        return Ok("recovered");
    }
    perform(state, released).await
}

fn ticket_of(action: &Action) -> Result<Option<u64>, Failure> {
    action
        .ticket_id()
        .map(|t| {
            parse_canonical_id(t)
                .ok_or_else(|| Failure::Permanent(format!("invalid ticket id {t:?}")))
        })
        .transpose()
}

/// After an attempt that may have written: is the comment already there? It
/// must be by the API user, with the same body and visibility, and not older
/// than the approval.
async fn already_commented(
    state: &WorkerState,
    released: &ApprovalReleased,
) -> Result<Option<String>, Failure> {
    let action = &released.action;
    let (body, public) = match action {
        Action::Reply { body, .. } => (body, true),
        Action::InternalNote { body, .. } => (body, false),
        // Field changes and idempotent creates are safe to repeat.
        Action::UpdateFields { .. } | Action::CreateTicket { .. } => return Ok(None),
    };
    let Some(ticket_id) = ticket_of(action)? else {
        return Ok(None);
    };
    let me = state
        .api_user_id()
        .await
        .map_err(|e| Failure::client("cannot identify the API user", &e))?;
    let comments = state
        .client
        .list_comments(ticket_id, state.config.comments_limit.max(20))
        .await
        .map_err(|e| Failure::client("cannot list comments", &e))?;
    let earliest = released.approved_at.unix_timestamp() - COMMENT_CLOCK_SKEW_SECS;
    Ok(comments
        .iter()
        .rev()
        .find(|c| {
            c.author_id == me
                && c.public == public
                && c.body.trim() == body.trim()
                && c.created_at
                    .as_deref()
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                    .is_none_or(|t| t.unix_timestamp() >= earliest)
        })
        .map(|c| c.id.to_string()))
}

fn update(comment: Option<(&str, bool)>, fields: &FieldChanges) -> TicketUpdate {
    TicketUpdate {
        comment: comment.map(|(body, public)| CommentInput {
            body: body.to_owned(),
            public,
        }),
        status: fields.status.clone(),
        priority: fields.priority.clone(),
        add_tags: fields.add_tags.clone(),
    }
}

/// The Zendesk write itself.
async fn perform(
    state: &WorkerState,
    released: &ApprovalReleased,
) -> Result<&'static str, Failure> {
    let approval_id = &released.approval_id;
    let result = match &released.action {
        Action::CreateTicket {
            subject,
            body,
            requester,
            tags,
        } => {
            let ticket = NewTicket {
                subject: subject.clone(),
                comment_body: body.clone(),
                public: true,
                requester_name: requester.name.clone(),
                requester_email: requester.email.clone(),
                tags: tags.clone(),
            };
            state.client.create_ticket(&ticket, approval_id).await
        }
        Action::Reply {
            ticket_id,
            body,
            fields,
        } => put(state, ticket_id, update(Some((body, true)), fields)).await?,
        Action::InternalNote {
            ticket_id,
            body,
            fields,
        } => put(state, ticket_id, update(Some((body, false)), fields)).await?,
        Action::UpdateFields { ticket_id, fields } => {
            put(state, ticket_id, update(None, fields)).await?
        }
    };
    match result {
        Ok(ticket) => {
            let result_id = ticket.id.to_string();
            if let Err(e) = state
                .records
                .mark_applied(approval_id, Some(&result_id))
                .await
            {
                // The write happened; a redelivery will find it (comment
                // check / idempotency key) instead of repeating it.
                return Err(Failure::Retryable(format!("applied but not recorded: {e}")));
            }
            publish_outcome(state, released, true, Some(result_id), None).await?;
            tracing::info!("action applied");
            Ok("applied")
        }
        Err(e) if e.is_retryable() => Err(Failure::client("zendesk write failed", &e)),
        Err(e) => {
            let reason = format!("zendesk refused the write: {e}");
            state
                .records
                .mark_failed(approval_id, &reason)
                .await
                .map_err(|e| Failure::Retryable(e.to_string()))?;
            publish_outcome(state, released, false, None, Some(reason)).await?;
            tracing::warn!(error = %e, "action failed");
            Ok("failed")
        }
    }
}

async fn put(
    state: &WorkerState,
    ticket_id: &str,
    upd: TicketUpdate,
) -> Result<Result<zendesk_client::Ticket, ClientError>, Failure> {
    let id = parse_canonical_id(ticket_id)
        .ok_or_else(|| Failure::Permanent(format!("invalid ticket id {ticket_id:?}")))?;
    Ok(state.client.update_ticket(id, &upd).await)
}

/// `zengate.action.applied|failed.<account>.<ticket>`, message id
/// `<approval_id>:outcome`.
async fn publish_outcome(
    state: &WorkerState,
    released: &ApprovalReleased,
    applied: bool,
    result_id: Option<String>,
    error: Option<String>,
) -> Result<(), Failure> {
    let ticket_id = match &released.action {
        Action::CreateTicket { .. } => result_id.clone(),
        other => other.ticket_id().map(str::to_owned),
    };
    let outcome = ActionOutcome {
        v: V1,
        approval_id: released.approval_id.clone(),
        account_id: released.account_id.clone(),
        ticket_id: ticket_id.clone(),
        action_type: released.action.kind().to_owned(),
        applied,
        error,
        result_id,
        at: OffsetDateTime::now_utc(),
    };
    let subject = action_outcome_subject(applied, &released.account_id, ticket_id.as_deref());
    let msg_id = format!("{}:outcome", released.approval_id);
    match state.publisher.json(subject, &msg_id, &outcome).await {
        Ok(_) => Ok(()),
        Err(e @ PublishError::Encode(_)) => Err(Failure::Permanent(e.to_string())),
        Err(e) => Err(Failure::Retryable(format!(
            "cannot publish the outcome: {e}"
        ))),
    }
}
