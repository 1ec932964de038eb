//! Zendesk's JSON shapes, parsed without float round trips.
//!
//! Ids are read straight into `u64` (serde_json keeps integers exact), and an
//! id spelled as a JSON string is accepted when it is a canonical positive
//! decimal. Floats, negatives and zero are refused rather than rounded.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use zengate_core::ids::parse_canonical_id;

use crate::model::{Article, Comment, NewTicket, Ticket, TicketUpdate, User};

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a positive integer id (number or decimal string)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v == 0 {
            Err(E::custom("id 0 is not a valid Zendesk id"))
        } else {
            Ok(v)
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v)
            .map_err(|_| E::custom("negative id"))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_canonical_id(v)
            .ok_or_else(|| E::custom("id string is not a canonical positive decimal"))
    }
}

pub(crate) fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(IdVisitor)
}

pub(crate) fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a positive integer id or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            de_id(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

fn lower(s: Option<String>) -> Option<String> {
    s.map(|v| v.to_lowercase())
}

#[derive(Deserialize)]
pub(crate) struct TicketEnvelope {
    pub ticket: WireTicket,
}

#[derive(Deserialize)]
pub(crate) struct WireTicket {
    #[serde(deserialize_with = "de_id")]
    id: u64,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    priority: Option<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_opt_id")]
    requester_id: Option<u64>,
    #[serde(default)]
    via: Option<Via>,
}

#[derive(Deserialize)]
struct Via {
    #[serde(default)]
    channel: Option<serde_json::Value>,
}

impl From<WireTicket> for Ticket {
    fn from(t: WireTicket) -> Self {
        // `via.channel` is a string in the REST API but a number in some
        // older payloads; keep either spelling as text.
        let channel = t.via.and_then(|v| v.channel).and_then(|c| match c {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        Ticket {
            id: t.id,
            subject: t.subject,
            description: t.description,
            status: lower(t.status),
            priority: lower(t.priority),
            tags: t.tags.unwrap_or_default(),
            requester_id: t.requester_id,
            channel,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CommentsPage {
    #[serde(default)]
    pub comments: Vec<WireComment>,
    #[serde(default)]
    pub meta: Option<PageMeta>,
    /// Sideloaded with `include=users`.
    #[serde(default)]
    pub users: Vec<WireUser>,
}

#[derive(Deserialize)]
pub(crate) struct PageMeta {
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub after_cursor: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct WireComment {
    #[serde(deserialize_with = "de_id")]
    id: u64,
    #[serde(deserialize_with = "de_id")]
    author_id: u64,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    plain_body: Option<String>,
    #[serde(default)]
    public: Option<bool>,
    #[serde(default)]
    created_at: Option<String>,
}

impl From<WireComment> for Comment {
    fn from(c: WireComment) -> Self {
        Comment {
            id: c.id,
            author_id: c.author_id,
            body: c.body.or(c.plain_body).unwrap_or_default(),
            // Zendesk always sends `public`; if it ever does not, treat the
            // comment as public, which is the more careful reading for a
            // drafter that might quote it.
            public: c.public.unwrap_or(true),
            created_at: c.created_at,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct UserEnvelope {
    pub user: WireUser,
}

#[derive(Deserialize)]
pub(crate) struct WireUser {
    #[serde(deserialize_with = "de_id")]
    id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

impl From<WireUser> for User {
    fn from(u: WireUser) -> Self {
        User {
            id: u.id,
            name: u.name.unwrap_or_default(),
            email: u.email,
            role: lower(u.role),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ArticleSearchPage {
    #[serde(default)]
    pub results: Vec<WireArticle>,
}

#[derive(Deserialize)]
pub(crate) struct WireArticle {
    #[serde(deserialize_with = "de_id")]
    id: u64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    snippet: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

/// Removes markup (`<em>` highlights in snippets) so the text is plain.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

impl From<WireArticle> for Article {
    fn from(a: WireArticle) -> Self {
        Article {
            id: a.id,
            title: a.title.unwrap_or_default(),
            url: a.html_url,
            snippet: a.snippet.as_deref().map(strip_tags).unwrap_or_default(),
            body: a.body,
        }
    }
}

/// Zendesk's error body: `{"error": "...", "description": "..."}`, where some
/// endpoints send `error` as `{"title", "message"}` instead.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let (error, mut description) = match v.get("error") {
        Some(serde_json::Value::String(s)) => (Some(s.clone()), None),
        Some(serde_json::Value::Object(o)) => (
            o.get("title").and_then(|t| t.as_str()).map(str::to_owned),
            o.get("message").and_then(|t| t.as_str()).map(str::to_owned),
        ),
        _ => (None, None),
    };
    if let Some(d) = v.get("description").and_then(|d| d.as_str()) {
        description = Some(d.to_owned());
    }
    (error, description)
}

#[derive(Serialize)]
struct CommentBody<'a> {
    body: &'a str,
    public: bool,
}

#[derive(Serialize)]
struct RequesterBody<'a> {
    name: &'a str,
    email: &'a str,
}

#[derive(Serialize)]
struct CreateTicketInner<'a> {
    subject: &'a str,
    comment: CommentBody<'a>,
    requester: RequesterBody<'a>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
}

#[derive(Serialize)]
struct CreateTicketBody<'a> {
    ticket: CreateTicketInner<'a>,
}

pub(crate) fn create_body(t: &NewTicket) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&CreateTicketBody {
        ticket: CreateTicketInner {
            subject: &t.subject,
            comment: CommentBody {
                body: &t.comment_body,
                public: t.public,
            },
            requester: RequesterBody {
                name: &t.requester_name,
                email: &t.requester_email,
            },
            tags: &t.tags,
        },
    })
}

#[derive(Serialize)]
struct UpdateTicketInner<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<CommentBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    additional_tags: &'a [String],
}

#[derive(Serialize)]
struct UpdateTicketBody<'a> {
    ticket: UpdateTicketInner<'a>,
}

pub(crate) fn update_body(u: &TicketUpdate) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&UpdateTicketBody {
        ticket: UpdateTicketInner {
            comment: u.comment.as_ref().map(|c| CommentBody {
                body: &c.body,
                public: c.public,
            }),
            status: u.status.as_ref().map(|s| s.to_lowercase()),
            priority: u.priority.as_ref().map(|s| s.to_lowercase()),
            additional_tags: &u.add_tags,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_above_2_pow_53_are_exact_as_numbers_and_strings() {
        let body = br#"{"ticket":{"id":9007199254740993,"requester_id":"18446744073709551615","status":"OPEN","priority":"Urgent","via":{"channel":"web"},"tags":null}}"#;
        let t: Ticket = serde_json::from_slice::<TicketEnvelope>(body)
            .unwrap()
            .ticket
            .into();
        assert_eq!(t.id, 9_007_199_254_740_993);
        assert_eq!(t.requester_id, Some(u64::MAX));
        assert_eq!(t.status.as_deref(), Some("open"));
        assert_eq!(t.priority.as_deref(), Some("urgent"));
        assert_eq!(t.channel.as_deref(), Some("web"));
        assert!(t.tags.is_empty());
    }

    #[test]
    fn bad_ids_are_refused() {
        for body in [
            r#"{"ticket":{"id":0}}"#,
            r#"{"ticket":{"id":-3}}"#,
            r#"{"ticket":{"id":9007199254740993.0}}"#,
            r#"{"ticket":{"id":"0012"}}"#,
            r#"{"ticket":{"id":"12a"}}"#,
            r#"{"ticket":{"id":18446744073709551616}}"#,
        ] {
            assert!(
                serde_json::from_str::<TicketEnvelope>(body).is_err(),
                "{body}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_positive_id_survives_as_number_or_string(id in 1u64..) {
            for body in [
                format!(r#"{{"ticket":{{"id":{id},"requester_id":{id}}}}}"#),
                format!(r#"{{"ticket":{{"id":"{id}","requester_id":"{id}"}}}}"#),
            ] {
                let t: Ticket = serde_json::from_str::<TicketEnvelope>(&body).unwrap().ticket.into();
                proptest::prop_assert_eq!(t.id, id);
                proptest::prop_assert_eq!(t.requester_id, Some(id));
            }
        }
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            parse_error_body(br#"{"error":"RecordNotFound","description":"Not found"}"#),
            (Some("RecordNotFound".into()), Some("Not found".into()))
        );
        assert_eq!(
            parse_error_body(br#"{"error":{"title":"Forbidden","message":"no"}}"#),
            (Some("Forbidden".into()), Some("no".into()))
        );
        assert_eq!(parse_error_body(b"<html>"), (None, None));
    }

    #[test]
    fn update_always_sends_public() {
        let u = TicketUpdate {
            comment: Some(crate::CommentInput {
                body: "hi".into(),
                public: false,
            }),
            status: Some("PENDING".into()),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_slice(&update_body(&u).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ticket":{"comment":{"body":"hi","public":false},"status":"pending"}})
        );
    }
}
