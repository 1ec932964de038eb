//! The stored approval item (value of KV bucket `approvals`, key = approval
//! id) and its state machine:
//!
//! ```text
//! pending ──┬─> approved ──> released ──┬─> applied
//!           ├─> rejected                └─> failed
//!           ├─> expired
//!           └─> escalated ──> approved | rejected
//! ```
//!
//! `approved` means the decision is durable but the release event is not yet
//! confirmed on the bus; the reconciler finishes that step.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use zengate_core::events::{Action, ActionOutcome, ApprovalRequested, Decision};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Rejected,
    Expired,
    Escalated,
    Released,
    Applied,
    Failed,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Pending,
        State::Approved,
        State::Rejected,
        State::Expired,
        State::Escalated,
        State::Released,
        State::Applied,
        State::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Expired => "expired",
            State::Escalated => "escalated",
            State::Released => "released",
            State::Applied => "applied",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A human may still decide: waiting, or escalated after the timeout.
    pub fn decidable(self) -> bool {
        matches!(self, State::Pending | State::Escalated)
    }

    /// Nothing more happens to the item: only these may age out of the
    /// store (`APPROVAL_RETENTION`) and out of the in-memory index. Every
    /// other state is still waiting for a person, the bus or the worker
    /// (whose release gate reads the item), so it is kept.
    pub fn is_final(self) -> bool {
        matches!(self, State::Rejected | State::Expired | State::Applied)
    }
}

/// One audit entry: who did what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub by: String,
    pub what: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits: Option<String>,
}

/// The decision as recorded on the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DecisionRecord {
    /// `approved`, `rejected`, `expired` or `escalated`.
    #[schema(value_type = String)]
    pub decision: Decision,
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edits: Option<String>,
    /// The `decided` event is confirmed on the bus.
    #[serde(default)]
    pub published: bool,
}

/// A retry of a failed write, requested by an approver
/// (`POST /v1/approvals/{id}/retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetryRecord {
    /// 1 for the first retry; part of the re-release's message id.
    pub attempt: u32,
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The re-release is confirmed on the bus.
    #[serde(default)]
    pub published: bool,
    /// An outcome of the worker arrived after this retry.
    #[serde(default)]
    pub settled: bool,
}

/// Absolute signed links that resume this item without an approver token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResumeLinks {
    pub approve: String,
    pub reject: String,
}

/// An approval item: the held proposal, its state and its audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    pub id: String,
    pub state: State,
    /// The `zengate.approval.requested` event as received.
    #[schema(value_type = Object)]
    pub request: ApprovalRequested,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    pub links: ResumeLinks,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRecord>,
    /// The action as released (with the approver's edits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub final_action: Option<Action>,
    /// The release signature, made when the approval was recorded. Only
    /// this service can make one, so an item written into the bucket by
    /// anyone else is never released, even by the reconciler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_seal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The `zengate.action.applied|failed` event, once the write ran.
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<ActionOutcome>,
    /// The latest retry of a failed write, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryRecord>,
}

impl Item {
    pub fn new(
        request: ApprovalRequested,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
        links: ResumeLinks,
    ) -> Self {
        let history = vec![HistoryEntry {
            at: now,
            by: request.proposed_by.clone(),
            what: format!("proposed {}", request.action.kind()),
            reason: (!request.reasons.is_empty()).then(|| request.reasons.join("; ")),
            edits: None,
        }];
        Self {
            id: request.approval_id.clone(),
            state: State::Pending,
            request,
            created_at: now,
            expires_at,
            links,
            history,
            decision: None,
            final_action: None,
            release_seal: None,
            outcome: None,
            retry: None,
        }
    }

    /// Nothing more will happen to it: a final state and its decision on the
    /// bus. Only settled items age out of memory and out of the bucket.
    pub fn is_settled(&self) -> bool {
        self.state.is_final() && self.decision.as_ref().is_none_or(|d| d.published)
    }

