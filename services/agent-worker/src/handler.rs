//! One ticket event: decide whether it deserves a proposal, gather the
//! ticket's context, ask the drafter, publish the proposal exactly once.

use std::time::Duration;

use async_nats::HeaderMap;
use time::OffsetDateTime;
use zendesk_client::ClientError;
use zengate_core::Envelope;
use zengate_core::events::{
    Action, ApprovalRequested, DraftInfo, ProposalContext, ProposalSource, V1,
    approval_requested_subject,
};
use zengate_core::headers as h;
use zengate_core::json::{Json, Number};

use zengate_runtime::bus::{PublishError, Verdict};

use crate::app::WorkerState;
use crate::conversation::{self, truncate};
use crate::drafter::{Draft, EventComment, Proposal, TicketContext, TicketTool, TriggerEvent};

/// Comments shown to the approver with each proposal.
pub const CONVERSATION_ENTRIES: usize = 10;

/// The ticket in the Zendesk agent UI.
pub fn ticket_url(subdomain: &str, ticket_id: u64) -> String {
    format!(
        "https://{}.zendesk.com/agent/tickets/{ticket_id}",
        subdomain.to_ascii_lowercase()
    )
}

/// Header a replayed dead letter carries: the original `Nats-Msg-Id`, so the
/// replay maps to the same approval id (the replay itself needs a fresh
/// message id to pass JetStream's duplicate window).
pub const REPLAY_OF: &str = "Zengate-Replay-Of";

/// What happened to an event that was handled to completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Proposed {
        approval_id: String,
    },
    NoProposal,
    /// The source was proposed before (a redelivery or replay).
    Duplicate,
    Skipped(&'static str),
}

impl Handled {
    pub fn label(&self) -> &'static str {
        match self {
            Handled::Proposed { .. } => "proposed",
            Handled::NoProposal => "no_proposal",
            Handled::Duplicate => "duplicate",
            Handled::Skipped(reason) => reason,
        }
    }
}

/// Why handling did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Worth another delivery (Zendesk busy, Redis or NATS trouble…).
    #[error("{0}")]
    Retryable(String),
    /// Worth another delivery, not before the given delay (Zendesk's
    /// `Retry-After` when the client would not wait that long itself).
    #[error("{0}")]
    RetryAfter(String, Duration),
    /// Will fail the same way every time: dead-letter at once.
    #[error("{0}")]
    Permanent(String),
}

impl Failure {
    /// Classifies a Zendesk error: retryable ones (honouring `Retry-After`)
    /// or permanent.
    pub fn client(what: &str, e: &ClientError) -> Self {
        let message = format!("{what}: {e}");
        match (e.is_retryable(), e.retry_after()) {
            (true, Some(after)) => Failure::RetryAfter(message, after),
            (true, None) => Failure::Retryable(message),
            (false, _) => Failure::Permanent(message),
        }
    }
}

/// The one mapping from a failure to what the consumer does with the
/// delivery.
impl From<Failure> for Verdict {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Retryable(r) => Verdict::Retry(r, None),
            Failure::RetryAfter(r, after) => Verdict::Retry(r, Some(after)),
            Failure::Permanent(r) => Verdict::GiveUp(r),
        }
    }
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers
        .and_then(|m| m.get(name))
        .map(|v| v.as_str())
        .filter(|s| !s.is_empty())
}

fn json_id(v: Option<&Json>) -> Option<u64> {
    match v? {
        Json::Number(Number::Unsigned(n)) => Some(*n),
        Json::String(s) => zengate_core::ids::parse_canonical_id(s),
        _ => None,
    }
}

