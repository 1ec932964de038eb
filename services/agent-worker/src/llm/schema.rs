//! A small JSON Schema checker for the keywords the drafter's own schemas
//! use (`type`, `enum`, `required`, `properties`, `additionalProperties:
//! false`, `minLength`/`maxLength`, `minItems`/`maxItems`, `items`,
//! `minimum`/`maximum`). The same schema values are sent to the model, so
//! what the model is told and what is enforced cannot drift apart.

use serde_json::Value;

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
}
