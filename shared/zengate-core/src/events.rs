//! zengate's own events on stream `ZENGATE` (subjects `zengate.>`): JSON with
//! `"v": 1`. These types are the schema other teams code against; they are
//! mirrored in `docs/asyncapi.yaml`. Ids are decimal strings so that values
//! above 2^53 survive every JSON reader.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Schema version carried in every body.
pub const V1: u8 = 1;

/// Name of the stream holding zengate's own events.
pub const ZENGATE_STREAM: &str = "ZENGATE";
/// Name of the stream holding provider events.
pub const ZENDESK_STREAM: &str = "ZENDESK_EVENTS";

/// The segment used in place of a ticket id when a proposal creates a ticket.
pub const NEW_TICKET: &str = "new";

fn scope(account_id: &str, ticket_id: Option<&str>) -> String {
    format!(
        "{}.{}",
        crate::subject::token(account_id),
        ticket_id.map_or_else(|| NEW_TICKET.to_owned(), crate::subject::token)
    )
}

/// `zengate.approval.requested.<account>.<ticket|new>`
pub fn approval_requested_subject(account_id: &str, ticket_id: Option<&str>) -> String {
    format!(
        "zengate.approval.requested.{}",
        scope(account_id, ticket_id)
    )
}
/// `zengate.approval.decided.<account>.<ticket|new>`
pub fn approval_decided_subject(account_id: &str, ticket_id: Option<&str>) -> String {
    format!("zengate.approval.decided.{}", scope(account_id, ticket_id))
}
/// `zengate.approval.released.<account>.<ticket|new>`
pub fn approval_released_subject(account_id: &str, ticket_id: Option<&str>) -> String {
    format!("zengate.approval.released.{}", scope(account_id, ticket_id))
}
/// `zengate.action.applied.<account>.<ticket|new>` or `zengate.action.failed.…`
pub fn action_outcome_subject(applied: bool, account_id: &str, ticket_id: Option<&str>) -> String {
    let kind = if applied { "applied" } else { "failed" };
    format!("zengate.action.{kind}.{}", scope(account_id, ticket_id))
}
/// `zengate.auth.jwt_issued.<kind>`
pub fn jwt_issued_subject(kind: &str) -> String {
    format!("zengate.auth.jwt_issued.{}", crate::subject::token(kind))
}
/// `zengate.dlq.<original subject>`
pub fn dlq_subject(original: &str) -> String {
    format!("zengate.dlq.{original}")
}

/// Where a proposal came from; it fixes the approval id, so a redelivered
/// source yields the same item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProposalSource {
    /// A provider event; `msg_id` is its `Nats-Msg-Id` (`<account>:<event id>`).
    ZendeskEvent { msg_id: String, subject: String },
    /// A chat visitor's ticket request; `request_id` is unique per request.
    TicketRequest { request_id: String },
}

impl ProposalSource {
    fn key(&self) -> String {
        match self {
            ProposalSource::ZendeskEvent { msg_id, .. } => format!("zendesk_event:{msg_id}"),
            ProposalSource::TicketRequest { request_id } => format!("ticket_request:{request_id}"),
        }
    }

    /// The approval id: 32 hex characters derived from the source, valid as a
    /// KV key, a URL segment and a Zendesk `Idempotency-Key`.
    pub fn approval_id(&self) -> String {
        let digest = Sha256::digest(self.key().as_bytes());
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Field changes a proposal may carry alongside (or instead of) a comment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tags: Vec<String>,
}

impl FieldChanges {
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.priority.is_none() && self.add_tags.is_empty()
    }
}

/// The person a new ticket is for. Taken from a verified visitor JWT, never
/// from a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    pub name: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// One Zendesk write, exactly as it will be executed once approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// A public reply on an existing ticket (PUT with `public: true`).
    Reply {
        ticket_id: String,
        body: String,
        #[serde(default, skip_serializing_if = "FieldChanges::is_empty")]
        fields: FieldChanges,
    },
    /// A private note on an existing ticket (PUT with `public: false`).
    InternalNote {
        ticket_id: String,
        body: String,
        #[serde(default, skip_serializing_if = "FieldChanges::is_empty")]
        fields: FieldChanges,
    },
    /// Field changes only.
    UpdateFields {
        ticket_id: String,
        fields: FieldChanges,
    },
    /// A new ticket (POST with an `Idempotency-Key`).
    CreateTicket {
        subject: String,
        body: String,
        requester: Requester,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
    },
}

impl Action {
    /// The ticket this action writes to; `None` for a new ticket.
    pub fn ticket_id(&self) -> Option<&str> {
        match self {
            Action::Reply { ticket_id, .. }
            | Action::InternalNote { ticket_id, .. }
            | Action::UpdateFields { ticket_id, .. } => Some(ticket_id),
            Action::CreateTicket { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Action::Reply { .. } => "reply",
            Action::InternalNote { .. } => "internal_note",
            Action::UpdateFields { .. } => "update_fields",
            Action::CreateTicket { .. } => "create_ticket",
        }
    }
}

/// Context shown to the approver; not part of what gets executed. Every
/// field is optional so older producers and consumers keep working.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_comment: Option<String>,
    /// Ticket status and priority when the proposal was drafted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The ticket in the Zendesk agent UI
    /// (`https://<subdomain>.zendesk.com/agent/tickets/<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_url: Option<String>,
    /// The last comments of the conversation, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversation: Vec<ConversationEntry>,
    /// How the proposal was drafted (drafter, model, citations, confidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<DraftInfo>,
}

