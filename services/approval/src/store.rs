//! The `approvals` KV bucket plus a bounded in-memory index fed by a KV watch.
//!
//! The bucket is the source of truth and every state change is a
//! compare-and-set on the entry's revision. The index answers list queries in
//! O(log n + limit) without touching NATS, finds due and unfinished items for
//! the sweeper, and feeds the console's live updates. It holds every item
//! that is still open (pending, escalated, approved, released, failed, or a
//! decision whose event is not yet on the bus) and only the newest
//! `APPROVAL_RECENT_LIMIT` settled ones (rejected, expired, applied), so its
//! size does not grow with the bucket; older history is paged from the bucket
//! itself (see `history`). It is rebuilt from the bucket on start and after a
//! broken watch; stale revisions are ignored, so replaying history is
//! harmless.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use time::OffsetDateTime;
use tokio::sync::broadcast;
use zengate_runtime::Shutdown;

use crate::item::{Item, State};

pub const BUCKET: &str = zengate_core::release::APPROVALS_BUCKET;

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("approvals bucket: {0}")]
    Kv(String),
    #[error("stored item {id} is unreadable: {source}")]
    Corrupt {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode item: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Another writer changed the item since it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict;

type Key = (Reverse<i128>, String);

fn sort_key(item: &Item) -> Key {
    (
        Reverse(item.created_at.unix_timestamp_nanos()),
        item.id.clone(),
    )
}

/// Opaque list cursor: the sort key of the last item returned.
pub fn encode_cursor(item: &Item) -> String {
    format!("{}-{}", item.created_at.unix_timestamp_nanos(), item.id)
}

fn decode_cursor(c: &str) -> Option<Key> {
    let (n, id) = c.split_once('-')?;
    Some((Reverse(n.parse().ok()?), id.to_owned()))
}

/// One indexed item: its revision, when that revision was written, the item.
#[derive(Debug)]
struct Slot {
    revision: u64,
    written: OffsetDateTime,
    item: Arc<Item>,
}

#[derive(Debug, Default)]
struct Index {
    items: HashMap<String, Slot>,
    by_state: HashMap<State, BTreeSet<Key>>,
    all: BTreeSet<Key>,
    /// Settled items, newest first; trimmed to `recent_limit`.
    settled: BTreeSet<Key>,
    recent_limit: usize,
}

impl Index {
    /// Applies a newer revision; returns false for a stale one.
    fn apply(&mut self, revision: u64, written: OffsetDateTime, item: Arc<Item>) -> bool {
        if self
            .items
            .get(&item.id)
            .is_some_and(|slot| slot.revision >= revision)
        {
            return false;
        }
        self.remove(&item.id);
        let key = sort_key(&item);
        self.by_state
            .entry(item.state)
            .or_default()
            .insert(key.clone());
        self.all.insert(key.clone());
        if item.is_settled() {
            self.settled.insert(key);
        }
        self.items.insert(
            item.id.clone(),
            Slot {
                revision,
                written,
                item,
            },
        );
        while self.settled.len() > self.recent_limit {
            match self.settled.pop_last() {
                Some((_, id)) => self.remove(&id),
                None => break,
            }
        }
        true
    }

    fn counts(&self) -> StoreCounts {
        StoreCounts {
            pending: self.by_state.get(&State::Pending).map_or(0, BTreeSet::len),
            indexed: self.items.len(),
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.items.remove(id) {
            let key = sort_key(&old.item);
            if let Some(set) = self.by_state.get_mut(&old.item.state) {
                set.remove(&key);
            }
            self.all.remove(&key);
            self.settled.remove(&key);
        }
    }
}

pub struct Store {
    kv: kv::Store,
    index: RwLock<Index>,
    changes: broadcast::Sender<Arc<Item>>,
    synced: AtomicBool,
    on_change: Box<dyn Fn(&StoreCounts) + Send + Sync>,
}

/// Counts handed to the metrics hook after each change.
#[derive(Debug, Clone, Copy)]
pub struct StoreCounts {
    pub pending: usize,
    /// Items in the index.
    pub indexed: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("synced", &self.synced())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// `recent_limit`: settled items kept in memory (`APPROVAL_RECENT_LIMIT`).
    pub fn new(
        kv: kv::Store,
        recent_limit: usize,
        on_change: impl Fn(&StoreCounts) + Send + Sync + 'static,
    ) -> Self {
        Self {
            kv,
            index: RwLock::new(Index {
                recent_limit,
                ..Index::default()
            }),
            changes: broadcast::channel(1024).0,
            synced: AtomicBool::new(false),
            on_change: Box::new(on_change),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the watch has delivered the bucket's current contents.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// Live item changes (for SSE).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Item>> {
        self.changes.subscribe()
    }

    /// The bucket (history paging reads its stream directly).
    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    fn note(&self, revision: u64, written: OffsetDateTime, item: Item) {
        let item = Arc::new(item);
        let (applied, counts) = {
            let mut index = self.write();
            let applied = index.apply(revision, written, item.clone());
            (applied, index.counts())
        };
        if applied {
            (self.on_change)(&counts);
            let _ = self.changes.send(item);
        }
    }

    /// The authoritative item and its revision.
    pub async fn get(&self, id: &str) -> Result<Option<(u64, Item)>, BucketError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let entry = self
            .kv
            .entry(id)
            .await
            .map_err(|e| BucketError::Kv(e.to_string()))?;
        match entry {
            Some(e) if e.operation == kv::Operation::Put => {
                let item = Item::from_bytes(&e.value).map_err(|source| BucketError::Corrupt {
                    id: id.to_owned(),
                    source,
                })?;
                Ok(Some((e.revision, item)))
            }
            _ => Ok(None),
        }
    }

    /// Stores a new item; `Ok(None)` when the key already exists.
    pub async fn create(&self, item: &Item) -> Result<Option<u64>, BucketError> {
        let bytes = item.to_bytes()?;
        match self.kv.create(&item.id, bytes).await {
            Ok(rev) => {
                self.note(rev, OffsetDateTime::now_utc(), item.clone());
                Ok(Some(rev))
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(BucketError::Kv(e.to_string())),
        }
    }

    /// Compare-and-set on `revision`.
    pub async fn cas(
        &self,
        revision: u64,
        item: &Item,
    ) -> Result<Result<u64, Conflict>, BucketError> {
        let bytes: Bytes = item.to_bytes()?;
        match self.kv.update(&item.id, bytes, revision).await {
            Ok(rev) => {
                self.note(rev, OffsetDateTime::now_utc(), item.clone());
                Ok(Ok(rev))
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Err(Conflict)),
            Err(e) => Err(BucketError::Kv(e.to_string())),
        }
    }

    /// Read-modify-CAS until it sticks; `change` returns `None` when there is
    /// nothing to do. For bookkeeping updates that must not be lost to a race.
    pub async fn modify(
        &self,
        id: &str,
        mut change: impl FnMut(&Item) -> Option<Item>,
    ) -> Result<Option<Item>, BucketError> {
        for _ in 0..20 {
            let Some((rev, item)) = self.get(id).await? else {
                return Ok(None);
            };
            let Some(next) = change(&item) else {
                return Ok(None);
            };
            if self.cas(rev, &next).await?.is_ok() {
                return Ok(Some(next));
            }
        }
        Err(BucketError::Kv(format!(
            "{id}: too many concurrent updates"
        )))
    }

    /// Newest first, optionally one state, after `cursor`.
    pub fn list(
        &self,
        state: Option<State>,
        cursor: Option<&str>,
        limit: usize,
    ) -> (Vec<Arc<Item>>, Option<String>) {
        let index = self.read();
        let empty = BTreeSet::new();
        let set = match state {
            Some(s) => index.by_state.get(&s).unwrap_or(&empty),
            None => &index.all,
        };
        let start = cursor.and_then(decode_cursor);
        let iter: Box<dyn Iterator<Item = &Key>> = match start {
            Some(k) => {
                Box::new(set.range((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)))
            }
            None => Box::new(set.iter()),
        };
        let items: Vec<Arc<Item>> = iter
            .take(limit + 1)
            .filter_map(|(_, id)| index.items.get(id).map(|slot| slot.item.clone()))
            .collect();
        if items.len() > limit {
            let page: Vec<Arc<Item>> = items.into_iter().take(limit).collect();
            let next = page.last().map(|i| encode_cursor(i));
            (page, next)
        } else {
            (items, None)
        }
    }

    /// Pending items whose time is up.
    pub fn due(&self, now: OffsetDateTime) -> Vec<String> {
        let index = self.read();
        index
            .by_state
            .get(&State::Pending)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| index.items.get(id))
            .filter(|slot| slot.item.expires_at <= now)
            .map(|slot| slot.item.id.clone())
            .collect()
    }

    /// Decided items whose events are not confirmed on the bus since
    /// `before`, and failed items whose requested retry is not.
    pub fn unfinished(&self, before: OffsetDateTime) -> Vec<String> {
        self.read()
            .items
            .values()
            .map(|slot| &slot.item)
            .filter(|i| {
                let decision = i.decision.as_ref().is_some_and(|d| {
                    d.at <= before && (!d.published || i.state == State::Approved)
                });
                let retry = i
                    .retry
                    .as_ref()
                    .is_some_and(|r| r.at <= before && !r.published);
                decision || retry
            })
            .map(|i| i.id.clone())
            .collect()
    }

    /// Open items last written before `before`: the retention keep-alive
    /// rewrites them so the bucket's `max_age` never drops one.
    pub fn open_written_before(&self, before: OffsetDateTime) -> Vec<String> {
        self.read()
            .items
            .values()
            .filter(|slot| !slot.item.is_settled() && slot.written < before)
            .map(|slot| slot.item.id.clone())
            .collect()
    }

    /// Forgets settled items last written before `before` (the bucket's
    /// `max_age` has dropped them). Returns how many.
    pub fn forget_settled_before(&self, before: OffsetDateTime) -> usize {
        let mut index = self.write();
        let old: Vec<String> = index
            .items
            .values()
            .filter(|slot| slot.item.is_settled() && slot.written < before)
            .map(|slot| slot.item.id.clone())
            .collect();
        for id in &old {
            index.remove(id);
        }
        let counts = index.counts();
        drop(index);
        (self.on_change)(&counts);
        old.len()
    }

    /// Keeps the index in step with the bucket until shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            match self.kv.watch_with_history(">").await {
                Ok(mut watch) => loop {
                    let next = tokio::select! {
                        n = watch.next() => n,
                        () = shutdown.wait() => return,
                    };
                    match next {
                        Some(Ok(entry)) => self.on_entry(entry),
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "approvals watch failed; reopening");
                            break;
                        }
                        None => break,
                    }
                },
                Err(e) => tracing::warn!(error = %e, "cannot watch the approvals bucket"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    fn on_entry(&self, entry: kv::Entry) {
        match entry.operation {
            kv::Operation::Put => match Item::from_bytes(&entry.value) {
                Ok(item) => self.note(entry.revision, entry.created, item),
                Err(e) => tracing::warn!(key = %entry.key, error = %e, "unreadable approval item"),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                let counts = {
                    let mut index = self.write();
                    index.remove(&entry.key);
                    index.counts()
                };
                (self.on_change)(&counts);
            }
        }
        if entry.delta == 0 || entry.seen_current {
            self.synced.store(true, Ordering::Relaxed);
        }
    }
}

/// Approval ids are 32 lowercase hex characters; anything else is unknown.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
