//! Worker metrics (Prometheus/OpenMetrics text at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Debug)]
pub struct WorkerMetrics {
    /// Ticket events by outcome: proposed, no_proposal, duplicate, skipped_*,
    /// retried, dead_lettered.
    pub events: Family<OutcomeLabel, Counter>,
    pub proposals: Counter,
    pub dead_letters: Counter,
    /// Executions by outcome: applied, failed, replayed, retried.
    pub executions: Family<OutcomeLabel, Counter>,
    /// Seconds from receiving a ticket event to its acknowledgement.
    pub handle_seconds: Histogram,
    pub execute_seconds: Histogram,
    /// Releases refused by verification, by reason (forged, altered, …).
    pub releases_refused: Family<ReasonLabel, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

impl WorkerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            events: Family::default(),
            proposals: Counter::default(),
            dead_letters: Counter::default(),
            executions: Family::default(),
            handle_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            execute_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            releases_refused: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("zengate_worker");
        r.register(
            "events",
            "Ticket events handled, by outcome",
            m.events.clone(),
        );
        r.register(
            "proposals",
            "Proposals published for approval",
            m.proposals.clone(),
        );
        r.register(
            "dead_letters",
            "Messages given up on and published to zengate.dlq.>",
            m.dead_letters.clone(),
        );
        r.register(
            "executions",
            "Released approvals executed, by outcome",
            m.executions.clone(),
        );
        r.register(
            "handle_seconds",
            "Time to handle one ticket event",
            m.handle_seconds.clone(),
        );
        r.register(
            "execute_seconds",
            "Time to execute one released approval",
            m.execute_seconds.clone(),
        );
        r.register(
            "releases_refused",
            "Releases refused before any write (bad or missing signature, no approved item, altered action), by reason",
            m.releases_refused.clone(),
        );
        m
    }

    pub fn release_refused(&self, reason: &str) {
        self.releases_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn event(&self, outcome: &str) {
        self.events
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn execution(&self, outcome: &str) {
        self.executions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}
