//! The Anthropic Messages wire format (`POST {base}/messages`): a top-level
//! `system`, alternating `user`/`assistant` messages of content blocks,
//! `tools` with an `input_schema`, assistant `tool_use` blocks answered by
//! `tool_result` blocks (with `is_error`) in the next user message.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::chat::{ChatRequest, Message, Stop, ToolCall, Turn, Usage};

/// The API version header value the request shapes follow.
pub const API_VERSION: &str = "2023-06-01";

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    system: &'a str,
    messages: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    max_tokens: u32,
}

/// Tool arguments as an object (what `tool_use.input` must be).
fn input_object(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({}),
    }
}

/// The request body.
pub fn encode(req: &ChatRequest<'_>) -> Result<Vec<u8>, serde_json::Error> {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| match m {
            Message::User(text) => json!({"role": "user", "content": text}),
            Message::Assistant { text, tool_calls } => {
                let mut blocks: Vec<Value> = text
                    .iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| json!({"type": "text", "text": t}))
                    .collect();
                blocks.extend(tool_calls.iter().map(|c| {
                    json!({
                        "type": "tool_use",
                        "id": c.id,
                        "name": c.name,
                        "input": input_object(&c.arguments),
                    })
                }));
                json!({"role": "assistant", "content": blocks})
            }
            Message::ToolResults(results) => {
                let blocks: Vec<Value> = results
                    .iter()
                    .map(|r| {
                        json!({
                            "type": "tool_result",
                            "tool_use_id": r.call_id,
                            "content": r.content,
                            "is_error": r.is_error,
                        })
                    })
                    .collect();
                json!({"role": "user", "content": blocks})
            }
        })
        .collect();
    let tools = req
        .tools
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "input_schema": t.parameters,
            })
        })
        .collect();
    serde_json::to_vec(&Request {
        model: req.model,
        system: req.system,
        messages,
        tools,
        temperature: req.temperature,
        max_tokens: req.max_tokens,
    })
}

#[derive(Deserialize)]
struct Response {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// Parses a success body; an error names what was missing (never content).
pub fn decode(body: &[u8]) -> Result<Turn, String> {
    let r: Response = serde_json::from_slice(body).map_err(|e| format!("not a message: {e}"))?;
    if r.kind != "message" {
        return Err(format!("unexpected response type {:?}", r.kind));
    }
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in r.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                arguments: if input.is_null() {
                    "{}".to_owned()
                } else {
                    input.to_string()
                },
            }),
            Block::Other => {}
        }
    }
    let stop = match r.stop_reason.as_deref() {
        _ if !tool_calls.is_empty() => Stop::ToolUse,
        Some("end_turn" | "stop_sequence") | None => Stop::Done,
        Some("max_tokens") => Stop::Length,
        Some(_) => Stop::Other,
    };
    let usage = r
        .usage
        .map(|u| Usage {
            prompt: u.input_tokens,
            completion: u.output_tokens,
        })
        .unwrap_or_default();
    Ok(Turn {
        text: (!text.trim().is_empty()).then_some(text),
        tool_calls,
        usage,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::chat::tool_round;

    #[test]
    fn request_shape_matches_messages_api() {
        let (messages, tools) = tool_round(
            Some("Looking"),
            ("toolu_1", "search_help_center", r#"{"query":"fire"}"#),
            ("{\"error\":\"x\"}", true),
        );
        let body = encode(&ChatRequest {
            model: "claude",
            system: "sys",
            messages: &messages,
            tools: &tools,
            temperature: None,
            max_tokens: 512,
        })
        .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "model": "claude",
                "system": "sys",
                "messages": [
                    {"role": "user", "content": "ticket"},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Looking"},
                        {"type": "tool_use", "id": "toolu_1", "name": "search_help_center", "input": {"query": "fire"}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"error\":\"x\"}", "is_error": true},
                    ]},
                ],
                "tools": [{"name": "search_help_center", "description": "d", "input_schema": {"type": "object"}}],
                "max_tokens": 512,
            })
        );
    }

    #[test]
    fn decodes_text_and_tool_use() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"ok"},{"type":"tool_use","id":"toolu_9","name":"get_ticket","input":{}}],"stop_reason":"tool_use","usage":{"input_tokens":11,"output_tokens":4}}"#;
        let t = decode(body).unwrap();
        assert_eq!(t.stop, Stop::ToolUse);
        assert_eq!(t.tool_calls[0].id, "toolu_9");
        assert_eq!(t.tool_calls[0].arguments, "{}");
        assert_eq!(
            t.usage,
            Usage {
                prompt: 11,
                completion: 4
            }
        );
        assert!(decode(br#"{"type":"error","error":{"type":"overloaded_error"}}"#).is_err());
    }
}
