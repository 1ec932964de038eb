//! Renders a scripted reply in the called endpoint's wire format.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::script::{Api, Reply, ScriptedCall};

/// Token usage reported for every successful answer.
pub const PROMPT_TOKENS: u64 = 100;
pub const COMPLETION_TOKENS: u64 = 20;

fn arguments_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The body of a successful answer; `ids` are the tool call ids handed out.
pub fn success(api: Api, model: &str, reply: &Reply, ids: &[String]) -> Value {
    let (text, calls): (Option<&str>, &[ScriptedCall]) = match reply {
        Reply::Text { text } => (Some(text), &[]),
        Reply::ToolCalls { calls } => (None, calls),
        _ => (None, &[]),
    };
    match api {
        Api::OpenAi => {
            let mut message = json!({"role": "assistant", "content": text});
            if !calls.is_empty() {
                message["tool_calls"] = calls
                    .iter()
                    .zip(ids)
                    .map(|(c, id)| {
                        json!({
                            "id": id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": arguments_text(&c.arguments)},
                        })
                    })
                    .collect();
            }
            json!({
                "id": "chatcmpl-sim",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": message,
                    "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" },
                }],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": COMPLETION_TOKENS,
                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                },
            })
        }
        Api::Anthropic => {
            let mut content: Vec<Value> = text
                .map(|t| json!({"type": "text", "text": t}))
                .into_iter()
                .collect();
            content.extend(calls.iter().zip(ids).map(|(c, id)| {
                json!({"type": "tool_use", "id": id, "name": c.name, "input": c.arguments})
            }));
            json!({
                "id": "msg_sim",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" },
                "stop_sequence": null,
                "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
            })
        }
    }
}

/// An error answer in the provider's error shape.
pub fn failure(api: Api, status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match api {
        Api::OpenAi => {
            json!({"error": {"message": "simulated failure", "type": "server_error", "code": status.as_u16()}})
        }
        Api::Anthropic => {
            json!({"type": "error", "error": {"type": if status.as_u16() == 429 { "rate_limit_error" } else { "api_error" }, "message": "simulated failure"}})
        }
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    resp
}

/// OpenAI's answer to a parameter the model does not support (what its
/// reasoning models say about `max_tokens` or `temperature`).
pub fn unsupported_parameter(param: &str) -> Response {
    let body = json!({"error": {
        "message": format!("Unsupported parameter: '{param}' is not supported with this model."),
        "type": "invalid_request_error",
        "param": param,
        "code": "unsupported_parameter",
    }});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}
