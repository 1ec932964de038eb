//! Zendesk's common event envelope, validated after the signature check.
//!
//! Unknown fields and unknown event types are kept: the exact signed bytes are
//! what gets published, this type only extracts what routing needs and refuses
//! what would make routing ambiguous.

mod scan;

use crate::ids::parse_canonical_id;
use crate::json::{self, Json, JsonError, Number};
use crate::subject;

/// Longest event id accepted; it becomes part of a NATS header and a Redis key.
pub const MAX_EVENT_ID_LEN: usize = 255;

/// The routing part of a verified delivery: everything the ingress needs to
/// publish it and every service needs to route it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub account_id: u64,
    /// Zendesk's event id: the signed deduplication key.
    pub id: String,
    pub event_type: String,
    pub subject: String,
    pub time: String,
    pub zendesk_event_version: String,
    /// Subject token derived from the type (`ticket`, `user`, ...).
    pub resource: String,
    /// Subject token derived from the type (`created`, `comment_added`, ...).
    pub action: String,
    /// Id from `subject` when it names the same resource with a decimal id.
    pub resource_id: Option<u64>,
}

/// A verified delivery with its payload trees, for services that read the
/// event itself (the agent worker).
#[derive(Debug, Clone)]
pub struct Envelope {
    pub head: Head,
    pub detail: Json,
    pub event: Json,
}

/// Why an envelope is unusable. `reason()` is a stable label for metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("body must be a JSON object")]
    NotObject,
    #[error("required field `{0}` is missing")]
    Missing(&'static str),
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("field `account_id` must be a positive integer literal")]
    BadAccountId,
    #[error("field `id` must be 1 to 255 visible ASCII characters")]
    BadEventId,
    #[error("ticket event `subject` must be `zen:ticket:<positive decimal id>`, found {0:?}")]
    BadTicketSubject(String),
    #[error("ticket event `detail.id` must be a canonical positive decimal")]
    BadTicketDetailId,
    #[error("ticket event `subject` id {subject} and `detail.id` {detail} disagree")]
    TicketIdMismatch { subject: String, detail: String },
}

impl EnvelopeError {
    pub fn reason(&self) -> &'static str {
        match self {
            EnvelopeError::Json(JsonError::NotUtf8) => "not_utf8",
            EnvelopeError::Json(JsonError::Syntax(_)) => "bad_json",
            EnvelopeError::NotObject
            | EnvelopeError::Missing(_)
            | EnvelopeError::WrongType { .. }
            | EnvelopeError::BadAccountId
            | EnvelopeError::BadEventId => "bad_envelope",
            EnvelopeError::BadTicketSubject(_)
            | EnvelopeError::BadTicketDetailId
            | EnvelopeError::TicketIdMismatch { .. } => "bad_ticket_identity",
        }
    }
}

fn required<'a>(root: &'a Json, field: &'static str) -> Result<&'a Json, EnvelopeError> {
    root.get(field).ok_or(EnvelopeError::Missing(field))
}

fn required_str<'a>(root: &'a Json, field: &'static str) -> Result<&'a str, EnvelopeError> {
    let v = required(root, field)?;
    v.as_str().ok_or(EnvelopeError::WrongType {
        field,
        expected: "a string",
        found: v.kind(),
    })
}

/// Moves object member `field` out of `root` (the tree is not needed after
/// parsing, so the subtree is taken rather than copied).
fn take_object(root: &mut Json, field: &'static str) -> Result<Json, EnvelopeError> {
    let v = match root {
        Json::Object(members) => members.iter_mut().find(|(k, _)| k == field).map(|(_, v)| v),
        _ => None,
    }
    .ok_or(EnvelopeError::Missing(field))?;
    if v.is_object() {
        Ok(std::mem::replace(v, Json::Null))
    } else {
        Err(EnvelopeError::WrongType {
            field,
            expected: "an object",
            found: v.kind(),
        })
    }
}

