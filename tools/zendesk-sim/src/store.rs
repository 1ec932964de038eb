//! The in-memory account: tickets, comments, users, idempotency keys,
//! recorded requests and injected faults. One mutex; no await while held.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::help_center::SimArticle;

/// A ticket as the simulator stores it. Status and priority are lowercase,
/// as in the REST API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimTicket {
    pub id: u64,
    pub subject: String,
    pub description: String,
    pub status: String,
    pub priority: Option<String>,
    pub tags: Vec<String>,
    pub requester_id: u64,
    pub submitter_id: u64,
    /// `via.channel`: `api` for tickets created through the API, `web` for
    /// end-user tickets.
    pub channel: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimComment {
    pub id: u64,
    pub ticket_id: u64,
    pub author_id: u64,
    pub body: String,
    pub public: bool,
    pub created_at: String,
}

/// A user: the API user (agent) or an end-user requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimUser {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub role: String,
}

impl SimUser {
    pub fn is_staff(&self) -> bool {
        self.role != "end-user"
    }
}

/// One request received on the Ticketing API (`/api/...`), as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Header names lowercase, in arrival order; values lossily decoded.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The client's address (`127.0.0.1:54321`): tells which process sent it.
    #[serde(default)]
    pub peer: Option<String>,
}

impl RecordedRequest {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// A failure to inject into matching API requests. Latency applies first;
/// then a `status` of 400 or above answers with that status (and
/// `Retry-After` when given) instead of handling the request. A status below
/// 400 (e.g. 0) injects latency only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Matches request paths starting with this (e.g. `/api/v2/tickets`).
    pub path_prefix: String,
    /// Matches only this method (`GET`, `PUT`...) when set.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub status: u16,
    /// `Retry-After` in seconds.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// How many matching requests it affects.
    #[serde(default = "one")]
    pub times: u32,
    /// Delay before answering (`latency_ms` over HTTP).
    #[serde(default, rename = "latency_ms", with = "opt_millis")]
    pub latency: Option<Duration>,
}

fn one() -> u32 {
    1
}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// The result of a webhook delivery, for inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub event_id: String,
    pub event_type: String,
    pub ticket_id: u64,
    pub attempts: u32,
    /// The last HTTP status received, if any.
    pub status: Option<u16>,
    pub delivered: bool,
}

/// What a stored idempotency key replays.
#[derive(Debug, Clone)]
pub(crate) struct IdempotentEntry {
    pub request_body: serde_json::Value,
    pub status: u16,
    pub response: serde_json::Value,
}

/// An event to send as a webhook, produced by a state change.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    TicketCreated(SimTicket),
    CommentAdded {
        ticket: SimTicket,
        comment: SimComment,
        author: SimUser,
    },
}

#[derive(Debug)]
pub(crate) struct Store {
    pub api_user: SimUser,
    pub users: BTreeMap<u64, SimUser>,
    pub tickets: BTreeMap<u64, SimTicket>,
    /// Per ticket, in creation order.
    pub comments: HashMap<u64, Vec<SimComment>>,
    pub idempotency: HashMap<String, IdempotentEntry>,
    /// The most recent API requests, oldest dropped beyond [`MAX_RECORDED`].
    pub requests: VecDeque<RecordedRequest>,
    pub faults: Vec<Fault>,
    pub deliveries: Vec<WebhookDelivery>,
    /// Help Center articles (seeded, plus any added by a test).
    pub articles: Vec<SimArticle>,
    next_ticket_id: u64,
    next_user_id: u64,
    next_comment_id: u64,
}

/// Recorded requests kept, so a long local run does not grow without bound.
pub const MAX_RECORDED: usize = 100_000;

/// Users and comments get ids above 2^53 too, from ranges apart from tickets.
const FIRST_USER_ID: u64 = 10_000_000_000_000_001;
const FIRST_COMMENT_ID: u64 = 20_000_000_000_000_001;

pub(crate) fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .unwrap_or_default()
}

