//! What every consumer loop does with one JetStream delivery: hold its lease
//! while it is being handled (and stop if the lease is lost), then ack it, redeliver it later with backoff,
//! or (on its last delivery) dead-letter it and ack it so its partition moves
//! on. Also the pull loop itself, shared by partitions and the executor.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::time::Instant;
use zengate_runtime::Shutdown;

use crate::app::WorkerState;
use crate::dlq;

/// Longest `Retry-After` honoured when scheduling a redelivery.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// What the handler decided about one delivery.
#[derive(Debug)]
pub enum Verdict {
    /// Handled; `label` is the metrics outcome.
    Done(&'static str),
    /// Try again on a later delivery, not before the delay if one is given.
    Retry(String, Option<Duration>),
    /// Never going to work: dead-letter now.
    GiveUp(String),
}

/// What became of the delivery (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Acked,
    Retried,
    DeadLettered,
    /// The ack/nak could not be sent; JetStream will redeliver after ack_wait.
    Unsettled,
}

/// The delivery's lease ran out before the work finished: the server may
/// hand the message to another replica at any moment, so the work was
/// stopped and the message is left unsettled (it will be redelivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseLost;

/// Runs `work` while holding the delivery's lease: a progress ack every
/// `ack_wait / 4`, each confirmed by the server. The server redelivers a
/// message `ack_wait` after the last progress it processed, so while one
/// was confirmed less than `3/4 · ack_wait` ago nobody else can have it.
/// Past that (NATS unreachable, a stalled process) the work is dropped
/// before the server can redeliver: one ticket never has two deliveries in
/// flight, whatever the ack wait. A dead replica's messages come back
/// `ack_wait` after its last progress ack.
pub async fn with_lease<T>(
    msg: &jetstream::Message,
    ack_wait: Duration,
    work: impl Future<Output = T>,
) -> Result<T, LeaseLost> {
    let every = ack_wait / 4;
    let hold = ack_wait - every;
    // The server started the clock when it sent the message, a moment
    // before it arrived; the quarter of `ack_wait` kept back covers that.
    let mut confirmed = Instant::now();
    let mut tick = tokio::time::interval_at(confirmed + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress: Option<Pin<Box<dyn Future<Output = Option<Instant>> + Send + '_>>> = None;
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return Ok(out),
            sent = async {
                match progress.as_mut() {
                    Some(p) => p.await,
                    None => std::future::pending().await,
                }
            }, if progress.is_some() => {
                progress = None;
                if let Some(sent) = sent {
                    confirmed = confirmed.max(sent);
                }
            }
            _ = tick.tick(), if progress.is_none() => {
                let sent = Instant::now();
                progress = Some(Box::pin(async move {
                    match tokio::time::timeout(every, msg.double_ack_with(AckKind::Progress)).await {
                        Ok(Ok(())) => Some(sent),
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "progress ack failed");
                            None
                        }
                        Err(_) => {
                            tracing::debug!("progress ack not confirmed in time");
                            None
                        }
                    }
                }));
            }
            () = tokio::time::sleep_until(confirmed + hold) => {
                tracing::warn!(
                    unconfirmed_for = ?confirmed.elapsed(),
                    "delivery lease lost (no progress ack confirmed); stopping this attempt, \
                     the message will be redelivered"
                );
                return Err(LeaseLost);
            }
        }
    }
}

/// Settles `msg` according to `verdict`. `delivered` is 1-based;
/// `max_deliver` is the configured number of attempts.
pub async fn settle(
    state: &WorkerState,
    msg: &jetstream::Message,
    original_subject: &str,
    delivered: u64,
    verdict: Verdict,
) -> Settled {
    let max = u64::from(state.config.max_deliver);
    let reason = match verdict {
        Verdict::Done(_) => return ack(msg).await,
        Verdict::Retry(reason, after) if delivered < max => {
            let delay = state
                .config
                .backoff(delivered)
                .max(after.unwrap_or_default().min(MAX_RETRY_AFTER));
            tracing::warn!(%reason, delivered, retry_in = ?delay, "handling failed; will retry");
            return match msg.ack_with(AckKind::Nak(Some(delay))).await {
                Ok(()) => Settled::Retried,
                Err(e) => {
                    tracing::warn!(error = %e, "nak failed");
                    Settled::Unsettled
                }
            };
        }
        Verdict::Retry(reason, _) => format!("gave up after {delivered} deliveries: {reason}"),
        Verdict::GiveUp(reason) => reason,
    };
    dead_letter(state, msg, original_subject, delivered, &reason).await
}

/// Publishes the dead letter, then acks (a failed publish naks instead, so
/// the message is not lost).
pub async fn dead_letter(
    state: &WorkerState,
    msg: &jetstream::Message,
    original_subject: &str,
    delivered: u64,
    reason: &str,
) -> Settled {
    let (stream, seq) = msg
        .info()
        .map(|i| (i.stream.to_owned(), i.stream_sequence))
        .unwrap_or_default();
    let letter = dlq::dead_letter(
        original_subject,
        &stream,
        seq,
        delivered,
        reason,
        msg.headers.as_ref(),
        &msg.payload,
    );
    match dlq::publish(&state.publisher, &letter).await {
        Ok(()) => {
            state.metrics.dead_letters.inc();
            tracing::error!(%reason, delivered, "message dead-lettered");
            match ack(msg).await {
                Settled::Acked => Settled::DeadLettered,
                other => other,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, %reason, "cannot dead-letter; will retry");
            let _ = msg
                .ack_with(AckKind::Nak(Some(state.config.retry_backoff)))
                .await;
            Settled::Retried
        }
    }
}

async fn ack(msg: &jetstream::Message) -> Settled {
    // A confirmed ack: with max_ack_pending = 1 the next message of the
    // partition is only released once the server has processed it.
    match msg.double_ack().await {
        Ok(()) => Settled::Acked,
        Err(e) => {
            tracing::warn!(error = %e, "ack failed; the message will be redelivered");
            Settled::Unsettled
        }
    }
}

/// The message's stream sequence and 1-based delivery count (`(0, 1)` when
/// the reply subject carries no JetStream metadata).
pub fn position(msg: &jetstream::Message) -> (u64, u64) {
    msg.info()
        .map(|i| (i.stream_sequence, u64::try_from(i.delivered).unwrap_or(1)))
        .unwrap_or((0, 1))
}

/// Pulls one message at a time from `consumer` until shutdown, handing each
/// to `on_message`. A message that arrives after shutdown started is nak'ed
/// at once so another replica takes it without waiting for `ack_wait`.
pub async fn pull_loop<F, Fut>(
    consumer: PullConsumer,
    fetch_wait: Duration,
    shutdown: Shutdown,
    mut on_message: F,
) where
    F: FnMut(jetstream::Message) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        let batch = consumer
            .batch()
            .max_messages(1)
            .expires(fetch_wait)
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => {
                pause = Duration::from_millis(100);
                b
            }
            Err(e) => {
                tracing::warn!(error = %e, "pull request failed");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.wait() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        while let Some(next) = batch.next().await {
            match next {
                Ok(msg) if shutdown.is_triggered() => {
                    let _ = msg.ack_with(AckKind::Nak(None)).await;
                }
                Ok(msg) => on_message(msg).await,
                Err(e) => {
                    tracing::debug!(error = %e, "pull batch ended with an error");
                    break;
                }
            }
        }
    }
}
