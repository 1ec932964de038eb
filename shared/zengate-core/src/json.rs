//! A JSON tree that keeps what Zendesk sent: integers stay integers (never a
//! float round trip, so ids above 2^53 survive), object members keep their
//! order, and a key repeated with a different value is an error instead of
//! silently keeping the last one (two readers could otherwise disagree about
//! what a signed body says).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON number as written: integers keep their exact value.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    /// A non-negative integer literal.
    Unsigned(u64),
    /// A negative integer literal.
    Signed(i64),
    /// Anything with a fraction or exponent, or an integer beyond 64 bits.
    Float(f64),
}

/// A parsed JSON value with exact integers and checked keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Member `key` of an object, `None` for other values or a missing key.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(Number::Float(_)) => "non-integer number",
            Json::Number(_) => "integer",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum JsonError {
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("body is not valid JSON: {0}")]
    Syntax(String),
}

/// Parses a body as strict UTF-8 JSON. A leading byte-order mark is tolerated
/// (some proxies add one); anything else that is not UTF-8 is refused.
pub fn parse(body: &[u8]) -> Result<Json, JsonError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let text = std::str::from_utf8(body).map_err(|_| JsonError::NotUtf8)?;
    serde_json::from_str::<Json>(text).map_err(|e| JsonError::Syntax(e.to_string()))
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(Number::Unsigned(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(if v >= 0 {
            Number::Unsigned(v.unsigned_abs())
        } else {
            Number::Signed(v)
        }))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(Number::Float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Json>()?;
            match members.iter().find(|(k, _)| *k == key) {
                Some((_, existing)) if *existing == value => {}
                Some(_) => {
                    return Err(de::Error::custom(format!(
                        "duplicate key {key:?} with different values"
                    )));
                }
                None => members.push((key, value)),
            }
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_stay_exact() {
        let v = parse(br#"{"id": 9223372036854775807, "n": 18446744073709551615, "neg": -5}"#)
            .unwrap_or(Json::Null);
        assert_eq!(
            v.get("id"),
            Some(&Json::Number(Number::Unsigned(9_223_372_036_854_775_807)))
        );
        assert_eq!(v.get("n"), Some(&Json::Number(Number::Unsigned(u64::MAX))));
        assert_eq!(v.get("neg"), Some(&Json::Number(Number::Signed(-5))));
    }

    #[test]
    fn floats_are_marked_as_floats() {
        let v = parse(br#"{"a": 1.0, "b": 1e3, "c": 18446744073709551616}"#).unwrap_or(Json::Null);
        for k in ["a", "b", "c"] {
            assert!(
                matches!(v.get(k), Some(Json::Number(Number::Float(_)))),
                "{k}"
            );
        }
    }

    #[test]
    fn duplicate_keys() {
        assert!(parse(br#"{"a": 1, "a": 1}"#).is_ok());
        let err = parse(br#"{"a": 1, "a": 2}"#).err();
        assert!(matches!(err, Some(JsonError::Syntax(m)) if m.contains("duplicate key")));
        let nested = parse(br#"{"d": {"x": "1", "x": "2"}}"#).err();
        assert!(nested.is_some());
    }

    #[test]
    fn utf8_and_bom() {
        assert_eq!(parse(b"\xff{}"), Err(JsonError::NotUtf8));
        assert!(parse(b"\xEF\xBB\xBF{}").is_ok());
        assert!(parse(b"{\"a\":\"\xc3\x28\"}").is_err());
        assert!(parse(br#"{"a":"\ud800"}"#).is_err());
    }
}
