//! Issuance audits on the bus without putting the bus in the request path.
//!
//! Issuance only appends to a bounded in-memory queue; a background task
//! publishes to JetStream and removes an audit only once its PubAck arrived.
//! While NATS is away audits wait (retried with backoff); when the queue is
//! full the newest audit is dropped, counted and logged as an error, so a
//! long outage costs audits visibly rather than memory or availability.
//! `Nats-Msg-Id` is the `jti`, so a retry after a lost ack is deduplicated;
//! `traceparent` is the issuing request's, recorded when it was queued.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use zengate_core::events::{JwtIssued, jwt_issued_subject};
use zengate_core::headers as h;
use zengate_runtime::Shutdown;
use zengate_runtime::bus::{PublishError, Publisher};
use zengate_runtime::telemetry::current_traceparent;

use crate::metrics::AuthMetrics;

/// Audits published per round trip.
const BATCH: usize = 256;
/// Longest wait between retries while NATS is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long shutdown keeps trying to publish what is left.
const FINAL_FLUSH: Duration = Duration::from_secs(3);

/// An audit and the trace it belongs to.
#[derive(Debug, Clone)]
struct Queued {
    event: JwtIssued,
    traceparent: Option<String>,
}

/// Audits waiting, and how many the drainer has taken out to publish: both
/// count against the capacity and as buffered until they are acknowledged.
#[derive(Debug, Default)]
struct Held {
    waiting: VecDeque<Queued>,
    in_flight: usize,
}

impl Held {
    fn len(&self) -> usize {
        self.waiting.len() + self.in_flight
    }
}

#[derive(Debug)]
pub struct AuditQueue {
    queue: Mutex<Held>,
    capacity: usize,
    notify: tokio::sync::Notify,
    metrics: Arc<AuthMetrics>,
}

impl AuditQueue {
    pub fn new(capacity: usize, metrics: Arc<AuthMetrics>) -> Self {
        Self {
            queue: Mutex::new(Held::default()),
            capacity,
            notify: tokio::sync::Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queues an audit; never waits. Returns false when it had to be dropped.
    pub fn push(&self, event: JwtIssued) -> bool {
        let mut q = self.lock();
        if q.len() >= self.capacity {
            drop(q);
            self.metrics.audit_dropped.inc();
            tracing::error!(
                kind = %event.kind,
                jti = %event.jti,
                iat = event.iat,
                client_ip = event.client_ip.as_deref().unwrap_or("-"),
                user = %event.user_token_hash,
                capacity = self.capacity,
                "audit buffer full; issuance audit dropped"
            );
            return false;
        }
        q.waiting.push_back(Queued {
            event,
            traceparent: current_traceparent(),
        });
        self.metrics.audit_buffered.set(q.len() as i64);
        drop(q);
        self.notify.notify_one();
        true
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the oldest audits out to publish; they still count as held
    /// until [`AuditQueue::settle`].
    fn take_batch(&self) -> Vec<Queued> {
        let mut q = self.lock();
        let n = q.waiting.len().min(BATCH);
        q.in_flight += n;
        q.waiting.drain(..n).collect()
    }

    /// Ends the `n` audits taken out: the failed ones go back in front, in
    /// their order.
    fn settle(&self, n: usize, failed: Vec<Queued>) {
        let mut q = self.lock();
        q.in_flight = q.in_flight.saturating_sub(n);
        for e in failed.into_iter().rev() {
            q.waiting.push_front(e);
        }
        self.metrics.audit_buffered.set(q.len() as i64);
    }

    /// Publishes one batch; returns how many failed.
    async fn publish_batch(&self, publisher: &Publisher) -> usize {
        let batch = self.take_batch();
        if batch.is_empty() {
            return 0;
        }
        let sends = batch.iter().map(|q| async move {
            let trace: &[(&'static str, &str)] = match &q.traceparent {
                Some(t) => &[(h::TRACEPARENT, t.as_str())],
                None => &[],
            };
            let sent = publisher
                .json_with_headers(
                    jwt_issued_subject(&q.event.kind),
                    &q.event.jti,
                    &q.event,
                    trace,
                )
                .await;
            // An audit that cannot be encoded never will be: do not retry it.
            matches!(sent, Ok(_) | Err(PublishError::Encode(_)))
        });
        let results = join_all(sends).await;
        let n = batch.len();
        let failed: Vec<Queued> = batch
            .into_iter()
            .zip(results)
            .filter_map(|(e, ok)| (!ok).then_some(e))
            .collect();
        let failures = failed.len();
        self.metrics.audit_published.inc_by((n - failures) as u64);
        self.settle(n, failed);
        failures
    }

    /// The background publisher: runs until `shutdown`, then tries for a
    /// little longer to publish what is left.
    pub async fn drain(self: Arc<Self>, publisher: Publisher, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(50);
        let mut warned = false;
        loop {
            if self.is_empty() {
                tokio::select! {
                    _ = self.notify.notified() => {}
                    _ = shutdown.wait() => break,
                }
                continue;
            }
            if self.publish_batch(&publisher).await == 0 {
                if warned {
                    tracing::info!("audit publishing recovered");
                    warned = false;
                }
                backoff = Duration::from_millis(50);
                continue;
            }
            if !warned {
                tracing::warn!(
                    buffered = self.len(),
                    "cannot publish issuance audits; buffering and retrying"
                );
                warned = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.wait() => break,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let deadline = tokio::time::Instant::now() + FINAL_FLUSH;
        while !self.is_empty() && tokio::time::Instant::now() < deadline {
            if self.publish_batch(&publisher).await > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if !self.is_empty() {
            tracing::error!(
                unsent = self.len(),
                "shutting down with issuance audits not published"
            );
        }
    }
}
