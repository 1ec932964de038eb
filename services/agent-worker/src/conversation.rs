//! The ticket's conversation as the approver and a model drafter see it:
//! the last comments, oldest first, each with its author's name, whether
//! the author is the customer or staff, its time and visibility.

use zendesk_client::{Comment, User};
use zengate_core::events::{AuthorRole, ConversationEntry};

use crate::drafter::TicketContext;

/// Longest comment body carried into a proposal's context (characters).
pub const MAX_ENTRY_CHARS: usize = 2_000;

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// The last `limit` comments, oldest first. An author Zendesk did not name is
/// shown by id; the worker's own API user and any agent or admin count as
/// staff, everyone else (including an unknown author) as the customer side.
pub fn conversation(
    ctx: &TicketContext,
    api_user: Option<u64>,
    limit: usize,
) -> Vec<ConversationEntry> {
    entries(&ctx.comments, &ctx.authors, api_user, limit)
}

/// [`conversation`] from comments (oldest first) and their authors.
pub fn entries(
    comments: &[Comment],
    authors: &[User],
    api_user: Option<u64>,
    limit: usize,
) -> Vec<ConversationEntry> {
    let skip = comments.len().saturating_sub(limit);
    comments
        .iter()
        .skip(skip)
        .map(|c| {
            let author = authors.iter().find(|u| u.id == c.author_id);
            let staff = api_user == Some(c.author_id) || author.is_some_and(|u| u.is_staff());
            ConversationEntry {
                author: author
                    .map(|u| u.name.trim())
                    .filter(|n| !n.is_empty())
                    .map_or_else(|| format!("user {}", c.author_id), str::to_owned),
                role: if staff {
                    AuthorRole::Staff
                } else {
                    AuthorRole::Customer
                },
                at: c.created_at.clone(),
                public: c.public,
                body: truncate(&c.body, MAX_ENTRY_CHARS),
            }
        })
        .collect()
}

/// The requester's display name: the commenting end user of the event, else
/// the ticket requester as sideloaded with the comments.
pub fn requester_name(ctx: &TicketContext) -> Option<String> {
    ctx.event
        .comment
        .as_ref()
        .filter(|c| !c.author_is_staff)
        .and_then(|c| c.author_name.clone())
        .or_else(|| {
            ctx.ticket
                .requester_id
                .and_then(|id| ctx.author(id))
                .map(|u| u.name.clone())
        })
        .filter(|n| !n.trim().is_empty())
}