/// Who wrote a comment, as the approver needs to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorRole {
    /// The ticket's requester (or another end user).
    Customer,
    /// An agent or admin of the help desk.
    Staff,
}

/// One comment of the ticket's conversation, as shown to the approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationEntry {
    /// Author's display name (or id when the name is unknown).
    pub author: String,
    pub role: AuthorRole,
    /// RFC 3339 time of the comment, as Zendesk gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub public: bool,
    pub body: String,
}

/// How a proposal was drafted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftInfo {
    /// `rules`, `openai`, `anthropic`, or a fallback such as `rules (fallback)`.
    pub drafter: String,
    /// The model name for a model-backed draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The drafter's confidence in percent (0–100), when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_pct: Option<u8>,
    /// Help Center articles the draft relies on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
    /// Set when the drafter could not produce a usable proposal and hands the
    /// ticket to a human instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_human: bool,
}

/// A Help Center article cited by a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub article_id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `zengate.approval.requested.*`: a proposed action waits for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequested {
    pub v: u8,
    /// `source.approval_id()`.
    pub approval_id: String,
    pub account_id: String,
    pub source: ProposalSource,
    pub action: Action,
    /// Why the drafter proposes this.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Which drafter (or service) proposed it.
    pub proposed_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(default)]
    pub context: ProposalContext,
}

/// A human's (or the clock's) decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Rejected,
    Expired,
    Escalated,
}

/// `zengate.approval.decided.*`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecided {
    pub v: u8,
    pub approval_id: String,
    pub account_id: String,
    #[serde(default)]
    pub ticket_id: Option<String>,
    pub decision: Decision,
    /// Approver name, or `system` for expiry.
    pub decided_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
    #[serde(default)]
    pub reason: Option<String>,
    /// Human-readable description of what the approver changed, if anything.
    #[serde(default)]
    pub edits: Option<String>,
}

/// `zengate.approval.released.*`: an approved action to execute, exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalReleased {
    pub v: u8,
    pub approval_id: String,
    pub account_id: String,
    /// The final action, including the approver's edits.
    pub action: Action,
    pub approved_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: OffsetDateTime,
}

/// `zengate.action.applied.*` / `zengate.action.failed.*`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOutcome {
    pub v: u8,
    pub approval_id: String,
    pub account_id: String,
    #[serde(default)]
    pub ticket_id: Option<String>,
    pub action_type: String,
    pub applied: bool,
    /// Zendesk's error or the reason for giving up, when not applied.
    #[serde(default)]
    pub error: Option<String>,
    /// Id of the comment or ticket written, when known.
    #[serde(default)]
    pub result_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// `zengate.auth.jwt_issued.<kind>`: audit of one issuance. Never carries the
/// token or the user_token, only a short hash of the latter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtIssued {
    pub v: u8,
    /// `widget`, `chat` or `messaging`.
    pub kind: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default)]
    pub client_ip: Option<String>,
    /// First 12 hex characters of SHA-256(user_token).
    pub user_token_hash: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
}

/// `zengate.dlq.<original subject>`: a message given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub v: u8,
    pub original_subject: String,
    pub stream: String,
    pub stream_sequence: u64,
    pub deliveries: u64,
    pub reason: String,
    /// Original headers as name/value pairs, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Original body, base64 (standard, padded).
    pub body_base64: String,
    #[serde(with = "time::serde::rfc3339")]
    pub failed_at: OffsetDateTime,
}

/// A short, non-reversible fingerprint for logs and audits.
pub fn short_hash(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_id_is_stable_and_source_bound() {
        let a = ProposalSource::ZendeskEvent {
            msg_id: "1:abc".into(),
            subject: "zendesk.1.ticket.5.created".into(),
        };
        let b = ProposalSource::TicketRequest {
            request_id: "1:abc".into(),
        };
        assert_eq!(a.approval_id().len(), 32);
        assert_eq!(a.approval_id(), a.clone().approval_id());
        assert_ne!(a.approval_id(), b.approval_id());
    }

    #[test]
    fn subjects() {
        assert_eq!(
            approval_requested_subject("42", Some("5158")),
            "zengate.approval.requested.42.5158"
        );
        assert_eq!(
            approval_released_subject("42", None),
            "zengate.approval.released.42.new"
        );
        assert_eq!(
            action_outcome_subject(false, "42", Some("7")),
            "zengate.action.failed.42.7"
        );
        assert_eq!(jwt_issued_subject("chat"), "zengate.auth.jwt_issued.chat");
    }

    #[test]
    fn action_round_trip() {
        let a = Action::Reply {
            ticket_id: "9223372036854775807".into(),
            body: "hi".into(),
            fields: FieldChanges::default(),
        };
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(
            s,
            r#"{"type":"reply","ticket_id":"9223372036854775807","body":"hi"}"#
        );
        assert_eq!(serde_json::from_str::<Action>(&s).unwrap(), a);
    }
}
