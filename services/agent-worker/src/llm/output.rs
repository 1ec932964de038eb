//! The model's answer: one JSON object, checked against [`schema`] and a few
//! rules a schema cannot say (a reply needs a body, citations must be
//! articles the search returned), then turned into a [`Draft`]. The answer
//! can only describe an action on the ticket being drafted: it has no field
//! for a ticket id, a host or a requester.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use zengate_core::events::{Citation, FieldChanges};

use super::schema;
use crate::drafter::Draft;

/// Statuses a proposal may set (never `new` or `closed`).
pub const STATUSES: [&str; 4] = ["open", "pending", "hold", "solved"];
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const MAX_BODY_CHARS: u64 = 10_000;

/// The JSON schema of the answer, sent to the model and enforced.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["action", "reasons", "confidence"],
        "properties": {
            "action": {"type": "string", "enum": ["reply", "internal_note", "fields"]},
            "body": {"type": "string", "maxLength": MAX_BODY_CHARS},
            "fields": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "status": {"type": "string", "enum": STATUSES},
                    "priority": {"type": "string", "enum": PRIORITIES},
                    "add_tags": {
                        "type": "array",
                        "maxItems": 10,
                        "items": {"type": "string", "minLength": 1, "maxLength": 80},
                    },
                },
            },
            "reasons": {
                "type": "array",
                "minItems": 1,
                "maxItems": 10,
                "items": {"type": "string", "minLength": 1, "maxLength": 500},
            },
            "citations": {
                "type": "array",
                "maxItems": 10,
                "items": {"type": "string", "minLength": 1, "maxLength": 40},
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
    })
}

#[derive(Deserialize)]
struct Answer {
    action: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    fields: FieldChanges,
    reasons: Vec<String>,
    #[serde(default)]
    citations: Vec<String>,
    confidence: f64,
}

/// A valid answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub draft: Draft,
    pub reasons: Vec<String>,
    pub citations: Vec<Citation>,
    pub confidence_pct: u8,
}

/// The JSON object in `text`: the whole text, or the part from the first
/// `{` to the last `}` (models like to wrap JSON in prose or code fences).
fn json_object(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    let start = t.find('{')?;
    let end = t.rfind('}')?;
    serde_json::from_str(t.get(start..=end)?).ok()
}

fn tag_ok(tag: &str) -> bool {
    tag.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | ':'))
}

