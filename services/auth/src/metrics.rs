//! Auth metrics (Prometheus/OpenMetrics text at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Debug)]
pub struct AuthMetrics {
    pub issued: Family<KindLabel, Counter>,
    pub refusals: Family<ReasonLabel, Counter>,
    pub issue_seconds: Histogram,
    pub audit_buffered: Gauge,
    pub audit_dropped: Counter,
    pub audit_published: Counter,
    pub rate_limit_skipped: Counter,
}

impl AuthMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            issued: Family::default(),
            refusals: Family::default(),
            issue_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            audit_buffered: Gauge::default(),
            audit_dropped: Counter::default(),
            audit_published: Counter::default(),
            rate_limit_skipped: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("zengate_auth");
        r.register("issued", "JWTs issued, by kind", m.issued.clone());
        r.register(
            "refusals",
            "Token requests refused, by reason",
            m.refusals.clone(),
        );
        r.register(
            "issue_seconds",
            "Time to answer a successful token request",
            m.issue_seconds.clone(),
        );
        r.register(
            "audit_buffered",
            "Issuance audits waiting to be published to NATS",
            m.audit_buffered.clone(),
        );
        r.register(
            "audit_dropped",
            "Issuance audits lost because the buffer was full",
            m.audit_dropped.clone(),
        );
        r.register(
            "audit_published",
            "Issuance audits stored in the ZENGATE stream",
            m.audit_published.clone(),
        );
        r.register(
            "rate_limit_skipped",
            "Requests served without a rate-limit check because Redis failed",
            m.rate_limit_skipped.clone(),
        );
        m
    }

    pub fn refuse(&self, reason: &str) {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn issued(&self, kind: &str) {
        self.issued
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }
}