    pub fn ticket_id(&self) -> Option<&str> {
        self.request.action.ticket_id()
    }

    pub fn to_bytes(&self) -> Result<bytes::Bytes, serde_json::Error> {
        serde_json::to_vec(self).map(Into::into)
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(b)
    }
}

/// The text of an action an approver may edit.
pub fn action_body(action: &Action) -> Option<&str> {
    match action {
        Action::Reply { body, .. }
        | Action::InternalNote { body, .. }
        | Action::CreateTicket { body, .. } => Some(body),
        Action::UpdateFields { .. } => None,
    }
}

/// The action with its body replaced; `None` when the action has no body.
pub fn with_body(action: &Action, new_body: &str) -> Option<Action> {
    let mut a = action.clone();
    match &mut a {
        Action::Reply { body, .. }
        | Action::InternalNote { body, .. }
        | Action::CreateTicket { body, .. } => *body = new_body.to_owned(),
        Action::UpdateFields { .. } => return None,
    }
    Some(a)
}

/// A human-readable line diff (`- old` / `+ new`, unchanged lines with two
/// spaces), for the audit and the `decided` event.
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Large texts: a plain replacement keeps the cost bounded.
    if a.len().saturating_mul(b.len()) > 250_000 {
        let mut out = String::new();
        for l in &a {
            out.push_str(&format!("- {l}\n"));
        }
        for l in &b {
            out.push_str(&format!("+ {l}\n"));
        }
        return out;
    }
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_marks_changed_lines() {
        let d = line_diff("Hello\nWe will look\nBye", "Hello\nWe fixed it\nBye");
        assert_eq!(d, "  Hello\n- We will look\n+ We fixed it\n  Bye\n");
        assert_eq!(line_diff("a", "a"), "  a\n");
        assert_eq!(line_diff("Draft", "Edited"), "- Draft\n+ Edited\n");
        assert_eq!(line_diff("", "new"), "+ new\n");
    }

    #[test]
    fn states_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert!(State::Pending.decidable() && State::Escalated.decidable());
        assert!(!State::Approved.decidable() && !State::Expired.decidable());
        let kept: Vec<State> = State::ALL.into_iter().filter(|s| !s.is_final()).collect();
        assert_eq!(
            kept,
            [
                State::Pending,
                State::Approved,
                State::Escalated,
                State::Released,
                State::Failed
            ]
        );
    }

    /// The executor reads items through `zengate_core::release::ApprovalRecord`:
    /// every state and the final action must survive that narrower view.
    #[test]
    fn executor_view_reads_stored_items() {
        use zengate_core::events::{FieldChanges, ProposalContext, ProposalSource, V1};
        use zengate_core::release::ApprovalRecord;
        let source = ProposalSource::TicketRequest {
            request_id: "r1".into(),
        };
        let action = Action::Reply {
            ticket_id: "7".into(),
            body: "hello".into(),
            fields: FieldChanges::default(),
        };
        let request = ApprovalRequested {
            v: V1,
            approval_id: source.approval_id(),
            account_id: "42".into(),
            source,
            action: action.clone(),
            reasons: vec![],
            proposed_by: "rules".into(),
            requested_at: OffsetDateTime::UNIX_EPOCH,
            context: ProposalContext::default(),
        };
        let links = ResumeLinks {
            approve: String::new(),
            reject: String::new(),
        };
        let mut item = Item::new(
            request,
            OffsetDateTime::UNIX_EPOCH,
            OffsetDateTime::UNIX_EPOCH,
            links,
        );
        item.final_action = Some(action.clone());
        for state in State::ALL {
            item.state = state;
            let view: ApprovalRecord = serde_json::from_slice(&item.to_bytes().unwrap()).unwrap();
            assert_eq!(view.id, item.id);
            assert_eq!(view.state, state.as_str());
            assert_eq!(view.request.account_id, "42");
            assert_eq!(view.final_action.as_ref(), Some(&action));
        }
    }
}
