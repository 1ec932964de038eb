//! The drafting side: every replica pulls from every partition consumer, one
//! message at a time; the server's `max_ack_pending = 1` makes each partition
//! (and so each ticket) strictly sequential across all replicas.

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::PullConsumer;
use tracing::{Instrument, field};
use zengate_runtime::Shutdown;
use zengate_runtime::bus::{self, Settled, Verdict};

use crate::app::WorkerState;
use crate::handler;
use crate::topology;

/// Runs one partition's pull loop until shutdown.
pub async fn run(state: Arc<WorkerState>, consumer: PullConsumer, shutdown: Shutdown) {
    let metrics = state.clone();
    let settler = state
        .settler()
        .original_subject(topology::original_subject)
        .on_settled(Arc::new(move |label, settled| {
            let m = &metrics.metrics;
            match (settled, label) {
                (Settled::Acked, Some(label)) => m.event(label),
                (Settled::Retried, _) => m.event("retried"),
                (Settled::DeadLettered, _) => {
                    m.dead_letters.inc();
                    m.event("dead_lettered");
                }
                (Settled::LeaseLost, _) => m.event("lease_lost"),
                _ => {}
            }
        }));
    let pull = state.pull(1);
    bus::consume(&consumer, pull, &settler, &shutdown, |msg| {
        let state = state.clone();
        async move { on_message(&state, &msg).await }
    })
    .await;
}

async fn on_message(state: &WorkerState, msg: &Message) -> Verdict {
    let started = Instant::now();
    let (_, delivered) = bus::position(msg);
    let original = topology::original_subject(msg.subject.as_str()).unwrap_or(msg.subject.as_str());
    let span = tracing::info_span!(
        "worker.event",
        subject = %original,
        event_id = field::Empty,
        ticket_id = field::Empty,
        approval_id = field::Empty,
    );
    async {
        let verdict = if delivered > u64::from(state.config.max_deliver) {
            // The consumer allows one delivery beyond the configured attempts
            // so that a replica dying during the last attempt still leaves a
            // dead letter instead of a silently skipped event.
            Verdict::GiveUp("the worker stopped during the last attempt".to_owned())
        } else {
            match handler::handle(state, original, msg.headers.as_ref(), &msg.payload).await {
                Ok(handled) => {
                    tracing::debug!(outcome = handled.label(), "event handled");
                    Verdict::Done(handled.label())
                }
                Err(failure) => failure.into(),
            }
        };
        state
            .metrics
            .handle_seconds
            .observe(started.elapsed().as_secs_f64());
        verdict
    }
    .instrument(span)
    .await
}
