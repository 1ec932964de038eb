//! The ingress's fast path: reads an envelope's head in one pass over the
//! body, borrowing strings from it and building no tree, while checking what
//! the tree would (syntax, and no key repeated within an object).
//!
//! It only ever answers "certainly fine, here is the head" or "not sure":
//! a repeated key (which the tree accepts when both values are equal), a
//! value of an unexpected kind, a syntax error or a failed routing rule all
//! give `None`, and the caller lets `Envelope::parse` decide, so both paths
//! accept and refuse exactly the same bodies with the same errors.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{DetailId, Fields, Head};

/// Keys an object may have before its duplicate check switches from a
/// linear scan to a hash set (hostile bodies with huge objects stay linear
/// in time).
const LINEAR_KEYS: usize = 16;

/// The head of `body` when the one-pass read is conclusive.
pub(super) fn head(body: &[u8]) -> Option<Head> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mut keys = Vec::new();
    let top = Root { keys: &mut keys }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    let fields = Fields {
        account_id: top.account_id?,
        id: top.id.as_deref()?,
        event_type: top.event_type.as_deref()?,
        subject: top.subject.as_deref()?,
        time: top.time.as_deref()?,
        zendesk_event_version: top.zendesk_event_version.as_deref()?,
        detail_id: match top.detail_id.as_ref()? {
            Scalar::Text(s) => DetailId::Text(s),
            Scalar::Unsigned(n) => DetailId::Unsigned(*n),
            Scalar::Other => DetailId::Other,
        },
    };
    top.event.then_some(())?;
    Head::build(fields).ok()
}

/// Gives up on the one-pass read (the tree decides).
fn inconclusive<E: de::Error>() -> E {
    E::custom("")
}

/// A scalar worth keeping: strings borrow from the body unless escaped.
#[derive(Debug)]
enum Scalar<'de> {
    Text(Cow<'de, str>),
    Unsigned(u64),
    Other,
}

/// What a value turned out to be, as far as the head cares.
#[derive(Debug)]
enum Seen<'de> {
    Scalar(Scalar<'de>),
    /// An object, with its `id` member when that is a scalar.
    Object(Option<Scalar<'de>>),
    Array,
}

/// The top-level members the head is read from.
#[derive(Default)]
struct Top<'de> {
    account_id: Option<u64>,
    id: Option<Cow<'de, str>>,
    event_type: Option<Cow<'de, str>>,
    subject: Option<Cow<'de, str>>,
    time: Option<Cow<'de, str>>,
    zendesk_event_version: Option<Cow<'de, str>>,
    /// `Some` once `detail` was seen as an object: its `id` member.
    detail_id: Option<Scalar<'de>>,
    /// `event` was seen as an object.
    event: bool,
}

/// Object keys seen so far, innermost object last; each object checks its
/// own keys from its mark on and truncates back when it ends.
type Keys<'de> = Vec<Cow<'de, str>>;

/// Tracks one object's keys: a linear scan of the shared stack while the
/// object is small, a hash set beyond that.
struct Members<'de> {
    mark: usize,
    large: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Members<'de> {
    fn new(keys: &Keys<'de>) -> Self {
        Self {
            mark: keys.len(),
            large: None,
        }
    }

    /// Records `key`; false when the object already has it.
    fn insert(&mut self, keys: &mut Keys<'de>, key: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.large {
            return set.insert(key);
        }
        if keys[self.mark..].contains(&key) {
            return false;
        }
        keys.push(key);
        if keys.len() - self.mark > LINEAR_KEYS {
            self.large = Some(keys.drain(self.mark..).collect());
        }
        true
    }

    fn end(self, keys: &mut Keys<'de>) {
        keys.truncate(self.mark);
    }
}

struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The document: must be an object; reads the head's members.
struct Root<'k, 'de> {
    keys: &'k mut Keys<'de>,
}