fn json_string(v: Option<&Json>) -> Option<String> {
    match v? {
        Json::String(s) => Some(s.clone()),
        Json::Number(Number::Unsigned(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// `event.comment` of a `comment_added` event.
fn event_comment(envelope: &Envelope) -> Option<EventComment> {
    let c = envelope.event.get("comment")?;
    let author = c.get("author");
    Some(EventComment {
        id: json_string(c.get("id")),
        body: c
            .get("body")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned(),
        is_public: c.get("is_public").and_then(Json::as_bool).unwrap_or(true),
        author_id: json_id(author.and_then(|a| a.get("id"))),
        author_name: author
            .and_then(|a| a.get("name"))
            .and_then(Json::as_str)
            .map(str::to_owned),
        author_is_staff: author
            .and_then(|a| a.get("is_staff"))
            .and_then(Json::as_bool)
            .unwrap_or(false),
    })
}

/// Handles one provider event (`subject` is its original provider subject).
pub async fn handle(
    state: &WorkerState,
    subject: &str,
    headers: Option<&HeaderMap>,
    body: &[u8],
) -> Result<Handled, Failure> {
    let span = tracing::Span::current();
    let envelope =
        Envelope::parse(body).map_err(|e| Failure::Permanent(format!("unusable event: {e}")))?;
    span.record("event_id", envelope.head.id.as_str());
    let Some(ticket_id) = envelope.head.ticket_id() else {
        return Ok(Handled::Skipped("skipped_not_ticket"));
    };
    span.record("ticket_id", ticket_id);
    if envelope.head.account_id != state.config.account_id {
        return Ok(Handled::Skipped("skipped_other_account"));
    }
    let comment = match envelope.head.action.as_str() {
        "created" => None,
        "comment_added" => {
            let c = event_comment(&envelope).ok_or_else(|| {
                Failure::Permanent("comment_added event without event.comment".to_owned())
            })?;
            let me = state
                .api_user_id()
                .await
                .map_err(|e| Failure::client("cannot identify the API user", &e))?;
            if c.author_id == Some(me) {
                return Ok(Handled::Skipped("skipped_own_comment"));
            }
            if c.author_is_staff && state.config.skip_staff_comments {
                return Ok(Handled::Skipped("skipped_staff_comment"));
            }
            Some(c)
        }
        _ => return Ok(Handled::Skipped("skipped_event_type")),
    };

    let msg_id = header(headers, REPLAY_OF)
        .or_else(|| header(headers, h::NATS_MSG_ID))
        .map(str::to_owned)
        .unwrap_or_else(|| envelope.head.msg_id());
    let source = ProposalSource::ZendeskEvent {
        msg_id: msg_id.clone(),
        subject: subject.to_owned(),
    };
    let approval_id = source.approval_id();
    span.record("approval_id", approval_id.as_str());
    // The dedup check and the two reads are independent: one round trip of
    // latency instead of three. A duplicate (rare) costs two wasted reads.
    let tool = TicketTool::new(state.client.clone(), ticket_id);
    let (proposed, ticket, thread) = tokio::join!(
        state.records.was_proposed(&approval_id),
        tool.ticket(),
        tool.thread(state.config.comments_limit),
    );
    if proposed.map_err(|e| Failure::Retryable(e.to_string()))? {
        return Ok(Handled::Duplicate);
    }
    let ticket = match ticket {
        Ok(t) => t,
        Err(ClientError::NotFound { .. }) => return Ok(Handled::Skipped("skipped_ticket_gone")),
        Err(e) => return Err(Failure::client("cannot fetch the ticket", &e)),
    };
    let thread = thread.map_err(|e| Failure::client("cannot list comments", &e))?;
    let mut ctx = TicketContext {
        account_id: envelope.head.account_id,
        ticket,
        comments: thread.comments,
        authors: thread.authors,
        event: TriggerEvent {
            msg_id,
            event_id: envelope.head.id.clone(),
            subject: subject.to_owned(),
            action: envelope.head.action.clone(),
            comment,
        },
        requester_name: None,
        tool,
    };
    ctx.requester_name = conversation::requester_name(&ctx);
    let proposal =
        state
            .drafter
            .draft(&ctx)
            .await
            .map_err(|e| match (e.retryable, e.retry_after) {
                (true, Some(after)) => Failure::RetryAfter(e.to_string(), after),
                (true, None) => Failure::Retryable(e.to_string()),
                (false, _) => Failure::Permanent(e.to_string()),
            })?;
    let Some(proposal) = proposal else {
        return Ok(Handled::NoProposal);
    };
    let request = approval_request(state, &ctx, source, proposal);
    publish_request(state, &request).await?;
    state.metrics.proposals.inc();
    state
        .records
        .mark_proposed(&approval_id)
        .await
        .map_err(|e| {
            // The proposal is durable; JetStream's duplicate window covers a
            // redelivery soon after, so this only narrows the protection.
            tracing::warn!(error = %e, "proposal published but not recorded in redis");
        })
        .ok();
    tracing::info!(action = request.action.kind(), "proposal published");
    Ok(Handled::Proposed { approval_id })
}

fn approval_request(
    state: &WorkerState,
    ctx: &TicketContext,
    source: ProposalSource,
    proposal: Proposal,
) -> ApprovalRequested {
    let ticket_id = ctx.ticket.id.to_string();
    let action = match proposal.draft {
        Draft::Reply { body, fields } => Action::Reply {
            ticket_id,
            body,
            fields,
        },
        Draft::InternalNote { body, fields } => Action::InternalNote {
            ticket_id,
            body,
            fields,
        },
        Draft::UpdateFields { fields } => Action::UpdateFields { ticket_id, fields },
    };
    let last = ctx.latest_text();
    let draft = proposal.info.unwrap_or_else(|| DraftInfo {
        drafter: state.drafter.name().to_owned(),
        ..DraftInfo::default()
    });
    let api_user = state.cached_api_user_id();
    ApprovalRequested {
        v: V1,
        approval_id: source.approval_id(),
        account_id: ctx.account_id.to_string(),
        source,
        action,
        reasons: proposal.reasons,
        proposed_by: state.drafter.name().to_owned(),
        requested_at: OffsetDateTime::now_utc(),
        context: ProposalContext {
            ticket_subject: ctx.ticket.subject.clone(),
            requester: ctx.requester_name.clone(),
            last_comment: (!last.is_empty()).then(|| truncate(last, 500)),
            status: ctx.ticket.status.clone(),
            priority: ctx.ticket.priority.clone(),
            tags: ctx.ticket.tags.clone(),
            ticket_url: Some(ticket_url(&state.config.zendesk.subdomain, ctx.ticket.id)),
            conversation: conversation::conversation(ctx, api_user, CONVERSATION_ENTRIES),
            draft: Some(draft),
        },
    }
}

/// Publishes with `Nats-Msg-Id = approval_id` and waits for the PubAck.
async fn publish_request(state: &WorkerState, request: &ApprovalRequested) -> Result<(), Failure> {
    let subject = approval_requested_subject(&request.account_id, request.action.ticket_id());
    match state
        .publisher
        .json(subject, &request.approval_id, request)
        .await
    {
        Ok(_) => Ok(()),
        Err(e @ PublishError::Encode(_)) => Err(Failure::Permanent(e.to_string())),
        Err(e) => Err(Failure::Retryable(format!(
            "cannot publish the proposal: {e}"
        ))),
    }
}
