//! Ingress metrics (Prometheus/OpenMetrics text at `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::breaker::BreakerMetrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Debug)]
pub struct IngressMetrics {
    pub requests: Family<StatusLabel, Counter>,
    pub rejections: Family<ReasonLabel, Counter>,
    pub publish_seconds: Histogram,
    pub dedup_hits: Family<SourceLabel, Counter>,
    pub published: Counter,
    pub redis_degraded: Counter,
    pub redis_lookups_skipped: Counter,
    pub breaker: BreakerMetrics,
    pub redis_unrecorded: Counter,
    pub inflight_body_bytes: Gauge,
    /// The `status="200"` series of `requests`.
    ok: Counter,
}

impl IngressMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let mut m = Self {
            requests: Family::default(),
            rejections: Family::default(),
            publish_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            dedup_hits: Family::default(),
            published: Counter::default(),
            redis_degraded: Counter::default(),
            redis_lookups_skipped: Counter::default(),
            breaker: BreakerMetrics::default(),
            redis_unrecorded: Counter::default(),
            inflight_body_bytes: Gauge::default(),
            ok: Counter::default(),
        };
        m.ok = m
            .requests
            .get_or_create(&StatusLabel {
                status: "200".to_owned(),
            })
            .clone();
        let r = registry.sub_registry_with_prefix("zengate_ingress");
        r.register(
            "requests",
            "Webhook requests by response status",
            m.requests.clone(),
        );
        r.register(
            "rejections",
            "Refused deliveries by reason",
            m.rejections.clone(),
        );
        r.register(
            "publish_seconds",
            "Time from publish to JetStream PubAck",
            m.publish_seconds.clone(),
        );
        r.register(
            "dedup_hits",
            "Deliveries recognised as duplicates, by where they were caught",
            m.dedup_hits.clone(),
        );
        r.register(
            "published",
            "Events newly stored in JetStream",
            m.published.clone(),
        );
        r.register(
            "redis_degraded",
            "Requests served without the Redis dedup check (Redis failed, or its breaker was open)",
            m.redis_degraded.clone(),
        );
        r.register(
            "redis_lookups_skipped",
            "Events young enough for the JetStream duplicate window to deduplicate alone, so Redis was not asked",
            m.redis_lookups_skipped.clone(),
        );
        r.register(
            "redis_breaker_open",
            "1 while the Redis breaker is open (Redis skipped, dedup on the JetStream window alone)",
            m.breaker.open.clone(),
        );
        r.register(
            "redis_breaker_trips",
            "Times the Redis breaker opened",
            m.breaker.trips.clone(),
        );
        r.register(
            "redis_unrecorded",
            "Durable event ids never written to Redis (write backlog full during an outage)",
            m.redis_unrecorded.clone(),
        );
        r.register(
            "inflight_body_bytes",
            "Request body bytes reserved against INGRESS_MAX_INFLIGHT_BYTES",
            m.inflight_body_bytes.clone(),
        );
        m
    }

    /// Counts a response; `200`, by far the most common, without building a
    /// label.
    pub fn count_status(&self, status: u16) {
        if status == 200 {
            self.ok.inc();
        } else {
            self.requests
                .get_or_create(&StatusLabel {
                    status: status.to_string(),
                })
                .inc();
        }
    }

    pub fn reject(&self, reason: &str) {
        self.rejections
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn dedup_hit(&self, source: &str) {
        self.dedup_hits
            .get_or_create(&SourceLabel {
                source: source.to_owned(),
            })
            .inc();
    }
}
