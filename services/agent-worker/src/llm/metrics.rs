//! Model drafter metrics: drafts by provider, model and outcome, model call
//! latency, tokens, estimated cost and tool calls. Registered under
//! `zengate_drafter_*` in the worker's `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub provider: String,
    pub model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DraftLabels {
    pub provider: String,
    pub model: String,
    /// `proposed`, `repaired`, `fallback_rules`, `needs_human`, `unavailable`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub provider: String,
    pub model: String,
    /// `prompt` or `completion`.
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub tool: String,
    /// `ok` or `error`.
    pub outcome: String,
}

fn model_call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// Shared by clones; registered once per worker.
#[derive(Debug, Clone)]
pub struct DrafterMetrics {
    labels: ModelLabels,
    pub drafts: Family<DraftLabels, Counter>,
    pub call_seconds: Family<ModelLabels, Histogram, fn() -> Histogram>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost: Family<ModelLabels, Counter<f64, AtomicU64>>,
    pub tool_calls: Family<ToolLabels, Counter>,
}

impl DrafterMetrics {
    pub fn new(provider: &str, model: &str) -> Self {
        Self {
            labels: ModelLabels {
                provider: provider.to_owned(),
                model: model.to_owned(),
            },
            drafts: Family::default(),
            call_seconds: Family::new_with_constructor(model_call_histogram),
            tokens: Family::default(),
            cost: Family::default(),
            tool_calls: Family::default(),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("zengate_drafter");
        r.register(
            "drafts",
            "Model drafts by provider, model and outcome",
            self.drafts.clone(),
        );
        r.register(
            "model_call_seconds",
            "Latency of one model call, retries included",
            self.call_seconds.clone(),
        );
        r.register(
            "tokens",
            "Tokens used by model calls, by kind (prompt, completion)",
            self.tokens.clone(),
        );
        r.register(
            "estimated_cost",
            "Estimated model cost from DRAFTER_PRICE_*_PER_1K",
            self.cost.clone(),
        );
        r.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            self.tool_calls.clone(),
        );
    }

    pub fn draft(&self, outcome: &str) {
        self.drafts
            .get_or_create(&DraftLabels {
                provider: self.labels.provider.clone(),
                model: self.labels.model.clone(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn call(&self, seconds: f64) {
        self.call_seconds
            .get_or_create(&self.labels)
            .observe(seconds);
    }

    pub fn usage(&self, prompt: u64, completion: u64, cost: f64) {
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    provider: self.labels.provider.clone(),
                    model: self.labels.model.clone(),
                    kind: kind.to_owned(),
                })
                .inc_by(n);
        }
        if cost > 0.0 {
            self.cost.get_or_create(&self.labels).inc_by(cost);
        }
    }

    pub fn tool(&self, tool: &str, ok: bool) {
        self.tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.to_owned(),
                outcome: if ok { "ok" } else { "error" }.to_owned(),
            })
            .inc();
    }
}
