//! A small JSON Schema checker for the keywords the drafter's own schemas
//! use (`type`, `enum`, `required`, `properties`, `additionalProperties:
//! false`, `minLength`/`maxLength`, `minItems`/`maxItems`, `items`,
//! `minimum`/`maximum`). The same schema values are sent to the model, so
//! what the model is told and what is enforced cannot drift apart; the
//! strict structured-output form of a schema is derived here too.

use serde_json::{Map, Value};

/// Keywords strict structured output does not accept; [`validate`] still
/// enforces them.
const NOT_STRICT: [&str; 2] = ["minLength", "maxLength"];

/// Every violation of `schema` by `value`, each prefixed by its JSON pointer.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "", &mut errors);
    errors
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "null" => value.is_null(),
        _ => false,
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_matches(t, value)
    {
        errors.push(format!("{}: expected {t}", at(path)));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!(
            "{}: must be one of {}",
            at(path),
            Value::Array(allowed.clone())
        ));
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(name) {
                    errors.push(format!("{}: missing required property {name:?}", at(path)));
                }
            }
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check(sub, v, &format!("{path}/{k}"), errors),
                    None if closed => {
                        errors.push(format!("{}: unknown property {k:?}", at(path)));
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                errors.push(format!("{}: needs at least {min} items", at(path)));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                errors.push(format!("{}: allows at most {max} items", at(path)));
            }
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(sub, item, &format!("{path}/{i}"), errors);
                }
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && n < min
            {
                errors.push(format!("{}: needs at least {min} characters", at(path)));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && n > max
            {
                errors.push(format!("{}: allows at most {max} characters", at(path)));
            }
        }
        Value::Number(num) => {
            let Some(x) = num.as_f64() else { return };
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                errors.push(format!("{}: must be at least {min}", at(path)));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                errors.push(format!("{}: must be at most {max}", at(path)));
            }
        }
        _ => {}
    }
}

/// `schema` in the form strict structured output requires: every object
/// with properties is closed and lists all of them as required, the
/// optional ones made nullable, and keywords it does not accept are left
/// out. An answer in this form, once [`drop_null_properties`] removed its
/// nulls, is what [`validate`] checks against the original `schema`.
pub fn strict(schema: &Value) -> Value {
    strict_node(schema, false)
}

fn strict_node(schema: &Value, nullable: bool) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        match k.as_str() {
            "properties" | "required" => {}
            "items" => {
                out.insert(k.clone(), strict_node(v, false));
            }
            _ if NOT_STRICT.contains(&k.as_str()) => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let strict_props: Map<String, Value> = props
            .iter()
            .map(|(name, sub)| {
                (
                    name.clone(),
                    strict_node(sub, !required.contains(&name.as_str())),
                )
            })
            .collect();
        out.insert(
            "required".to_owned(),
            Value::Array(props.keys().cloned().map(Value::String).collect()),
        );
        out.insert("properties".to_owned(), Value::Object(strict_props));
        out.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    if nullable {
        if let Some(t) = out.get("type").and_then(Value::as_str) {
            let t = t.to_owned();
            out.insert("type".to_owned(), serde_json::json!([t, "null"]));
        }
        if let Some(Value::Array(allowed)) = out.get_mut("enum") {
            allowed.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// Removes every object property whose value is `null`, at any depth: how a
/// strict-mode answer says "absent".
pub fn drop_null_properties(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_null_properties);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_properties),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_each_violation_with_its_path() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["a", "b"],
            "properties": {
                "a": {"type": "string", "maxLength": 3},
                "b": {"type": "array", "maxItems": 1, "items": {"enum": ["x"]}},
                "c": {"type": "number", "minimum": 0, "maximum": 1},
            },
        });
        assert!(validate(&schema, &json!({"a": "abc", "b": ["x"], "c": 0.5})).is_empty());
        let errors = validate(
            &schema,
            &json!({"a": "abcd", "b": ["y", "x"], "c": 2, "ticket_id": 7}),
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("unknown property \"ticket_id\""))
        );
        assert!(errors.iter().any(|e| e.starts_with("/b/0:")));
        assert_eq!(validate(&schema, &json!([])), vec!["/: expected object"]);
        assert_eq!(
            validate(&schema, &json!({"a": "x"})),
            vec!["/: missing required property \"b\""]
        );
    }

    #[test]
    fn strict_form_requires_every_property_and_nulls_the_optional_ones() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["a"],
            "properties": {
                "a": {"type": "string", "enum": ["x", "y"]},
                "b": {"type": "string", "maxLength": 3},
                "c": {
                    "type": "object",
                    "properties": {"d": {"type": "string", "enum": ["z"]}},
                },
                "e": {"type": "array", "maxItems": 2, "items": {"type": "string", "minLength": 1}},
            },
        });
        assert_eq!(
            strict(&schema),
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["a", "b", "c", "e"],
                "properties": {
                    "a": {"type": "string", "enum": ["x", "y"]},
                    "b": {"type": ["string", "null"]},
                    "c": {
                        "type": ["object", "null"],
                        "additionalProperties": false,
                        "required": ["d"],
                        "properties": {"d": {"type": ["string", "null"], "enum": ["z", null]}},
                    },
                    "e": {"type": ["array", "null"], "maxItems": 2, "items": {"type": "string"}},
                },
            })
        );
        let mut answer = json!({"a": "x", "b": null, "c": {"d": null}, "e": null});
        drop_null_properties(&mut answer);
        assert_eq!(answer, json!({"a": "x", "c": {}}));
        assert!(validate(&schema, &answer).is_empty());
        let mut missing = json!({"a": null});
        drop_null_properties(&mut missing);
        assert_eq!(
            validate(&schema, &missing),
            vec!["/: missing required property \"a\""]
        );
    }
}
