//! The provider-neutral conversation a model drafter holds: messages, tool
//! calls and their results, one model turn and its token usage. The wire
//! modules translate these to and from each provider's JSON.

use serde_json::Value;

/// A tool the model may call: name, description, JSON schema of arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: Value,
}

/// One tool call as the model asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's call id (generated when a compatible server omits it).
    pub id: String,
    pub name: String,
    /// The arguments exactly as the model sent them (JSON text, possibly
    /// invalid: validated before anything runs).
    pub arguments: String,
}

/// The answer to one tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    pub call_id: String,
    pub name: String,
    /// JSON text.
    pub content: String,
    /// The call was refused or failed; `content` says why.
    pub is_error: bool,
}

/// A message of the conversation after the system prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Operator or drafter text, and the delimited ticket data.
    User(String),
    /// What the model said: text and/or tool calls.
    Assistant {
        text: Option<String>,
        tool_calls: Vec<ToolCall>,
    },
    /// The results of the previous assistant turn's tool calls.
    ToolResults(Vec<ToolResult>),
}

/// One request to the model.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub system: &'a str,
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
    pub temperature: Option<f32>,
    pub max_tokens: u32,
}

/// Tokens a call used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
}

impl Usage {
    pub fn total(self) -> u64 {
        self.prompt + self.completion
    }

    pub fn add(&mut self, other: Usage) {
        self.prompt += other.prompt;
        self.completion += other.completion;
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Finished its answer.
    Done,
    /// Wants tool results.
    ToolUse,
    /// Hit `max_tokens`.
    Length,
    /// Anything else (content filter, unknown reason).
    Other,
}

/// One model turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    pub stop: Stop,
}

/// One user message, one assistant tool call and its result: the shape both
/// wire formats' tests encode.
#[cfg(test)]
pub(crate) fn tool_round(
    text: Option<&str>,
    call: (&str, &'static str, &str),
    result: (&str, bool),
) -> (Vec<Message>, Vec<ToolSpec>) {
    let (id, tool, arguments) = call;
    let messages = vec![
        Message::User("ticket".into()),
        Message::Assistant {
            text: text.map(str::to_owned),
            tool_calls: vec![ToolCall {
                id: id.into(),
                name: tool.into(),
                arguments: arguments.into(),
            }],
        },
        Message::ToolResults(vec![ToolResult {
            call_id: id.into(),
            name: tool.into(),
            content: result.0.into(),
            is_error: result.1,
        }]),
    ];
    let tools = vec![ToolSpec {
        name: tool,
        description: "d",
        parameters: serde_json::json!({"type": "object"}),
    }];
    (messages, tools)
}
