//! The typed views of Zendesk resources the rest of zengate works with.

use serde::{Deserialize, Serialize};

/// A ticket as zengate needs it. `status` and `priority` are lowercase
/// (`open`, `high`); unknown values are kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: u64,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub priority: Option<String>,
    pub tags: Vec<String>,
    pub requester_id: Option<u64>,
    /// `via.channel` (`web`, `email`, `api`, ...).
    pub channel: Option<String>,
}

/// One ticket comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub author_id: u64,
    pub body: String,
    pub public: bool,
    pub created_at: Option<String>,
}

/// A ticket's recent comments with their authors (sideloaded users).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentThread {
    /// Oldest first (newest last).
    pub comments: Vec<Comment>,
    /// The authors Zendesk sideloaded, each once.
    pub authors: Vec<User>,
}

impl CommentThread {
    pub fn author(&self, id: u64) -> Option<&User> {
        self.authors.iter().find(|u| u.id == id)
    }
}

/// A Help Center article as search returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    pub id: u64,
    pub title: String,
    /// The article's public page (`html_url`).
    pub url: Option<String>,
    /// Zendesk's highlighted excerpt, tags removed.
    pub snippet: String,
    /// The article body (HTML as Zendesk stores it), if sent.
    pub body: Option<String>,
}

/// A Zendesk user (the API user from `me()`, or a sideloaded author).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub email: Option<String>,
    pub role: Option<String>,
}

impl User {
    /// Agents and admins (any role other than `end-user`). A user without a
    /// role is treated as an end user.
    pub fn is_staff(&self) -> bool {
        self.role.as_deref().is_some_and(|r| r != "end-user")
    }
}

/// A ticket to create on behalf of a requester.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicket {
    pub subject: String,
    pub comment_body: String,
    /// Whether the first comment is visible to the requester.
    pub public: bool,
    pub requester_name: String,
    pub requester_email: String,
    pub tags: Vec<String>,
}

/// A comment to add through a ticket update. `public` has no default on
/// purpose: Zendesk makes comments public unless told otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentInput {
    pub body: String,
    pub public: bool,
}

/// A ticket update (`PUT /tickets/{id}.json`). Empty fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketUpdate {
    pub comment: Option<CommentInput>,
    pub status: Option<String>,
    pub priority: Option<String>,
    /// Sent as `additional_tags`, which adds without replacing existing tags.
    pub add_tags: Vec<String>,
}

impl TicketUpdate {
    /// True when the update would change nothing.
    pub fn is_empty(&self) -> bool {
        self.comment.is_none()
            && self.status.is_none()
            && self.priority.is_none()
            && self.add_tags.is_empty()
    }
}