impl<'de> DeserializeSeed<'de> for Root<'_, 'de> {
    type Value = Top<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Root<'_, 'de> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut top = Top::default();
        let mut members = Members::new(self.keys);
        while let Some(key) = map.next_key_seed(Key)? {
            let field = match &*key {
                "account_id" => Field::AccountId,
                "id" => Field::Id,
                "type" => Field::Type,
                "subject" => Field::Subject,
                "time" => Field::Time,
                "zendesk_event_version" => Field::Version,
                "detail" => Field::Detail,
                "event" => Field::Event,
                _ => Field::Other,
            };
            if !members.insert(self.keys, key) {
                return Err(inconclusive());
            }
            let keep = !matches!(field, Field::Other);
            let seen = map.next_value_seed(Value {
                keys: self.keys,
                keep,
            })?;
            match (field, seen) {
                (Field::AccountId, Seen::Scalar(Scalar::Unsigned(n))) if n > 0 => {
                    top.account_id = Some(n);
                }
                (Field::Id, Seen::Scalar(Scalar::Text(s))) => top.id = Some(s),
                (Field::Type, Seen::Scalar(Scalar::Text(s))) => top.event_type = Some(s),
                (Field::Subject, Seen::Scalar(Scalar::Text(s))) => top.subject = Some(s),
                (Field::Time, Seen::Scalar(Scalar::Text(s))) => top.time = Some(s),
                (Field::Version, Seen::Scalar(Scalar::Text(s))) => {
                    top.zendesk_event_version = Some(s);
                }
                (Field::Detail, Seen::Object(id)) => {
                    top.detail_id = Some(id.unwrap_or(Scalar::Other));
                }
                (Field::Event, Seen::Object(_)) => top.event = true,
                (Field::Other, _) => {}
                _ => return Err(inconclusive()),
            }
        }
        members.end(self.keys);
        Ok(top)
    }
}

#[derive(Clone, Copy)]
enum Field {
    AccountId,
    Id,
    Type,
    Subject,
    Time,
    Version,
    Detail,
    Event,
    Other,
}

/// Any value below the top: checked, kept only as far as [`Seen`] says.
struct Value<'k, 'de> {
    keys: &'k mut Keys<'de>,
    /// Keep a string's text (a head field or an `id`); other strings are
    /// only checked, so an escaped one costs no copy.
    keep: bool,
}

