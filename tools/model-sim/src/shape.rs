//! What a request must look like to be accepted, after the providers'
//! documented request schemas: the fields every call needs, Chat
//! Completions' one token limit (`max_tokens` or `max_completion_tokens`,
//! never both) and `response_format` (a `json_schema` needs a name of at
//! most 64 letters, digits, `_` or `-` and a schema; a strict one must close
//! every object and require all its properties). A problem is recorded as an
//! expectation failure and answered with 400.

use serde_json::Value;

use crate::script::Api;

/// Keywords strict structured output refuses.
const NOT_STRICT: [&str; 2] = ["minLength", "maxLength"];

/// The first problem with `body` for `api`, if any.
pub fn problem(api: Api, body: &Value) -> Option<String> {
    if !body.is_object() {
        return Some("the body is not a JSON object".to_owned());
    }
    if body["model"].as_str().is_none_or(str::is_empty) {
        return Some("model is missing".to_owned());
    }
    if !body["messages"].is_array() {
        return Some("messages is missing".to_owned());
    }
    match api {
        Api::Anthropic if body["max_tokens"].as_u64().is_none() => {
            Some("max_tokens is required by the Messages API".to_owned())
        }
        Api::Anthropic => None,
        Api::OpenAi => chat_completions_problem(body),
    }
}

fn chat_completions_problem(body: &Value) -> Option<String> {
    if body.get("max_tokens").is_some() && body.get("max_completion_tokens").is_some() {
        return Some("max_tokens and max_completion_tokens are both set".to_owned());
    }
    for field in ["max_tokens", "max_completion_tokens"] {
        if body.get(field).is_some_and(|v| v.as_u64().is_none()) {
            return Some(format!("{field} is not a positive integer"));
        }
    }
    let format = body.get("response_format")?;
    match format["type"].as_str() {
        Some("text" | "json_object") => None,
        Some("json_schema") => json_schema_problem(&format["json_schema"]),
        _ => Some("response_format.type is not text, json_object or json_schema".to_owned()),
    }
}

fn json_schema_problem(spec: &Value) -> Option<String> {
    let name_ok = spec["name"].as_str().is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if !name_ok {
        return Some("response_format.json_schema.name is missing or invalid".to_owned());
    }
    if !spec["schema"].is_object() {
        return Some("response_format.json_schema.schema is not an object".to_owned());
    }
    if spec["strict"] == Value::Bool(true) {
        return strict_problem(&spec["schema"], "");
    }
    None
}

/// Where `schema` breaks strict mode's rules.
fn strict_problem(schema: &Value, path: &str) -> Option<String> {
    let map = schema.as_object()?;
    if let Some(k) = NOT_STRICT.iter().find(|k| map.contains_key(**k)) {
        return Some(format!("strict schema at {path}/: {k} is not permitted"));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        if map.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Some(format!(
                "strict schema at {path}/: additionalProperties must be false"
            ));
        }
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (name, sub) in props {
            if !required.contains(&name.as_str()) {
                return Some(format!(
                    "strict schema at {path}/: {name:?} must be in required"
                ));
            }
            if let Some(p) = strict_problem(sub, &format!("{path}/{name}")) {
                return Some(p);
            }
        }
    }
    map.get("items")
        .and_then(|items| strict_problem(items, &format!("{path}/items")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chat(extra: Value) -> Value {
        let mut body = json!({"model": "m", "messages": []});
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        body
    }

    #[test]
    fn chat_completions_token_limit_and_response_format() {
        assert_eq!(problem(Api::OpenAi, &chat(json!({}))), None);
        assert_eq!(
            problem(Api::OpenAi, &chat(json!({"max_completion_tokens": 5}))),
            None
        );
        assert!(
            problem(
                Api::OpenAi,
                &chat(json!({"max_tokens": 5, "max_completion_tokens": 5}))
            )
            .is_some()
        );
        let strict = |schema: Value| {
            chat(
                json!({"response_format": {"type": "json_schema", "json_schema": {
                    "name": "answer", "strict": true, "schema": schema,
                }}}),
            )
        };
        let good = json!({
            "type": "object", "additionalProperties": false, "required": ["a"],
            "properties": {"a": {"type": "array", "items": {"type": "string"}}},
        });
        assert_eq!(problem(Api::OpenAi, &strict(good)), None);
        for (bad, expect) in [
            (
                json!({"type": "object", "required": [], "properties": {"a": {"type": "string"}}}),
                "additionalProperties",
            ),
            (
                json!({"type": "object", "additionalProperties": false, "required": [], "properties": {"a": {"type": "string"}}}),
                "\"a\" must be in required",
            ),
            (
                json!({"type": "object", "additionalProperties": false, "required": ["a"], "properties": {"a": {"type": "array", "items": {"type": "string", "maxLength": 3}}}}),
                "/a/items/: maxLength",
            ),
        ] {
            let p = problem(Api::OpenAi, &strict(bad)).unwrap();
            assert!(p.contains(expect), "{p}");
        }
        let unnamed = chat(
            json!({"response_format": {"type": "json_schema", "json_schema": {
                "name": "no spaces allowed", "schema": {},
            }}}),
        );
        assert!(problem(Api::OpenAi, &unnamed).unwrap().contains("name"));
        assert_eq!(
            problem(Api::Anthropic, &chat(json!({}))).as_deref(),
            Some("max_tokens is required by the Messages API")
        );
    }
}