impl Envelope {
    /// Parses and validates a verified body into its head and payload trees.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let mut root = json::parse(body)?;
        if !root.is_object() {
            return Err(EnvelopeError::NotObject);
        }
        let account_id = match required(&root, "account_id")? {
            Json::Number(Number::Unsigned(n)) if *n > 0 => *n,
            _ => return Err(EnvelopeError::BadAccountId),
        };
        let id = required_str(&root, "id")?;
        check_event_id(id)?;
        let id = id.to_owned();
        let event_type = required_str(&root, "type")?.to_owned();
        let subject_field = required_str(&root, "subject")?.to_owned();
        let time = required_str(&root, "time")?.to_owned();
        let zendesk_event_version = required_str(&root, "zendesk_event_version")?.to_owned();
        let detail = take_object(&mut root, "detail")?;
        let event = take_object(&mut root, "event")?;
        let detail_id = match detail.get("id") {
            Some(Json::String(s)) => DetailId::Text(s),
            Some(Json::Number(Number::Unsigned(n))) => DetailId::Unsigned(*n),
            _ => DetailId::Other,
        };
        let head = Head::build(Fields {
            account_id,
            id: &id,
            event_type: &event_type,
            subject: &subject_field,
            time: &time,
            zendesk_event_version: &zendesk_event_version,
            detail_id,
        })?;
        Ok(Self {
            head,
            detail,
            event,
        })
    }
}

/// The top-level values a head is built from, however they were read.
struct Fields<'a> {
    account_id: u64,
    id: &'a str,
    event_type: &'a str,
    subject: &'a str,
    time: &'a str,
    zendesk_event_version: &'a str,
    detail_id: DetailId<'a>,
}

/// `detail.id` as far as ticket identity cares.
#[derive(Debug, Clone, Copy)]
enum DetailId<'a> {
    Text(&'a str),
    Unsigned(u64),
    Other,
}

fn check_event_id(id: &str) -> Result<(), EnvelopeError> {
    if id.is_empty() || id.len() > MAX_EVENT_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EnvelopeError::BadEventId);
    }
    Ok(())
}

impl Head {
    /// Validates a verified body and reads its head. Equivalent to
    /// `Envelope::parse(body).map(|e| e.head)` (same acceptance, same
    /// errors), but a well-formed body is checked in one pass without
    /// building its tree; anything unusual is left to the tree to judge.
    pub fn check(body: &[u8]) -> Result<Self, EnvelopeError> {
        match scan::head(body) {
            Some(head) => Ok(head),
            None => Envelope::parse(body).map(|e| e.head),
        }
    }

    fn build(f: Fields<'_>) -> Result<Self, EnvelopeError> {
        check_event_id(f.id)?;
        let (resource, action) = subject::resource_and_action(f.event_type);
        let resource_id = if resource == "ticket" {
            Some(ticket_identity(f.subject, f.detail_id)?)
        } else {
            subject::subject_resource_id(f.subject, &resource)
        };
        Ok(Self {
            account_id: f.account_id,
            id: f.id.to_owned(),
            event_type: f.event_type.to_owned(),
            subject: f.subject.to_owned(),
            time: f.time.to_owned(),
            zendesk_event_version: f.zendesk_event_version.to_owned(),
            resource,
            action,
            resource_id,
        })
    }

    /// The ticket id for ticket events.
    pub fn ticket_id(&self) -> Option<u64> {
        if self.resource == "ticket" {
            self.resource_id
        } else {
            None
        }
    }

    /// `zendesk.<account>.<resource>.<resource_id>.<action>`.
    pub fn nats_subject(&self) -> String {
        subject::provider_subject(
            self.account_id,
            &self.resource,
            self.resource_id,
            &self.action,
        )
    }

    /// `Nats-Msg-Id`: `<account_id>:<event id>`.
    pub fn msg_id(&self) -> String {
        format!("{}:{}", self.account_id, self.id)
    }
}

