//! The drafting side: every replica pulls from every partition consumer, one
//! message at a time; the server's `max_ack_pending = 1` makes each partition
//! (and so each ticket) strictly sequential across all replicas.

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream;
use async_nats::jetstream::consumer::PullConsumer;
use tracing::{Instrument, field};
use zengate_runtime::Shutdown;
use zengate_runtime::telemetry::continue_trace;

use crate::app::WorkerState;
use crate::delivery::{self, LeaseLost, Settled, Verdict};
use crate::handler::{self, Failure};
use crate::topology;

/// Runs one partition's pull loop until shutdown.
pub async fn run(state: Arc<WorkerState>, consumer: PullConsumer, shutdown: Shutdown) {
    let fetch_wait = state.config.fetch_wait;
    delivery::pull_loop(consumer, fetch_wait, shutdown, |msg| {
        let state = state.clone();
        async move { on_message(&state, msg).await }
    })
    .await;
}

async fn on_message(state: &WorkerState, msg: jetstream::Message) {
    let started = Instant::now();
    let (seq, delivered) = delivery::position(&msg);
    let original = topology::original_subject(msg.subject.as_str())
        .unwrap_or(msg.subject.as_str())
        .to_owned();
    let span = tracing::info_span!(
        "worker.event",
        subject = %original,
        stream_sequence = seq,
        delivered,
        event_id = field::Empty,
        ticket_id = field::Empty,
        approval_id = field::Empty,
    );
    continue_trace(&span, msg.headers.as_ref());
    async {
        let max = u64::from(state.config.max_deliver);
        let settled = if delivered > max {
            // The consumer allows one delivery beyond the configured attempts
            // so that a replica dying during the last attempt still leaves a
            // dead letter instead of a silently skipped event.
            delivery::dead_letter(
                state,
                &msg,
                &original,
                delivered,
                "the worker stopped during the last attempt",
            )
            .await
        } else {
            let work = handler::handle(state, &original, msg.headers.as_ref(), &msg.payload);
            match delivery::with_lease(&msg, state.config.ack_wait, work).await {
                Ok(result) => {
                    let verdict = match result {
                        Ok(handled) => {
                            tracing::debug!(outcome = handled.label(), "event handled");
                            Verdict::Done(handled.label())
                        }
                        Err(Failure::Retryable(r)) => Verdict::Retry(r, None),
                        Err(Failure::RetryAfter(r, after)) => Verdict::Retry(r, Some(after)),
                        Err(Failure::Permanent(r)) => Verdict::GiveUp(r),
                    };
                    let label = match &verdict {
                        Verdict::Done(l) => Some(*l),
                        _ => None,
                    };
                    let settled =
                        delivery::settle(state, &msg, &original, delivered, verdict).await;
                    if let (Some(label), Settled::Acked) = (label, settled) {
                        state.metrics.event(label);
                    }
                    settled
                }
                Err(LeaseLost) => {
                    state.metrics.event("lease_lost");
                    Settled::Unsettled
                }
            }
        };
        match settled {
            Settled::Retried => state.metrics.event("retried"),
            Settled::DeadLettered => state.metrics.event("dead_lettered"),
            Settled::Acked | Settled::Unsettled => {}
        }
        state
            .metrics
            .handle_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await;
}
