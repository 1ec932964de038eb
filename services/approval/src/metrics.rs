//! Approval metrics (Prometheus/OpenMetrics text at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct ApprovalMetrics {
    pub pending: Gauge,
    /// Items held in the in-memory index (open + recent settled).
    pub indexed: Gauge,
    pub decisions: Family<OutcomeLabel, Counter>,
    pub expiries: Counter,
    /// Approved items found without a valid release seal (never released).
    pub unsealed: Counter,
    pub conflicts: Counter,
    pub intake: Family<OutcomeLabel, Counter>,
    pub republished: Counter,
    pub sweeps: Counter,
    pub api_seconds: Family<RouteLabel, Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl ApprovalMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            pending: Gauge::default(),
            indexed: Gauge::default(),
            decisions: Family::default(),
            expiries: Counter::default(),
            unsealed: Counter::default(),
            conflicts: Counter::default(),
            intake: Family::default(),
            republished: Counter::default(),
            sweeps: Counter::default(),
            api_seconds: Family::new_with_constructor(latency_histogram),
        };
        let r = registry.sub_registry_with_prefix("zengate_approval");
        r.register("pending", "Items waiting for a decision", m.pending.clone());
        r.register(
            "indexed",
            "Items held in memory: every open item and the newest APPROVAL_RECENT_LIMIT settled ones",
            m.indexed.clone(),
        );
        r.register(
            "decisions",
            "Decisions by outcome (approved, rejected, expired, escalated)",
            m.decisions.clone(),
        );
        r.register(
            "expiries",
            "Items that timed out (expired or escalated)",
            m.expiries.clone(),
        );
        r.register(
            "unsealed",
            "Approved items without a valid release seal, never published (written to the bucket by someone else)",
            m.unsealed.clone(),
        );
        r.register(
            "conflicts",
            "Decisions refused because the item was already decided",
            m.conflicts.clone(),
        );
        r.register(
            "intake",
            "Approval requests consumed, by outcome (stored, duplicate, invalid)",
            m.intake.clone(),
        );
        r.register(
            "republished",
            "Decided/released events re-published by the reconciler",
            m.republished.clone(),
        );
        r.register(
            "sweeps",
            "Completed expiry/reconciliation passes",
            m.sweeps.clone(),
        );
        r.register(
            "api_seconds",
            "HTTP request latency by route and status",
            m.api_seconds.clone(),
        );
        m
    }

    pub fn decision(&self, outcome: &str) {
        self.decisions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn intake(&self, outcome: &str) {
        self.intake
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}