/// A ticket event must name the same canonical id in `subject` and `detail.id`.
fn ticket_identity(subject_field: &str, detail_id: DetailId<'_>) -> Result<u64, EnvelopeError> {
    let from_subject = subject_field
        .strip_prefix("zen:ticket:")
        .and_then(parse_canonical_id)
        .ok_or_else(|| EnvelopeError::BadTicketSubject(subject_field.to_owned()))?;
    let from_detail = match detail_id {
        DetailId::Text(s) => parse_canonical_id(s),
        DetailId::Unsigned(n) if n > 0 => Some(n),
        _ => None,
    }
    .ok_or(EnvelopeError::BadTicketDetailId)?;
    if from_subject != from_detail {
        return Err(EnvelopeError::TicketIdMismatch {
            subject: from_subject.to_string(),
            detail: from_detail.to_string(),
        });
    }
    Ok(from_subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(account: &str, subject: &str, detail_id: &str, ty: &str) -> Vec<u8> {
        format!(
            r#"{{"account_id": {account}, "id": "cbe4028c-1", "type": "{ty}", "subject": "{subject}",
               "time": "2025-01-08T10:12:07.672717030Z", "zendesk_event_version": "2022-11-06",
               "detail": {{"id": {detail_id}, "subject": "Help"}}, "event": {{}}, "future_field": [1,2]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn ticket_created() {
        let e = Envelope::parse(&body(
            "9223372036854775807",
            "zen:ticket:7123498765",
            "\"7123498765\"",
            "zen:event-type:ticket.created",
        ))
        .unwrap();
        assert_eq!(
            e.head.nats_subject(),
            "zendesk.9223372036854775807.ticket.7123498765.created"
        );
        assert_eq!(e.head.msg_id(), "9223372036854775807:cbe4028c-1");
        assert_eq!(e.head.ticket_id(), Some(7_123_498_765));
    }

    #[test]
    fn ticket_identity_rules() {
        let ty = "zen:event-type:ticket.comment_added";
        assert!(Envelope::parse(&body("1", "zen:ticket:5", "5", ty)).is_ok());
        assert!(matches!(
            Envelope::parse(&body("1", "zen:ticket:5", "\"6\"", ty)),
            Err(EnvelopeError::TicketIdMismatch { .. })
        ));
        assert!(matches!(
            Envelope::parse(&body("1", "zen:ticket:05", "\"5\"", ty)),
            Err(EnvelopeError::BadTicketSubject(_))
        ));
        assert!(matches!(
            Envelope::parse(&body("1", "zen:ticket:5", "\"05\"", ty)),
            Err(EnvelopeError::BadTicketDetailId)
        ));
        assert!(matches!(
            Envelope::parse(&body("1", "zen:ticket:5", "5.0", ty)),
            Err(EnvelopeError::BadTicketDetailId)
        ));
    }

    #[test]
    fn account_id_literal() {
        let ty = "zen:event-type:user.created";
        for bad in ["0", "-1", "1.0", "1e3", "\"1\"", "18446744073709551616"] {
            assert!(
                matches!(
                    Envelope::parse(&body(bad, "zen:user:1", "1", ty)),
                    Err(EnvelopeError::BadAccountId)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_types_flow() {
        let e = Envelope::parse(&body(
            "42",
            "zen:messaging:x",
            "1",
            "zen:event-type:messaging.ai_handoff.requested",
        ))
        .unwrap();
        assert_eq!(
            e.head.nats_subject(),
            "zendesk.42.messaging._.ai_handoff_requested"
        );
    }

    #[test]
    fn missing_and_wrong_types() {
        let e = Envelope::parse(br#"{"account_id": 1}"#).unwrap_err();
        assert_eq!(e, EnvelopeError::Missing("id"));
        assert_eq!(
            Envelope::parse(b"[]").unwrap_err(),
            EnvelopeError::NotObject
        );
        let b = br#"{"account_id":1,"id":"x","type":"t","subject":"s","time":"t","zendesk_event_version":"v","detail":[],"event":{}}"#;
        assert!(matches!(
            Envelope::parse(b).unwrap_err(),
            EnvelopeError::WrongType {
                field: "detail",
                ..
            }
        ));
        let b = br#"{"account_id":1,"id":"a b","type":"t","subject":"s","time":"t","zendesk_event_version":"v","detail":{},"event":{}}"#;
        assert_eq!(Envelope::parse(b).unwrap_err(), EnvelopeError::BadEventId);
    }
}
