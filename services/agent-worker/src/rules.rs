//! The default drafter: an ordered list of rules from a TOML file. The first
//! rule whose conditions all hold proposes its action; no match, no proposal.
//!
//! Matching is plain case-insensitive substring/keyword comparison (no
//! regular expressions: operators write these files and a pathological
//! pattern must not stall a partition).

use std::path::Path;

use futures::future::BoxFuture;
use serde::Deserialize;
use zengate_core::events::{DraftInfo, FieldChanges};

use crate::drafter::{Draft, DraftError, Drafter, Proposal, TicketContext};

/// The rule set used when `WORKER_RULES_FILE` is unset.
pub const DEFAULT_RULES: &str = include_str!("../rules.default.toml");

/// `DraftInfo.drafter` of rules proposals.
pub const RULES_DRAFTER: &str = "rules";

/// Placeholders a template may use.
const PLACEHOLDERS: [&str; 5] = [
    "ticket.id",
    "ticket.subject",
    "ticket.status",
    "ticket.priority",
    "requester.name",
];

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules file {path}: {message}")]
    Read { path: String, message: String },
    #[error("invalid rules: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    Reply,
    InternalNote,
    UpdateFields,
}

/// One rule. Lists match when ANY entry matches; a rule matches when ALL its
/// non-empty conditions match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Event actions this rule applies to (`created`, `comment_added`); empty = both.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub subject_contains: Vec<String>,
    /// Matched against the latest customer text (comment or description).
    #[serde(default)]
    pub body_contains: Vec<String>,
    /// Matched against subject and latest text together.
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub priority: Vec<String>,
    #[serde(default)]
    pub channel: Vec<String>,
    pub action: RuleAction,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub add_tags: Vec<String>,
    #[serde(default)]
    pub set_status: Option<String>,
    #[serde(default)]
    pub set_priority: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<Rule>,
}

/// Rules-based drafter.
#[derive(Debug, Clone)]
pub struct RulesDrafter {
    name: String,
    rules: Vec<Rule>,
}

impl RulesDrafter {
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile =
            toml::from_str(text).map_err(|e| RulesError::Invalid(e.to_string()))?;
        for rule in &file.rules {
            validate(rule)?;
        }
        Ok(Self {
            name: file.name.unwrap_or_else(|| "rules".to_owned()),
            rules: file.rules,
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text)
    }

    pub fn builtin() -> Result<Self, RulesError> {
        Self::from_toml(DEFAULT_RULES)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first matching rule's proposal.
    pub fn evaluate(&self, ctx: &TicketContext) -> Option<Proposal> {
        let rule = self.rules.iter().find(|r| matches(r, ctx))?;
        let fields = FieldChanges {
            status: rule.set_status.clone(),
            priority: rule.set_priority.clone(),
            add_tags: rule.add_tags.clone(),
        };
        let body = rule.template.as_deref().map(|t| render(t, ctx));
        let draft = match (rule.action, body) {
            (RuleAction::Reply, Some(body)) => Draft::Reply { body, fields },
            (RuleAction::InternalNote, Some(body)) => Draft::InternalNote { body, fields },
            _ => Draft::UpdateFields { fields },
        };
        Some(Proposal {
            draft,
            reasons: vec![format!("rule {}: {}", rule.name, rule.reason)],
            info: Some(DraftInfo {
                drafter: RULES_DRAFTER.to_owned(),
                ..DraftInfo::default()
            }),
        })
    }
}

impl Drafter for RulesDrafter {
    fn name(&self) -> &str {
        &self.name
    }

    fn draft<'a>(
        &'a self,
        ctx: &'a TicketContext,
    ) -> BoxFuture<'a, Result<Option<Proposal>, DraftError>> {
        Box::pin(async move { Ok(self.evaluate(ctx)) })
    }
}

