//! What the simulated model answers, one scripted reply per request, and
//! what it received. Replies are provider-neutral; the wire modules render
//! them in the format of the endpoint that was called.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// The model calls tools (`arguments` is sent as given: an object, or a
    /// string for malformed arguments). The next request must carry a
    /// result for each call, or an expectation failure is recorded.
    ToolCalls { calls: Vec<ScriptedCall> },
    /// The model's final text.
    Text { text: String },
    /// An HTTP error (`429`, `500`, `529`...) with an optional `Retry-After`
    /// in seconds.
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// `200` with a body that is not the provider's JSON.
    Garbage,
    /// Waits before answering with `then` (a timeout when the client gives
    /// up first).
    Delay {
        #[serde(with = "millis")]
        delay: Duration,
        then: Box<Reply>,
    },
}

/// One tool call of a [`Reply::ToolCalls`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedCall {
    pub name: String,
    pub arguments: Value,
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Self {
        Reply::Text { text: text.into() }
    }

    /// A final answer that is this JSON value.
    pub fn json(value: &Value) -> Self {
        Reply::Text {
            text: value.to_string(),
        }
    }

    pub fn tool(name: &str, arguments: Value) -> Self {
        Reply::ToolCalls {
            calls: vec![ScriptedCall {
                name: name.to_owned(),
                arguments,
            }],
        }
    }

    pub fn status(status: u16, retry_after: Option<u64>) -> Self {
        Reply::Status {
            status,
            retry_after,
        }
    }

    pub fn delayed(delay: Duration, then: Reply) -> Self {
        Reply::Delay {
            delay,
            then: Box::new(then),
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Which wire format a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /v1/chat/completions`
    OpenAi,
    /// `POST /v1/messages`
    Anthropic,
}

/// A request as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCall {
    pub api: Api,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, parsed (`Null` when it was not JSON).
    pub body: Value,
}

impl RecordedCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The tool results this request carries: `(call id, content, is_error)`.
    pub fn tool_results(&self) -> Vec<(String, String, bool)> {
        let messages = self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for m in messages {
            match self.api {
                Api::OpenAi if m["role"] == "tool" => {
                    let content = m["content"].as_str().unwrap_or_default().to_owned();
                    let is_error = serde_json::from_str::<Value>(&content)
                        .ok()
                        .is_some_and(|v| v.get("error").is_some());
                    out.push((
                        m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                        content,
                        is_error,
                    ));
                }
                Api::Anthropic => {
                    for b in m["content"].as_array().into_iter().flatten() {
                        if b["type"] == "tool_result" {
                            out.push((
                                b["tool_use_id"].as_str().unwrap_or_default().to_owned(),
                                b["content"].as_str().unwrap_or_default().to_owned(),
                                b["is_error"].as_bool().unwrap_or(false),
                            ));
                        }
                    }
                }
                Api::OpenAi => {}
            }
        }
        out
    }

    /// The system prompt (OpenAI: the `system` message; Anthropic: `system`).
    pub fn system(&self) -> String {
        match self.api {
            Api::Anthropic => self.body["system"].as_str().unwrap_or_default().to_owned(),
            Api::OpenAi => self.body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["role"] == "system")
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The text of every user message (string content or text blocks).
    pub fn user_texts(&self) -> Vec<String> {
        self.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["role"] == "user")
            .flat_map(|m| match &m["content"] {
                Value::String(s) => vec![s.clone()],
                Value::Array(blocks) => blocks
                    .iter()
                    .filter(|b| b["type"] == "text")
                    .filter_map(|b| b["text"].as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// Names of the tools offered.
    pub fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| match self.api {
                Api::OpenAi => t["function"]["name"].as_str(),
                Api::Anthropic => t["name"].as_str(),
            })
            .map(str::to_owned)
            .collect()
    }
}
