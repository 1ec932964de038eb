//! The model drafter: a bounded agent loop (steps, tokens, wall time) over a
//! provider client and the ticket-bound tools, ending in a checked proposal.
//! An invalid answer gets one repair request; if it stays invalid (or the
//! provider refuses the request, or a bound is hit) the draft falls back to
//! the rules drafter or to a "needs human" internal note, so every event
//! still yields a proposal that waits for approval. A provider outage is
//! returned as a retryable error: the event is redelivered, never dropped.

use std::time::Instant;

use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use tracing::{Instrument, field};
use zengate_core::events::{DraftInfo, FieldChanges};

use super::chat::{ChatRequest, Message, Usage};
use super::config::{Fallback, ModelConfig};
use super::metrics::DrafterMetrics;
use super::output::{self, Parsed};
use super::prompt;
use super::tools::{self, Toolbox};
use super::transport::{CallError, ModelClient};
use crate::conversation::truncate;
use crate::drafter::{Draft, DraftError, Drafter, Proposal, TicketContext};
use crate::rules::RulesDrafter;

/// Conversation comments put in the first message.
const PROMPT_COMMENTS: usize = 10;

/// How the loop ended without an outage.
enum End {
    Answer(Parsed, bool),
    /// No usable answer; the reason is for the approver and the logs.
    Unusable(String),
}

/// Drafts with a language model.
#[derive(Debug)]
pub struct ModelDrafter {
    config: ModelConfig,
    system_prompt: String,
    client: ModelClient,
    rules: RulesDrafter,
    metrics: DrafterMetrics,
}

impl ModelDrafter {
    /// `policy` is the operator's system prompt (or the built-in one);
    /// `rules` is the fallback drafter.
    pub fn new(config: ModelConfig, policy: &str, rules: RulesDrafter) -> Result<Self, CallError> {
        let client = ModelClient::new(&config)?;
        let metrics = DrafterMetrics::new(config.provider.label(), &config.model);
        Ok(Self {
            system_prompt: format!("{}{}", policy.trim_end(), prompt::output_contract()),
            client,
            rules,
            metrics,
            config,
        })
    }

    pub fn metrics(&self) -> &DrafterMetrics {
        &self.metrics
    }

    fn info(&self) -> DraftInfo {
        DraftInfo {
            drafter: self.config.provider.label().to_owned(),
            model: Some(self.config.model.clone()),
            ..DraftInfo::default()
        }
    }

    async fn run(&self, ctx: &TicketContext) -> Result<End, CallError> {
        let deadline = Instant::now() + self.config.timeout;
        let mut toolbox = Toolbox::new(ctx);
        let mut messages = vec![Message::User(prompt::ticket_message(ctx, PROMPT_COMMENTS))];
        let mut used = Usage::default();
        let mut repaired = false;
        for step in 1..=self.config.max_steps {
            if used.total() >= self.config.token_budget {
                return Ok(End::Unusable(format!(
                    "token budget of {} used up",
                    self.config.token_budget
                )));
            }
            let span = tracing::info_span!(
                "drafter.model_call",
                otel.kind = "client",
                provider = self.config.provider.label(),
                model = %self.config.model,
                ticket_id = ctx.ticket.id,
                event_id = %ctx.event.event_id,
                step,
                attempt = field::Empty,
                status = field::Empty,
                prompt_tokens = field::Empty,
                completion_tokens = field::Empty,
            );
            let req = ChatRequest {
                model: &self.config.model,
                system: &self.system_prompt,
                messages: &messages,
                tools: toolbox.specs(),
                temperature: self.config.temperature,
                max_tokens: self.config.max_tokens,
            };
            let started = Instant::now();
            let result = self
                .client
                .complete(&req, deadline)
                .instrument(span.clone())
                .await;
            self.metrics.call(started.elapsed().as_secs_f64());
            let turn = match result {
                Ok(turn) => turn,
                Err(CallError::Refused(why)) => return Ok(End::Unusable(why)),
                Err(e) => return Err(e),
            };
            span.record("prompt_tokens", turn.usage.prompt);
            span.record("completion_tokens", turn.usage.completion);
            used.add(turn.usage);
            self.metrics.usage(
                turn.usage.prompt,
                turn.usage.completion,
                turn.usage.prompt as f64 / 1000.0 * self.config.price_prompt_per_1k
                    + turn.usage.completion as f64 / 1000.0 * self.config.price_completion_per_1k,
            );
            if !turn.tool_calls.is_empty() {
                let results = toolbox.run_all(&turn.tool_calls).await;
                for r in &results {
                    let known = tools::specs().iter().any(|s| s.name == r.name);
                    self.metrics
                        .tool(if known { &r.name } else { "unknown" }, !r.is_error);
                }
                messages.push(Message::Assistant {
                    text: turn.text,
                    tool_calls: turn.tool_calls,
                });
                messages.push(Message::ToolResults(results));
                continue;
            }
            let text = turn.text.unwrap_or_default();
            match output::parse(&text, &toolbox.articles) {
                Ok(parsed) => return Ok(End::Answer(parsed, repaired)),
                Err(problems) if !repaired => {
                    tracing::info!(
                        problems = problems.len(),
                        "model answer invalid; asking for a repair"
                    );
                    repaired = true;
                    messages.push(Message::Assistant {
                        text: Some(if text.is_empty() {
                            "(no answer)".to_owned()
                        } else {
                            text
                        }),
                        tool_calls: Vec::new(),
                    });
                    messages.push(Message::User(prompt::repair_message(&problems)));
                }
                Err(problems) => {
                    return Ok(End::Unusable(format!(
                        "the answer stayed invalid after one repair: {}",
                        problems.join("; ")
                    )));
                }
            }
        }
        Ok(End::Unusable(format!(
            "no answer within {} model calls",
            self.config.max_steps
        )))
    }

