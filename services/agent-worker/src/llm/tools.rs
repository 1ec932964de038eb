//! The model's tools: read-only and bound to the ticket being drafted.
//! `get_ticket` and `list_comments` take no arguments at all (the ticket is
//! the one the event named), `search_help_center` takes only a query string.
//! Unknown tools, malformed or extra arguments are refused and the refusal
//! is returned to the model as an error result; nothing else runs.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tracing::Instrument;
use zengate_core::events::Citation;

use super::chat::{ToolCall, ToolResult, ToolSpec};
use super::schema;
use crate::conversation::{self, truncate};
use crate::drafter::TicketContext;

pub const GET_TICKET: &str = "get_ticket";
pub const LIST_COMMENTS: &str = "list_comments";
pub const SEARCH_HELP_CENTER: &str = "search_help_center";

/// Tool calls honoured per model turn; more are refused.
pub const MAX_CALLS_PER_TURN: usize = 4;
/// Comments `list_comments` returns.
const COMMENTS: usize = 20;
/// Articles one search returns.
const ARTICLES: usize = 5;

fn no_arguments() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
}

/// The tool definitions sent with every model call.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: GET_TICKET,
            description: "The ticket being drafted: subject, description, status, priority, tags, channel. Takes no arguments.",
            parameters: no_arguments(),
        },
        ToolSpec {
            name: LIST_COMMENTS,
            description: "The ticket's latest comments, oldest first, with author name, role (customer or staff), time and visibility. Takes no arguments.",
            parameters: no_arguments(),
        },
        ToolSpec {
            name: SEARCH_HELP_CENTER,
            description: "Searches the help desk's Help Center articles. Returns article_id, title, url and a snippet; cite articles by article_id.",
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Search words"},
                },
                "required": ["query"],
                "additionalProperties": false,
            }),
        },
    ]
}

/// Runs tool calls for one draft and remembers the articles it returned
/// (only those may be cited).
#[derive(Debug)]
pub struct Toolbox<'a> {
    ctx: &'a TicketContext,
    specs: Vec<ToolSpec>,
    /// Articles seen, by id.
    pub articles: BTreeMap<String, Citation>,
    /// Calls refused (unknown tool, bad arguments, over the per-turn limit).
    pub refused: u32,
}

impl<'a> Toolbox<'a> {
    pub fn new(ctx: &'a TicketContext) -> Self {
        Self {
            ctx,
            specs: specs(),
            articles: BTreeMap::new(),
            refused: 0,
        }
    }

    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Answers every call of one turn, in order.
    pub async fn run_all(&mut self, calls: &[ToolCall]) -> Vec<ToolResult> {
        let mut out = Vec::with_capacity(calls.len());
        for (i, call) in calls.iter().enumerate() {
            let result = if i >= MAX_CALLS_PER_TURN {
                Err(format!("at most {MAX_CALLS_PER_TURN} tool calls per turn"))
            } else {
                let span = tracing::info_span!(
                    "drafter.tool",
                    tool = %call.name,
                    ticket_id = self.ctx.ticket.id,
                    outcome = tracing::field::Empty,
                );
                let r = self.run(call).instrument(span.clone()).await;
                span.record("outcome", if r.is_ok() { "ok" } else { "error" });
                r
            };
            let (content, is_error) = match result {
                Ok(v) => (v.to_string(), false),
                Err(reason) => (json!({ "error": reason }).to_string(), true),
            };
            out.push(ToolResult {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content,
                is_error,
            });
        }
        out
    }

    async fn run(&mut self, call: &ToolCall) -> Result<Value, String> {
        let Some(spec) = self.specs.iter().find(|s| s.name == call.name) else {
            self.refused += 1;
            return Err(format!(
                "unknown tool {:?}; the tools are {GET_TICKET}, {LIST_COMMENTS} and {SEARCH_HELP_CENTER}",
                truncate(&call.name, 64)
            ));
        };
        let args: Value = match serde_json::from_str(call.arguments.trim()) {
            Ok(v) => v,
            Err(_) if call.arguments.trim().is_empty() => json!({}),
            Err(e) => {
                self.refused += 1;
                return Err(format!("arguments are not JSON: {e}"));
            }
        };
        let problems = schema::validate(&spec.parameters, &args);
        if !problems.is_empty() {
            self.refused += 1;
            return Err(format!("arguments refused: {}", problems.join("; ")));
        }
        match spec.name {
            GET_TICKET => self.get_ticket().await,
            LIST_COMMENTS => self.list_comments().await,
            _ => {
                let query = args.get("query").and_then(Value::as_str).unwrap_or("");
                self.search(query).await
            }
        }
    }

    async fn get_ticket(&self) -> Result<Value, String> {
        let t =
            self.ctx.tool.ticket().await.map_err(|e| {
                format!("the ticket could not be read ({})", e.status().unwrap_or(0))
            })?;
        Ok(json!({
            "subject": t.subject,
            "description": t.description.as_deref().map(|d| truncate(d, 4_000)),
            "status": t.status,
            "priority": t.priority,
            "tags": t.tags,
            "channel": t.channel,
        }))
    }

    async fn list_comments(&self) -> Result<Value, String> {
        let thread = self.ctx.tool.thread(COMMENTS).await.map_err(|e| {
            format!(
                "the comments could not be read ({})",
                e.status().unwrap_or(0)
            )
        })?;
        let entries = conversation::entries(&thread.comments, &thread.authors, None, COMMENTS);
        serde_json::to_value(entries).map_err(|e| e.to_string())
    }

    async fn search(&mut self, query: &str) -> Result<Value, String> {
        let articles = self
            .ctx
            .tool
            .search_help_center(query, ARTICLES)
            .await
            .map_err(|e| format!("the search failed ({})", e.status().unwrap_or(0)))?;
        let mut results = Vec::with_capacity(articles.len());
        for a in articles {
            let id = a.id.to_string();
            self.articles.insert(
                id.clone(),
                Citation {
                    article_id: id.clone(),
                    title: a.title.clone(),
                    url: a.url.clone(),
                },
            );
            results.push(json!({
                "article_id": id,
                "title": a.title,
                "url": a.url,
                "snippet": truncate(&a.snippet, 500),
            }));
        }
        Ok(json!({ "results": results }))
    }
}