impl Store {
    pub fn new(email: &str, first_ticket_id: u64) -> Self {
        let api_user = SimUser {
            id: FIRST_USER_ID,
            name: "zengate API".to_owned(),
            email: email.to_owned(),
            role: "admin".to_owned(),
        };
        let mut users = BTreeMap::new();
        users.insert(api_user.id, api_user.clone());
        Self {
            api_user,
            users,
            tickets: BTreeMap::new(),
            comments: HashMap::new(),
            idempotency: HashMap::new(),
            requests: VecDeque::new(),
            faults: Vec::new(),
            deliveries: Vec::new(),
            articles: crate::help_center::seeded(),
            next_ticket_id: first_ticket_id.max(1),
            next_user_id: FIRST_USER_ID + 1,
            next_comment_id: FIRST_COMMENT_ID,
        }
    }

    /// Finds an end-user by email or creates one.
    pub fn user_for(&mut self, name: &str, email: &str) -> SimUser {
        if let Some(u) = self
            .users
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(email))
        {
            return u.clone();
        }
        let user = SimUser {
            id: self.next_user_id,
            name: name.to_owned(),
            email: email.to_owned(),
            role: "end-user".to_owned(),
        };
        self.next_user_id += 1;
        self.users.insert(user.id, user.clone());
        user
    }

    /// Creates a ticket with its first comment.
    #[allow(clippy::too_many_arguments)]
    pub fn create_ticket(
        &mut self,
        subject: &str,
        body: &str,
        public: bool,
        requester: &SimUser,
        author_id: u64,
        channel: &str,
        tags: Vec<String>,
        priority: Option<String>,
        status: Option<String>,
    ) -> (SimTicket, Change) {
        let now = now_rfc3339();
        let ticket = SimTicket {
            id: self.next_ticket_id,
            subject: subject.to_owned(),
            description: body.to_owned(),
            status: status.unwrap_or_else(|| "new".to_owned()),
            priority,
            tags,
            requester_id: requester.id,
            submitter_id: author_id,
            channel: channel.to_owned(),
            created_at: now.clone(),
            updated_at: now,
        };
        self.next_ticket_id += 1;
        self.tickets.insert(ticket.id, ticket.clone());
        self.push_comment(ticket.id, author_id, body, public);
        (ticket.clone(), Change::TicketCreated(ticket))
    }

    fn push_comment(
        &mut self,
        ticket_id: u64,
        author_id: u64,
        body: &str,
        public: bool,
    ) -> SimComment {
        let comment = SimComment {
            id: self.next_comment_id,
            ticket_id,
            author_id,
            body: body.to_owned(),
            public,
            created_at: now_rfc3339(),
        };
        self.next_comment_id += 1;
        self.comments
            .entry(ticket_id)
            .or_default()
            .push(comment.clone());
        comment
    }

    /// Adds a comment; `None` when the ticket does not exist.
    pub fn add_comment(
        &mut self,
        ticket_id: u64,
        author_id: u64,
        body: &str,
        public: bool,
    ) -> Option<(SimComment, Change)> {
        let ticket = self.tickets.get(&ticket_id)?.clone();
        let author = self.users.get(&author_id)?.clone();
        let comment = self.push_comment(ticket_id, author_id, body, public);
        if let Some(t) = self.tickets.get_mut(&ticket_id) {
            t.updated_at = comment.created_at.clone();
        }
        Some((
            comment.clone(),
            Change::CommentAdded {
                ticket,
                comment,
                author,
            },
        ))
    }

    /// Adds a Help Center article; returns it with its id.
    pub fn add_article(&mut self, title: &str, body: &str) -> SimArticle {
        let id = self
            .articles
            .iter()
            .map(|a| a.id + 1)
            .max()
            .unwrap_or(crate::help_center::FIRST_ARTICLE_ID);
        let article = SimArticle {
            id,
            title: title.to_owned(),
            body: body.to_owned(),
            locale: "en-us".to_owned(),
        };
        self.articles.push(article.clone());
        article
    }

    pub fn record(&mut self, request: RecordedRequest) {
        if self.requests.len() >= MAX_RECORDED {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }

    /// Takes one use of the first fault matching the request.
    pub fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let idx = self.faults.iter().position(|f| {
            f.times > 0
                && path.starts_with(&f.path_prefix)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let fault = &mut self.faults[idx];
        fault.times -= 1;
        let out = fault.clone();
        if fault.times == 0 {
            self.faults.remove(idx);
        }
        Some(out)
    }
}