    /// The rules drafter's proposal, else a note asking a human to take over.
    fn fallback(&self, ctx: &TicketContext, reason: &str) -> Proposal {
        let reason = truncate(reason, 500);
        if self.config.fallback == Fallback::Rules
            && let Some(mut p) = self.rules.evaluate(ctx)
        {
            self.metrics.draft("fallback_rules");
            p.reasons.push(format!("model draft unusable: {reason}"));
            p.info = Some(DraftInfo {
                drafter: "rules (fallback)".to_owned(),
                model: Some(self.config.model.clone()),
                ..DraftInfo::default()
            });
            return p;
        }
        self.metrics.draft("needs_human");
        Proposal {
            draft: Draft::InternalNote {
                body: format!(
                    "The model drafter could not produce a usable proposal for this ticket ({reason}). Please handle it yourself."
                ),
                fields: FieldChanges::default(),
            },
            reasons: vec![format!("needs a human: {reason}")],
            info: Some(DraftInfo {
                needs_human: true,
                ..self.info()
            }),
        }
    }
}

impl Drafter for ModelDrafter {
    fn name(&self) -> &str {
        self.config.provider.label()
    }

    fn draft<'a>(
        &'a self,
        ctx: &'a TicketContext,
    ) -> BoxFuture<'a, Result<Option<Proposal>, DraftError>> {
        Box::pin(async move {
            match self.run(ctx).await {
                Ok(End::Answer(parsed, repaired)) => {
                    self.metrics
                        .draft(if repaired { "repaired" } else { "proposed" });
                    Ok(Some(Proposal {
                        draft: parsed.draft,
                        reasons: parsed.reasons,
                        info: Some(DraftInfo {
                            confidence_pct: Some(parsed.confidence_pct),
                            citations: parsed.citations,
                            ..self.info()
                        }),
                    }))
                }
                Ok(End::Unusable(reason)) => {
                    tracing::warn!(%reason, "model draft unusable; falling back");
                    Ok(Some(self.fallback(ctx, &reason)))
                }
                Err(CallError::Unavailable {
                    message,
                    retry_after,
                }) => {
                    self.metrics.draft("unavailable");
                    Err(DraftError::retry_after(message, retry_after))
                }
                Err(e @ (CallError::Config(_) | CallError::Refused(_))) => {
                    self.metrics.draft("unavailable");
                    Err(DraftError::permanent(e.to_string()))
                }
            }
        })
    }

    fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
    }
}