fn validate(rule: &Rule) -> Result<(), RulesError> {
    let bad = |m: String| RulesError::Invalid(format!("rule {:?}: {m}", rule.name));
    if rule.name.trim().is_empty() {
        return Err(RulesError::Invalid("a rule needs a name".to_owned()));
    }
    match (rule.action, &rule.template) {
        (RuleAction::Reply | RuleAction::InternalNote, None) => {
            return Err(bad("reply and internal_note need a template".to_owned()));
        }
        (RuleAction::UpdateFields, _)
            if rule.add_tags.is_empty()
                && rule.set_status.is_none()
                && rule.set_priority.is_none() =>
        {
            return Err(bad(
                "update_fields needs add_tags, set_status or set_priority".to_owned(),
            ));
        }
        _ => {}
    }
    for e in &rule.events {
        if e != "created" && e != "comment_added" {
            return Err(bad(format!("unknown event {e:?}")));
        }
    }
    if let Some(t) = &rule.template {
        let mut rest = t.as_str();
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| bad("unclosed {{ in template".to_owned()))?;
            let name = after[..end].trim();
            if !PLACEHOLDERS.contains(&name) {
                return Err(bad(format!(
                    "unknown placeholder {{{{{name}}}}} (known: {})",
                    PLACEHOLDERS.join(", ")
                )));
            }
            rest = &after[end + 2..];
        }
    }
    Ok(())
}

fn any_in(needles: &[String], haystack: &str) -> bool {
    let hay = haystack.to_lowercase();
    needles.iter().any(|n| hay.contains(&n.to_lowercase()))
}

fn any_eq(wanted: &[String], value: Option<&str>) -> bool {
    value.is_some_and(|v| wanted.iter().any(|w| w.eq_ignore_ascii_case(v)))
}

fn matches(rule: &Rule, ctx: &TicketContext) -> bool {
    let subject = ctx.ticket.subject.as_deref().unwrap_or("");
    let text = ctx.latest_text();
    (rule.events.is_empty() || rule.events.contains(&ctx.event.action))
        && (rule.subject_contains.is_empty() || any_in(&rule.subject_contains, subject))
        && (rule.body_contains.is_empty() || any_in(&rule.body_contains, text))
        && (rule.keywords.is_empty() || any_in(&rule.keywords, &format!("{subject}\n{text}")))
        && (rule.tags.is_empty()
            || rule.tags.iter().any(|t| {
                ctx.ticket
                    .tags
                    .iter()
                    .any(|have| have.eq_ignore_ascii_case(t))
            }))
        && (rule.priority.is_empty() || any_eq(&rule.priority, ctx.ticket.priority.as_deref()))
        && (rule.channel.is_empty() || any_eq(&rule.channel, ctx.ticket.channel.as_deref()))
}

/// Fills `{{…}}` placeholders. Values are inserted once (never re-scanned),
/// so ticket text cannot smuggle in further placeholders.
pub fn render(template: &str, ctx: &TicketContext) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let value = match after[..end].trim() {
            "ticket.id" => ctx.ticket.id.to_string(),
            "ticket.subject" => ctx.ticket.subject.clone().unwrap_or_default(),
            "ticket.status" => ctx.ticket.status.clone().unwrap_or_default(),
            "ticket.priority" => ctx.ticket.priority.clone().unwrap_or_default(),
            "requester.name" => ctx
                .requester_name
                .clone()
                .unwrap_or_else(|| "there".to_owned()),
            other => format!("{{{{{other}}}}}"),
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_and_example_rules_load() {
        let d = RulesDrafter::builtin().unwrap();
        assert!(!d.rules().is_empty());
        let example = include_str!("../rules.example.toml");
        RulesDrafter::from_toml(example).unwrap();
    }

    #[test]
    fn refuses_bad_rules() {
        let unknown = r#"
            [[rule]]
            name = "x"
            action = "reply"
            template = "Hi {{requester.email}}"
            reason = "r"
        "#;
        assert!(RulesDrafter::from_toml(unknown).is_err());
        let no_template = r#"
            [[rule]]
            name = "x"
            action = "internal_note"
            reason = "r"
        "#;
        assert!(RulesDrafter::from_toml(no_template).is_err());
        let typo = r#"
            [[rule]]
            name = "x"
            action = "reply"
            template = "hi"
            reason = "r"
            subjet_contains = ["a"]
        "#;
        assert!(RulesDrafter::from_toml(typo).is_err());
    }
}
