//! History pages read from the bucket itself, not from the in-memory index
//! (which keeps only open and recent items).
//!
//! The bucket keeps one revision per item, so its stream holds exactly one
//! message per item, at the sequence of the item's last change. A page walks
//! that stream backwards from `before` (exclusive) in growing windows, each
//! read forwards with direct gets that skip superseded sequences on the
//! server; items come most recently changed first. The cursor is a stream
//! sequence: an item changed after a page was read moves to the head and may
//! show again on a later first page, never twice on one page. A page examines
//! at most [`MAX_SCAN`] items; a sparse filter then returns a short page with
//! a cursor to go on from.

use async_nats::jetstream::stream::DirectGetErrorKind;

use crate::item::{Item, State};
use crate::store::{BUCKET, BucketError, Store};

/// Items examined per page at most, whatever the filter.
pub const MAX_SCAN: usize = 5000;

/// What a history page shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One state; `None` for every state.
    pub state: Option<State>,
    /// One ticket id.
    pub ticket: Option<String>,
    /// Case-insensitive words that must all appear in the subject, the
    /// requester, the proposal or the ticket id.
    pub text: Vec<String>,
}

impl Filter {
    pub fn new(state: Option<State>, ticket: Option<&str>, text: Option<&str>) -> Self {
        Self {
            state,
            ticket: ticket
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            text: text
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_lowercase)
                .collect(),
        }
    }

    pub fn matches(&self, item: &Item) -> bool {
        if self.state.is_some_and(|s| s != item.state) {
            return false;
        }
        if let Some(t) = &self.ticket
            && item.ticket_id() != Some(t.as_str())
        {
            return false;
        }
        if self.text.is_empty() {
            return true;
        }
        let hay = searchable(item);
        self.text.iter().all(|w| hay.contains(w.as_str()))
    }
}

/// The lowercased text a search looks in.
fn searchable(item: &Item) -> String {
    let ctx = &item.request.context;
    let mut s = String::new();
    for part in [
        ctx.ticket_subject.as_deref(),
        ctx.requester.as_deref(),
        item.ticket_id(),
        crate::item::action_body(&item.request.action),
        Some(item.request.proposed_by.as_str()),
    ]
    .into_iter()
    .flatten()
    {
        s.push_str(&part.to_lowercase());
        s.push('\n');
    }
    s
}

/// One page, most recently changed first.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Item>,
    /// Pass as `before` for the next page; `None` when nothing is older.
    pub next_before: Option<u64>,
}

/// Reads one page of items matching `filter` changed before stream
/// sequence `before` (`None`: from the newest).
pub async fn page(
    store: &Store,
    filter: &Filter,
    before: Option<u64>,
    limit: usize,
) -> Result<Page, BucketError> {
    let kv = store.kv();
    let stream = &kv.stream;
    let info = stream
        .get_info()
        .await
        .map_err(|e| BucketError::Kv(e.to_string()))?;
    let first = info.state.first_sequence.max(1);
    let last = info.state.last_sequence;
    let subject = format!("$KV.{BUCKET}.>");
    let mut hi = before.unwrap_or(u64::MAX).min(last.saturating_add(1));
    let mut window = (limit as u64).saturating_mul(4).max(64);
    let mut items = Vec::with_capacity(limit);
    let mut scanned = 0usize;
    while hi > first && items.len() < limit && scanned < MAX_SCAN {
        let budget = (MAX_SCAN - scanned) as u64;
        let lo = hi.saturating_sub(window.min(budget)).max(first);
        // Forwards over [lo, hi): existing messages only.
        let mut found: Vec<(u64, Item)> = Vec::new();
        let mut seq = lo;
        while seq < hi {
            let msg = match stream
                .direct_get_next_for_subject(subject.as_str(), Some(seq))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(BucketError::Kv(e.to_string())),
            };
            if msg.sequence >= hi {
                break;
            }
            seq = msg.sequence.saturating_add(1);
            scanned += 1;
            let deleted = msg
                .headers
                .get("KV-Operation")
                .is_some_and(|op| op.as_str() != "PUT");
            if deleted || msg.payload.is_empty() {
                continue;
            }
            match Item::from_bytes(&msg.payload) {
                Ok(item) if filter.matches(&item) => found.push((msg.sequence, item)),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(subject = %msg.subject, error = %e, "unreadable approval item skipped");
                }
            }
        }
        // Newest first; a full page ends just above the last item taken.
        let mut next_hi = lo;
        for (seq, item) in found.into_iter().rev() {
            if items.len() == limit {
                break;
            }
            items.push(item);
            next_hi = seq;
        }
        if items.len() < limit {
            next_hi = lo;
        }
        hi = next_hi;
        window = window.saturating_mul(2);
    }
    Ok(Page {
        items,
        next_before: (hi > first).then_some(hi),
    })
}
