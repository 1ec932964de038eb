//! Subject derivation for provider events (DESIGN.md, "Subjects"):
//! `zendesk.<account_id>.<resource>.<resource_id>.<action>`.
//!
//! Every token is `[A-Za-z0-9_-]+`. Input never reaches a subject raw: a `.`,
//! `*`, `>` or space would change which subscribers a message reaches.

/// Subject prefix of the provider-event stream.
pub const ZENDESK_PREFIX: &str = "zendesk";
/// Prefix of Zendesk's event type strings.
pub const EVENT_TYPE_PREFIX: &str = "zen:event-type:";

/// Maps arbitrary text to a safe subject token: allowed characters are kept,
/// everything else becomes `_`; an empty input becomes `_`.
pub fn token(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().max(1));
    push_token(&mut out, raw);
    out
}

/// Appends [`token`]`(raw)` to `out`.
fn push_token(out: &mut String, raw: &str) {
    if raw.is_empty() {
        out.push('_');
        return;
    }
    out.extend(raw.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '_'
        }
    }));
}

/// True when `s` is already a safe token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Splits `zen:event-type:<resource>.<action...>` into safe `(resource, action)`
/// tokens: the action is the rest with `.` replaced by `_`. A type without the
/// prefix is kept as an `unknown` resource so future families still flow.
pub fn resource_and_action(event_type: &str) -> (String, String) {
    match event_type.strip_prefix(EVENT_TYPE_PREFIX) {
        Some(rest) => match rest.split_once('.') {
            Some((resource, action)) => (token(resource), token(&action.replace('.', "_"))),
            None => (token(rest), "_".to_owned()),
        },
        None => ("unknown".to_owned(), token(&event_type.replace('.', "_"))),
    }
}

/// The id in `zen:<resource>:<id>` when the resource matches and the id is a
/// canonical positive decimal.
pub fn subject_resource_id(subject: &str, resource: &str) -> Option<u64> {
    let rest = subject.strip_prefix("zen:")?;
    let (res, id) = rest.split_once(':')?;
    if res != resource {
        return None;
    }
    crate::ids::parse_canonical_id(id)
}

/// Builds `zendesk.<account>.<resource>.<resource_id|_>.<action>`.
pub fn provider_subject(
    account_id: u64,
    resource: &str,
    resource_id: Option<u64>,
    action: &str,
) -> String {
    use std::fmt::Write as _;
    // Written into one buffer: this runs for every event the ingress takes.
    let mut s = String::with_capacity(ZENDESK_PREFIX.len() + resource.len() + action.len() + 48);
    let _ = write!(s, "{ZENDESK_PREFIX}.{account_id}.");
    push_token(&mut s, resource);
    s.push('.');
    match resource_id {
        Some(id) => {
            let _ = write!(s, "{id}");
        }
        None => s.push('_'),
    }
    s.push('.');
    push_token(&mut s, action);
    s
}

/// Subject filter for every event of one ticket.
pub fn ticket_filter(account_id: u64, ticket_id: u64) -> String {
    format!("{ZENDESK_PREFIX}.{account_id}.ticket.{ticket_id}.>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_examples() {
        assert_eq!(
            resource_and_action("zen:event-type:ticket.comment_added"),
            ("ticket".into(), "comment_added".into())
        );
        assert_eq!(
            resource_and_action("zen:event-type:messaging.ai_handoff.requested"),
            ("messaging".into(), "ai_handoff_requested".into())
        );
        assert_eq!(
            provider_subject(
                9_223_372_036_854_775_807,
                "ticket",
                Some(7_123_498_765),
                "created"
            ),
            "zendesk.9223372036854775807.ticket.7123498765.created"
        );
        assert_eq!(
            provider_subject(42, "user", Some(441), "created"),
            "zendesk.42.user.441.created"
        );
        assert_eq!(
            provider_subject(42, "organization", None, "x"),
            "zendesk.42.organization._.x"
        );
    }

    #[test]
    fn hostile_tokens_are_mapped() {
        let (r, a) = resource_and_action("zen:event-type:tick et.*.>");
        assert_eq!((r.as_str(), a.as_str()), ("tick_et", "___"));
        assert_eq!(
            resource_and_action("nope.x"),
            ("unknown".into(), "nope_x".into())
        );
        assert_eq!(
            resource_and_action("zen:event-type:"),
            ("_".into(), "_".into())
        );
        assert_eq!(token("é"), "_");
        assert_eq!(
            provider_subject(1, "tick.et", Some(2), "a b>"),
            "zendesk.1.tick_et.2.a_b_"
        );
        assert_eq!(provider_subject(1, "", None, ""), "zendesk.1._._._");
        assert!(is_token(&token("a.b*c>d e\u{0}")));
    }

    #[test]
    fn subject_ids() {
        assert_eq!(subject_resource_id("zen:ticket:5158", "ticket"), Some(5158));
        assert_eq!(subject_resource_id("zen:ticket:05158", "ticket"), None);
        assert_eq!(subject_resource_id("zen:user:5158", "ticket"), None);
        assert_eq!(subject_resource_id("zen:ticket:5.1", "ticket"), None);
        assert_eq!(subject_resource_id("ticket:5", "ticket"), None);
    }
}
