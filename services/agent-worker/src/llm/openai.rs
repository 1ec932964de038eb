//! The OpenAI Chat Completions wire format (`POST {base}/chat/completions`),
//! also spoken by Azure OpenAI's v1 API, vLLM, Ollama, llama.cpp's server
//! and LiteLLM: system and user messages, `tools` of type `function`,
//! assistant `tool_calls` with JSON-text `arguments`, and `tool` messages
//! answering them by `tool_call_id`.
//!
//! Servers differ on output: `arguments` sent as an object instead of
//! text, a missing call id, a missing `usage` are tolerated. They differ on
//! input too, which [`Options`] covers: OpenAI documents
//! `max_completion_tokens` (its reasoning models refuse `max_tokens`, the
//! only field many compatible servers know), and strict structured output
//! (`response_format` of type `json_schema`) is opt-in because many
//! compatible servers reject it. `temperature` is only sent when set
//! (reasoning models refuse any value).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::chat::{ChatRequest, Message, Stop, ToolCall, Turn, Usage};
use super::config::{MaxTokensField, ModelConfig, ResponseFormat};
use super::{output, schema};

/// The `json_schema.name` of the answer's response format.
pub const SCHEMA_NAME: &str = "zengate_proposal";

/// How this deployment's Chat Completions requests are shaped.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub max_tokens_field: MaxTokensField,
    /// The whole `response_format` value, built once; `None` sends none.
    pub response_format: Option<Value>,
}

impl Options {
    pub fn new(config: &ModelConfig) -> Self {
        Self {
            max_tokens_field: config.max_tokens_field,
            response_format: match config.response_format {
                ResponseFormat::None => None,
                ResponseFormat::JsonSchema => Some(response_format()),
            },
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_tokens_field: MaxTokensField::MaxTokens,
            response_format: None,
        }
    }
}

/// `response_format` asking for the answer schema in its strict form. The
/// worker still checks every answer against the full schema.
pub fn response_format() -> Value {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": SCHEMA_NAME,
            "description": "The proposed action on the ticket, for a human to approve.",
            "schema": schema::strict(&output::schema()),
            "strict": true,
        },
    })
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a Value>,
    stream: bool,
}

/// The request body.
pub fn encode(req: &ChatRequest<'_>, options: &Options) -> Result<Vec<u8>, serde_json::Error> {
    let mut messages = vec![json!({"role": "system", "content": req.system})];
    for m in req.messages {
        match m {
            Message::User(text) => messages.push(json!({"role": "user", "content": text})),
            Message::Assistant { text, tool_calls } => {
                let mut msg = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    msg["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| {
                            json!({
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments},
                            })
                        })
                        .collect();
                }
                messages.push(msg);
            }
            Message::ToolResults(results) => {
                for r in results {
                    messages.push(json!({
                        "role": "tool",
                        "tool_call_id": r.call_id,
                        "content": r.content,
                    }));
                }
            }
        }
    }
    let tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            json!({
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            })
        })
        .collect();
    serde_json::to_vec(&Request {
        model: req.model,
        tool_choice: (!tools.is_empty()).then_some("auto"),
        tools,
        messages,
        temperature: req.temperature,
        max_tokens: (options.max_tokens_field == MaxTokensField::MaxTokens)
            .then_some(req.max_tokens),
        max_completion_tokens: (options.max_tokens_field == MaxTokensField::MaxCompletionTokens)
            .then_some(req.max_tokens),
        response_format: options.response_format.as_ref(),
        stream: false,
    })
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Parses a success body; an error names what was missing (never content).
pub fn decode(body: &[u8]) -> Result<Turn, String> {
    let r: Response =
        serde_json::from_slice(body).map_err(|e| format!("not a chat completion: {e}"))?;
    let usage = r
        .usage
        .map(|u| Usage {
            prompt: u.prompt_tokens,
            completion: u.completion_tokens,
        })
        .unwrap_or_default();
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| "a chat completion without choices".to_owned())?;
    let tool_calls: Vec<ToolCall> = choice
        .message
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: c
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| format!("call_{i}")),
            name: c.function.name,
            arguments: match c.function.arguments {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
            },
        })
        .collect();
    let stop = match choice.finish_reason.as_deref() {
        _ if !tool_calls.is_empty() => Stop::ToolUse,
        Some("stop") | None => Stop::Done,
        Some("tool_calls" | "function_call") => Stop::ToolUse,
        Some("length") => Stop::Length,
        Some(_) => Stop::Other,
    };
    Ok(Turn {
        text: choice.message.content.filter(|t| !t.trim().is_empty()),
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
    fn request_shape_matches_chat_completions() {
        let (messages, tools) =
            tool_round(None, ("call_1", "get_ticket", "{}"), ("{\"id\":1}", false));
        let req = ChatRequest {
            model: "m",
            system: "sys",
            messages: &messages,
            tools: &tools,
            temperature: Some(0.5),
            max_tokens: 100,
        };
        let body = encode(&req, &Options::default()).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "model": "m",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "content": "ticket"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_ticket", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "{\"id\":1}"},
                ],
                "tools": [{"type": "function", "function": {"name": "get_ticket", "description": "d", "parameters": {"type": "object"}}}],
                "tool_choice": "auto",
                "temperature": 0.5,
                "max_tokens": 100,
                "stream": false,
            })
        );

        // OpenAI's own dialect: the documented token field, no temperature
        // unless set, and the strict answer schema.
        let options = Options {
            max_tokens_field: MaxTokensField::MaxCompletionTokens,
            response_format: Some(response_format()),
        };
        let req = ChatRequest {
            temperature: None,
            ..req
        };
        let v: Value = serde_json::from_slice(&encode(&req, &options).unwrap()).unwrap();
        assert_eq!(v["max_completion_tokens"], 100);
        for absent in ["max_tokens", "temperature"] {
            assert!(v.get(absent).is_none(), "{absent}: {v}");
        }
        let format = &v["response_format"];
        assert_eq!(format["type"], "json_schema");
        assert_eq!(format["json_schema"]["name"], SCHEMA_NAME);
        assert_eq!(format["json_schema"]["strict"], true);
        assert_eq!(
            format["json_schema"]["schema"],
            schema::strict(&output::schema())
        );
    }

    #[test]
    fn tolerates_compatible_server_variants() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"search_help_center","arguments":{"query":"fire"}}}]},"finish_reason":"stop"}]}"#;
        let t = decode(body).unwrap();
        assert_eq!(t.stop, Stop::ToolUse);
        assert_eq!(t.text, None);
        assert_eq!(t.tool_calls[0].id, "call_0");
        assert_eq!(t.tool_calls[0].arguments, r#"{"query":"fire"}"#);
        assert_eq!(t.usage, Usage::default());
        let done = br#"{"choices":[{"message":{"content":"{}"},"finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#;
        let t = decode(done).unwrap();
        assert_eq!(t.stop, Stop::Length);
        assert_eq!(t.usage.total(), 10);
        assert!(decode(b"<html>").is_err());
        assert!(decode(br#"{"choices":[]}"#).is_err());
    }
}