/// Parses and checks an answer; `seen` are the articles search returned in
/// this draft. The error lists every problem (shown to the model for its one
/// repair attempt).
pub fn parse(text: &str, seen: &BTreeMap<String, Citation>) -> Result<Parsed, Vec<String>> {
    let Some(mut value) = json_object(text) else {
        return Err(vec!["the answer is not a JSON object".to_owned()]);
    };
    // Strict structured output (and many models unprompted) send `null`
    // for an absent optional property.
    schema::drop_null_properties(&mut value);
    let mut problems = schema::validate(&schema(), &value);
    if !problems.is_empty() {
        return Err(problems);
    }
    let a: Answer = serde_json::from_value(value).map_err(|e| vec![e.to_string()])?;
    let body = a.body.filter(|b| !b.trim().is_empty());
    let draft = match (a.action.as_str(), body) {
        ("reply", Some(body)) => Some(Draft::Reply {
            body,
            fields: a.fields.clone(),
        }),
        ("internal_note", Some(body)) => Some(Draft::InternalNote {
            body,
            fields: a.fields.clone(),
        }),
        ("fields", None) if !a.fields.is_empty() => Some(Draft::UpdateFields {
            fields: a.fields.clone(),
        }),
        ("fields", None) => {
            problems.push("/fields: the fields action needs at least one change".to_owned());
            None
        }
        ("fields", Some(_)) => {
            problems.push("/body: the fields action takes no body".to_owned());
            None
        }
        (_, None) => {
            problems.push(format!("/body: a {} needs a non-empty body", a.action));
            None
        }
        _ => None,
    };
    for tag in &a.fields.add_tags {
        if !tag_ok(tag) {
            problems.push(format!(
                "/fields/add_tags: {tag:?} may only use letters, digits, _ - / :"
            ));
        }
    }
    let mut citations = Vec::new();
    for id in &a.citations {
        match seen.get(id) {
            Some(c) if !citations.contains(c) => citations.push(c.clone()),
            Some(_) => {}
            None => problems.push(format!(
                "/citations: article {id:?} was not returned by search_help_center"
            )),
        }
    }
    if a.reasons.iter().any(|r| r.trim().is_empty()) {
        problems.push("/reasons: reasons must not be blank".to_owned());
    }
    match draft {
        Some(draft) if problems.is_empty() => Ok(Parsed {
            draft,
            reasons: a.reasons,
            citations,
            confidence_pct: (a.confidence * 100.0).round().clamp(0.0, 100.0) as u8,
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> BTreeMap<String, Citation> {
        let mut m = BTreeMap::new();
        m.insert(
            "7".to_owned(),
            Citation {
                article_id: "7".into(),
                title: "Fire".into(),
                url: Some("https://acme.zendesk.com/hc/a/7".into()),
            },
        );
        m
    }

    #[test]
    fn accepts_a_reply_with_fenced_json_and_known_citations() {
        let text = "Here you go:\n```json\n{\"action\":\"reply\",\"body\":\"Unplug it.\",\"fields\":{\"status\":\"pending\"},\"reasons\":[\"safety\"],\"citations\":[\"7\"],\"confidence\":0.834}\n```";
        let p = parse(text, &seen()).unwrap();
        assert_eq!(
            p.draft,
            Draft::Reply {
                body: "Unplug it.".into(),
                fields: FieldChanges {
                    status: Some("pending".into()),
                    ..FieldChanges::default()
                }
            }
        );
        assert_eq!(p.confidence_pct, 83);
        assert_eq!(p.citations.len(), 1);
    }

    #[test]
    fn accepts_the_strict_form_with_null_for_absent_properties() {
        let text = r#"{"action":"internal_note","body":"Check the invoice.","fields":{"status":null,"priority":"high","add_tags":null},"reasons":["billing"],"citations":null,"confidence":0.5}"#;
        let p = parse(text, &seen()).unwrap();
        assert_eq!(
            p.draft,
            Draft::InternalNote {
                body: "Check the invoice.".into(),
                fields: FieldChanges {
                    priority: Some("high".into()),
                    ..FieldChanges::default()
                }
            }
        );
        assert!(p.citations.is_empty());
        let errors = parse(
            r#"{"action":null,"body":"b","reasons":["x"],"confidence":1}"#,
            &seen(),
        )
        .unwrap_err();
        assert_eq!(errors, vec!["/: missing required property \"action\""]);
    }

    #[test]
    fn refuses_what_the_schema_or_rules_forbid() {
        for (text, expect) in [
            ("not json", "not a JSON object"),
            (
                r#"{"action":"close_all","reasons":["x"],"confidence":1}"#,
                "/action",
            ),
            (
                r#"{"action":"reply","reasons":["x"],"confidence":1}"#,
                "/body",
            ),
            (
                r#"{"action":"reply","body":"b","ticket_id":"9","reasons":["x"],"confidence":1}"#,
                "ticket_id",
            ),
            (
                r#"{"action":"fields","fields":{"status":"closed"},"reasons":["x"],"confidence":1}"#,
                "/fields/status",
            ),
            (
                r#"{"action":"fields","fields":{},"reasons":["x"],"confidence":1}"#,
                "at least one change",
            ),
            (
                r#"{"action":"reply","body":"b","reasons":["x"],"citations":["99"],"confidence":1}"#,
                "not returned",
            ),
            (
                r#"{"action":"reply","body":"b","reasons":[],"confidence":1}"#,
                "/reasons",
            ),
            (
                r#"{"action":"reply","body":"b","reasons":["x"],"confidence":7}"#,
                "/confidence",
            ),
            (
                r#"{"action":"fields","fields":{"add_tags":["a b"]},"reasons":["x"],"confidence":1}"#,
                "add_tags",
            ),
        ] {
            let errors = parse(text, &seen()).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains(expect)),
                "{text}: {errors:?}"
            );
        }
    }
}
