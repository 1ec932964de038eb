//! The drafter seam: given one ticket's context, propose (or decline to
//! propose) a single action on that ticket.
//!
//! A drafter never chooses which ticket it writes to, nor any host, path or
//! credential: its `Draft` has no ticket id (the worker binds the ticket the
//! event named), and the only Zendesk access it gets is a `TicketTool` that
//! can read this one ticket. That is what lets a model-backed drafter be
//! plugged in later without widening what a prompt injection could reach.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use zendesk_client::{Article, ClientError, Comment, CommentThread, Ticket, User, ZendeskClient};
use zengate_core::events::{DraftInfo, FieldChanges};

/// The event that triggered drafting.
#[derive(Debug, Clone)]
pub struct TriggerEvent {
    /// `Nats-Msg-Id` of the provider event (`<account>:<event id>`).
    pub msg_id: String,
    /// Zendesk's event id.
    pub event_id: String,
    /// The provider subject, `zendesk.<account>.ticket.<id>.<action>`.
    pub subject: String,
    /// `created` or `comment_added`.
    pub action: String,
    /// For `comment_added`: the new comment as the event carried it.
    pub comment: Option<EventComment>,
}

/// `event.comment` of a `ticket.comment_added` event.
#[derive(Debug, Clone)]
pub struct EventComment {
    pub id: Option<String>,
    pub body: String,
    pub is_public: bool,
    pub author_id: Option<u64>,
    pub author_name: Option<String>,
    pub author_is_staff: bool,
}

/// Read access to exactly one ticket.
#[derive(Debug, Clone)]
pub struct TicketTool {
    client: ZendeskClient,
    ticket_id: u64,
}

impl TicketTool {
    pub fn new(client: ZendeskClient, ticket_id: u64) -> Self {
        Self { client, ticket_id }
    }

    pub fn ticket_id(&self) -> u64 {
        self.ticket_id
    }

    /// The bound ticket as it is now.
    pub async fn ticket(&self) -> Result<Ticket, ClientError> {
        self.client.get_ticket(self.ticket_id).await
    }

    /// The bound ticket's most recent comments, newest last.
    pub async fn comments(&self, limit: usize) -> Result<Vec<Comment>, ClientError> {
        self.client.list_comments(self.ticket_id, limit).await
    }

    /// The bound ticket's most recent comments with their authors.
    pub async fn thread(&self, limit: usize) -> Result<CommentThread, ClientError> {
        self.client
            .list_comments_with_authors(self.ticket_id, limit)
            .await
    }

    /// Help Center articles matching `query` (read-only, this account's
    /// Help Center only).
    pub async fn search_help_center(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<Article>, ClientError> {
        self.client.search_articles(query, limit).await
    }
}

/// Everything a drafter may look at.
#[derive(Debug, Clone)]
pub struct TicketContext {
    pub account_id: u64,
    pub ticket: Ticket,
    /// Recent comments, newest last.
    pub comments: Vec<Comment>,
    /// The comments' authors, as far as Zendesk named them.
    pub authors: Vec<User>,
    pub event: TriggerEvent,
    /// Best known display name of the requester (the commenting end user, or
    /// none when Zendesk did not say).
    pub requester_name: Option<String>,
    pub tool: TicketTool,
}

impl TicketContext {
    /// The text the customer most recently wrote: the event's comment, else
    /// the newest comment, else the ticket description.
    pub fn latest_text(&self) -> &str {
        if let Some(c) = &self.event.comment {
            return &c.body;
        }
        if let Some(c) = self.comments.last() {
            return &c.body;
        }
        self.ticket.description.as_deref().unwrap_or("")
    }

    /// The author of a comment, when Zendesk named them.
    pub fn author(&self, id: u64) -> Option<&User> {
        self.authors.iter().find(|u| u.id == id)
    }
}

/// What a drafter proposes for the bound ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Draft {
    Reply { body: String, fields: FieldChanges },
    InternalNote { body: String, fields: FieldChanges },
    UpdateFields { fields: FieldChanges },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub draft: Draft,
    /// Why, for the human approver.
    pub reasons: Vec<String>,
    /// How it was drafted (drafter, model, citations, confidence); the
    /// worker fills in the drafter's name when this is `None`.
    pub info: Option<DraftInfo>,
}

#[derive(Debug, thiserror::Error)]
#[error("drafter failed: {message}")]
pub struct DraftError {
    pub message: String,
    /// Whether trying again later could succeed.
    pub retryable: bool,
    /// Not before this delay (a provider's `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl DraftError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// Retryable, not before `after`.
    pub fn retry_after(message: impl Into<String>, after: Option<Duration>) -> Self {
        Self {
            retry_after: after,
            ..Self::retryable(message)
        }
    }
}

/// Proposes an action for one ticket. `None` means "nothing to propose".
pub trait Drafter: Send + Sync + 'static {
    /// Identifies the drafter in proposals (`proposed_by`).
    fn name(&self) -> &str;

    fn draft<'a>(
        &'a self,
        ctx: &'a TicketContext,
    ) -> BoxFuture<'a, Result<Option<Proposal>, DraftError>>;

    /// Registers the drafter's own metrics with the worker's registry.
    fn register_metrics(&self, _registry: &mut Registry) {}
}

/// A shared drafter.
pub type SharedDrafter = Arc<dyn Drafter>;