impl<'de> DeserializeSeed<'de> for Value<'_, 'de> {
    type Value = Seen<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_, 'de> {
    type Value = Seen<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Seen::Scalar(Scalar::Other))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Seen::Scalar(Scalar::Other))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Seen::Scalar(Scalar::Unsigned(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Seen::Scalar(match u64::try_from(v) {
            Ok(n) => Scalar::Unsigned(n),
            Err(_) => Scalar::Other,
        }))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Seen::Scalar(Scalar::Other))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Seen::Scalar(Scalar::Text(Cow::Borrowed(v))))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Seen::Scalar(if self.keep {
            Scalar::Text(Cow::Owned(v.to_owned()))
        } else {
            Scalar::Other
        }))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Seen::Scalar(Scalar::Text(Cow::Owned(v))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq
            .next_element_seed(Value {
                keys: self.keys,
                keep: false,
            })?
            .is_some()
        {}
        Ok(Seen::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        let mut members = Members::new(self.keys);
        while let Some(key) = map.next_key_seed(Key)? {
            let is_id = key == "id";
            if !members.insert(self.keys, key) {
                return Err(inconclusive());
            }
            let seen = map.next_value_seed(Value {
                keys: self.keys,
                keep: is_id,
            })?;
            if is_id {
                id = Some(match seen {
                    Seen::Scalar(s) => s,
                    _ => Scalar::Other,
                });
            }
        }
        members.end(self.keys);
        Ok(Seen::Object(id))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::head;
    use crate::envelope::{Envelope, Head};

    /// A JSON document as written, duplicate keys and all.
    #[derive(Debug, Clone)]
    enum Doc {
        Null,
        Bool(bool),
        Unsigned(u64),
        Signed(i64),
        /// Number text with a fraction or exponent, or beyond 64 bits.
        Float(&'static str),
        Text(String),
        Array(Vec<Doc>),
        Object(Vec<(String, Doc)>),
    }

    impl Doc {
        fn write(&self, out: &mut String) {
            match self {
                Doc::Null => out.push_str("null"),
                Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Doc::Unsigned(n) => out.push_str(&n.to_string()),
                Doc::Signed(n) => out.push_str(&n.to_string()),
                Doc::Float(f) => out.push_str(f),
                Doc::Text(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
                Doc::Array(items) => {
                    out.push('[');
                    for (i, d) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        d.write(out);
                    }
                    out.push(']');
                }
                Doc::Object(members) => {
                    out.push('{');
                    for (i, (k, d)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(&serde_json::to_string(k).unwrap_or_default());
                        out.push(':');
                        d.write(out);
                    }
                    out.push('}');
                }
            }
        }

        fn text(&self) -> String {
            let mut s = String::new();
            self.write(&mut s);
            s
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just("id".to_owned()),
            1 => Just("line\nbreak".to_owned()),
            1 => "[a-z\"\\\\é]{0,2}",
            12 => "[a-z_]{2,6}",
        ]
    }

    fn scalar() -> impl Strategy<Value = Doc> {
        prop_oneof![
            Just(Doc::Null),
            any::<bool>().prop_map(Doc::Bool),
            any::<u64>().prop_map(Doc::Unsigned),
            (0u64..100).prop_map(Doc::Unsigned),
            any::<i64>().prop_map(Doc::Signed),
            prop_oneof![
                Just("1.0"),
                Just("1e3"),
                Just("-0.5"),
                Just("18446744073709551616")
            ]
            .prop_map(Doc::Float),
            "[0-9a-z \"\\\\\n/é]{0,8}".prop_map(Doc::Text),
            "[1-9][0-9]{0,3}".prop_map(Doc::Text),
        ]
    }

    fn doc() -> impl Strategy<Value = Doc> {
        scalar().prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Doc::Array),
                proptest::collection::vec((key(), inner), 0..5).prop_map(Doc::Object),
            ]
        })
    }

    /// A top-level member: mostly well-formed, sometimes odd.
    fn member(name: &'static str, good: BoxedStrategy<Doc>) -> BoxedStrategy<Vec<(String, Doc)>> {
        let one = prop_oneof![40 => good, 1 => doc()];
        prop_oneof![
            60 => one.clone().prop_map(move |d| vec![(name.to_owned(), d)]),
            1 => Just(Vec::new()),
            1 => (one.clone(), one).prop_map(move |(a, b)| vec![(name.to_owned(), a), (name.to_owned(), b)]),
        ]
        .boxed()
    }

    fn envelope() -> impl Strategy<Value = Doc> {
        let text = |s: &'static str| Just(Doc::Text(s.to_owned())).boxed();
        let detail = proptest::collection::vec((key(), doc()), 0..4)
            .prop_flat_map(|extra| {
                prop_oneof![
                    4 => Just(Doc::Unsigned(2)),
                    4 => Just(Doc::Text("2".to_owned())),
                    1 => (0u64..4).prop_map(Doc::Unsigned),
                    1 => "0?[1-3]".prop_map(Doc::Text),
                    1 => doc(),
                ]
                .prop_map(move |id| {
                    let mut m = vec![("id".to_owned(), id)];
                    m.extend(extra.clone());
                    Doc::Object(m)
                })
            })
            .boxed();
        (
            member(
                "account_id",
                prop_oneof![8 => Just(Doc::Unsigned(42)), 1 => (0u64..3).prop_map(Doc::Unsigned)]
                    .boxed(),
            ),
            member(
                "id",
                prop_oneof![8 => "[!-~]{1,12}", 1 => "[a-z\"\\\\ ]{0,4}"]
                    .prop_map(Doc::Text)
                    .boxed(),
            ),
            member(
                "type",
                prop_oneof![
                    6 => Just(Doc::Text("zen:event-type:ticket.comment_added".to_owned())),
                    2 => Just(Doc::Text("zen:event-type:user.created".to_owned())),
                    1 => "zen:event-type:[a-z.\\\\]{0,10}".prop_map(Doc::Text),
                ]
                .boxed(),
            ),
            member(
                "subject",
                prop_oneof![
                    6 => Just(Doc::Text("zen:ticket:2".to_owned())),
                    1 => "zen:ticket:0?[1-3]".prop_map(Doc::Text),
                    1 => "zen:user:[0-9]{1,3}".prop_map(Doc::Text),
                ]
                .boxed(),
            ),
            member("time", text("2025-01-08T10:12:07Z")),
            member("zendesk_event_version", text("2022-11-06")),
            member("detail", detail),
            member(
                "event",
                proptest::collection::vec((key(), doc()), 0..4)
                    .prop_map(Doc::Object)
                    .boxed(),
            ),
            proptest::collection::vec((key(), doc()), 0..3),
        )
            .prop_map(|(a, b, c, d, e, f, g, h, extra)| {
                let mut m: Vec<(String, Doc)> = [a, b, c, d, e, f, g, h].concat();
                m.extend(extra);
                Doc::Object(m)
            })
            .prop_shuffle_members()
    }

    trait ShuffleMembers {
        fn prop_shuffle_members(self) -> BoxedStrategy<Doc>;
    }

    impl<S: Strategy<Value = Doc> + 'static> ShuffleMembers for S {
        fn prop_shuffle_members(self) -> BoxedStrategy<Doc> {
            self.prop_flat_map(|d| match d {
                Doc::Object(m) => Just(m).prop_shuffle().prop_map(Doc::Object).boxed(),
                other => Just(other).boxed(),
            })
            .boxed()
        }
    }

    fn tree_head(body: &[u8]) -> Option<Head> {
        Envelope::parse(body).ok().map(|e| e.head)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        // Whenever the one-pass read answers, the tree agrees exactly; and
        // `Head::check` always agrees with the tree, errors included.
        #[test]
        fn agrees_with_the_tree(doc in envelope()) {
            let body = doc.text();
            let tree = Envelope::parse(body.as_bytes()).map(|e| e.head);
            if let Some(fast) = head(body.as_bytes()) {
                prop_assert_eq!(Some(fast), tree.clone().ok());
            }
            prop_assert_eq!(Head::check(body.as_bytes()), tree);
        }

        // Arbitrary documents and bytes: never a different answer.
        #[test]
        fn arbitrary_documents_agree(doc in doc(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let body = doc.text();
            prop_assert_eq!(head(body.as_bytes()).is_none() || tree_head(body.as_bytes()).is_some(), true);
            prop_assert_eq!(Head::check(body.as_bytes()), Envelope::parse(body.as_bytes()).map(|e| e.head));
            prop_assert_eq!(Head::check(&bytes), Envelope::parse(&bytes).map(|e| e.head));
        }
    }

    // The generated envelopes exercise both paths: many are read in one
    // pass (so the agreement above is tested where it matters), many are not.
    #[test]
    fn generated_envelopes_cover_both_paths() {
        use proptest::strategy::ValueTree as _;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = envelope();
        let (mut conclusive, mut accepted, n) = (0, 0, 500);
        for _ in 0..n {
            let body = strategy.new_tree(&mut runner).unwrap().current().text();
            conclusive += usize::from(head(body.as_bytes()).is_some());
            accepted += usize::from(tree_head(body.as_bytes()).is_some());
        }
        assert!(conclusive * 5 > n, "{conclusive} of {n} read in one pass");
        assert!(
            accepted > conclusive,
            "{accepted} accepted, {conclusive} in one pass"
        );
        assert!(accepted * 5 < n * 4, "{accepted} of {n} accepted");
    }

    const TICKET: &str = r#"{"account_id": 42, "id": "01J-\u0041", "type": "zen:event-type:ticket.comment_added",
        "subject": "zen:ticket:7", "time": "2025-01-08T10:12:07Z", "zendesk_event_version": "2022-11-06",
        "detail": {"id": "7", "subject": "Help \"now\"", "tags": ["a", "b"], "via": {"id": 1, "channel": "web"}},
        "event": {"comment": {"id": 9, "body": "line\nline", "author": {"id": "3"}}}, "future": [1.5, -2, null, true]}"#;

    #[test]
    fn a_well_formed_envelope_needs_no_tree() {
        let fast = head(TICKET.as_bytes());
        assert!(fast.is_some(), "the one-pass read should be conclusive");
        assert_eq!(fast, tree_head(TICKET.as_bytes()));
        assert_eq!(fast.map(|h| h.id), Some("01J-A".to_owned()));
    }

    #[test]
    fn repeated_keys_are_left_to_the_tree() {
        let same = TICKET.replace(r#""via":"#, r#""tags": ["a", "b"], "via":"#);
        assert_eq!(head(same.as_bytes()), None);
        assert!(Head::check(same.as_bytes()).is_ok());
        let different = TICKET.replace(r#""via":"#, r#""tags": ["c"], "via":"#);
        assert_eq!(head(different.as_bytes()), None);
        assert!(Head::check(different.as_bytes()).is_err());
    }

    #[test]
    fn large_objects_still_catch_repeats() {
        let members: Vec<String> = (0..100).map(|i| format!(r#""k{i}": {i}"#)).collect();
        let big = TICKET.replace(r#""via":"#, &format!("{}, \"via\":", members.join(", ")));
        assert!(head(big.as_bytes()).is_some());
        let repeated = TICKET.replace(
            r#""via":"#,
            &format!("{}, \"k3\": 4, \"via\":", members.join(", ")),
        );
        assert_eq!(head(repeated.as_bytes()), None);
        assert!(Head::check(repeated.as_bytes()).is_err());
    }
}
