//! Consuming JetStream: one loop pulls messages, hands each to a handler
//! that answers a [`Verdict`] while it holds the delivery's lease (confirmed
//! progress acks; the work stops when the lease is lost), and one
//! [`Settler`] turns the verdict into an ack, a delayed redelivery with
//! backoff, or (when it will never work, or on its last delivery) a dead
//! letter followed by an ack so whatever it blocked moves on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Publisher, dead_letter};
use crate::Shutdown;
use crate::telemetry::continue_trace;

/// Longest `Retry-After` honoured when scheduling a redelivery.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// What a handler decided about one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled; the label names the outcome (metrics).
    Done(&'static str),
    /// Try again on a later delivery, not before the delay if one is given.
    Retry(String, Option<Duration>),
    /// Never going to work: dead-letter now.
    GiveUp(String),
}

/// What became of the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Acked,
    Retried,
    DeadLettered,
    /// The ack/nak could not be sent; JetStream will redeliver after ack_wait.
    Unsettled,
    /// The handler was stopped because its lease could not be renewed; the
    /// message is left to be redelivered.
    LeaseLost,
}

/// Redelivery delays: `first`, doubling per delivery, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before delivery `delivered + 1` (`delivered` is 1-based).
    pub fn after(&self, delivered: u64) -> Duration {
        let exp = delivered.saturating_sub(1).min(16) as u32;
        self.first
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.max)
    }
}

/// Called with each delivery's outcome label (`Some` for [`Verdict::Done`])
/// and what became of it.
pub type OnSettled = Arc<dyn Fn(Option<&'static str>, Settled) + Send + Sync>;

/// Settles deliveries: acks, naks with backoff, dead-letters.
#[derive(Clone)]
pub struct Settler {
    publisher: Publisher,
    max_deliver: u64,
    backoff: Backoff,
    original_subject: fn(&str) -> Option<&str>,
    on_settled: Option<OnSettled>,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler")
            .field("max_deliver", &self.max_deliver)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl Settler {
    /// `max_deliver` attempts, dead letters through `publisher`.
    pub fn new(publisher: Publisher, max_deliver: u32, backoff: Backoff) -> Self {
        Self {
            publisher,
            max_deliver: u64::from(max_deliver),
            backoff,
            original_subject: |_| None,
            on_settled: None,
        }
    }

    /// Where a message was first published, when its subject was rewritten
    /// on the way (dead letters name the original).
    pub fn original_subject(mut self, map: fn(&str) -> Option<&str>) -> Self {
        self.original_subject = map;
        self
    }

    pub fn on_settled(mut self, hook: OnSettled) -> Self {
        self.on_settled = Some(hook);
        self
    }

    pub fn max_deliver(&self) -> u64 {
        self.max_deliver
    }

    /// Settles `msg` according to `verdict`.
    pub async fn settle(&self, msg: &Message, verdict: Verdict) -> Settled {
        let (_, delivered) = position(msg);
        let (label, settled) = match verdict {
            Verdict::Done(label) => (Some(label), ack(msg).await),
            Verdict::Retry(reason, after) if delivered < self.max_deliver => {
                let delay = self
                    .backoff
                    .after(delivered)
                    .max(after.unwrap_or_default().min(MAX_RETRY_AFTER));
                tracing::warn!(%reason, delivered, retry_in = ?delay, "handling failed; will retry");
                let settled = match msg.ack_with(AckKind::Nak(Some(delay))).await {
                    Ok(()) => Settled::Retried,
                    Err(e) => {
                        tracing::warn!(error = %e, "nak failed");
                        Settled::Unsettled
                    }
                };
                (None, settled)
            }
            Verdict::Retry(reason, _) => {
                let reason = format!("gave up after {delivered} deliveries: {reason}");
                (None, self.dead_letter(msg, &reason).await)
            }
            Verdict::GiveUp(reason) => (None, self.dead_letter(msg, &reason).await),
        };
        if let Some(hook) = &self.on_settled {
            hook(label, settled);
        }
        settled
    }

    /// Reports a delivery left unsettled because its lease was lost.
    fn lease_lost(&self) {
        if let Some(hook) = &self.on_settled {
            hook(None, Settled::LeaseLost);
        }
    }

    /// Publishes the dead letter, then acks (a failed publish naks instead,
    /// so the message is not lost).
    async fn dead_letter(&self, msg: &Message, reason: &str) -> Settled {
        let subject = msg.subject.as_str();
        let original = (self.original_subject)(subject).unwrap_or(subject);
        let letter = dead_letter::letter(msg, original, reason);
        match dead_letter::publish(&self.publisher, &letter).await {
            Ok(()) => {
                tracing::error!(%reason, delivered = letter.deliveries, "message dead-lettered");
                match ack(msg).await {
                    Settled::Acked => Settled::DeadLettered,
                    other => other,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, %reason, "cannot dead-letter; will retry");
                let _ = msg.ack_with(AckKind::Nak(Some(self.backoff.first))).await;
                Settled::Retried
            }
        }
    }
}

async fn ack(msg: &Message) -> Settled {
    // A confirmed ack: with max_ack_pending = 1 the next message of an
    // ordered partition is only released once the server has processed it.
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
pub fn position(msg: &Message) -> (u64, u64) {
    msg.info()
        .map(|i| (i.stream_sequence, u64::try_from(i.delivered).unwrap_or(1)))
        .unwrap_or((0, 1))
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
/// before the server can redeliver: one message never has two deliveries in
/// flight, whatever the ack wait. A dead replica's messages come back
/// `ack_wait` after its last progress ack.
pub async fn with_lease<T>(
    msg: &Message,
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

/// How [`consume`] pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pull {
    /// Messages per pull request (1 for strictly ordered partitions).
    pub batch: usize,
    /// Messages handled at once.
    pub concurrency: usize,
    /// How long one pull request waits for messages.
    pub fetch_wait: Duration,
    /// The consumer's ack wait, when handlers hold a lease on their delivery
    /// ([`with_lease`]); `None` for handlers short enough to need none.
    pub lease: Option<Duration>,
}

/// Pulls from `consumer` until shutdown, hands each message to `handler`
/// (within a span that continues the message's trace) and settles the
/// verdict with `settler`. A message that arrives after shutdown started is
/// nak'ed at once so another replica takes it without waiting for
/// `ack_wait`.
pub async fn consume<H, Fut>(
    consumer: &PullConsumer,
    pull: Pull,
    settler: &Settler,
    shutdown: &Shutdown,
    handler: H,
) where
    H: Fn(Arc<Message>) -> Fut,
    Fut: Future<Output = Verdict>,
{
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        let batch = consumer
            .batch()
            .max_messages(pull.batch)
            .expires(pull.fetch_wait)
            .messages()
            .await;
        let batch = match batch {
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
        batch
            .take_while(|next| {
                if let Err(e) = next {
                    tracing::debug!(error = %e, "pull batch ended with an error");
                }
                std::future::ready(next.is_ok())
            })
            .filter_map(|next| std::future::ready(next.ok()))
            .for_each_concurrent(pull.concurrency, |msg| {
                let handler = &handler;
                async move {
                    if shutdown.is_triggered() {
                        let _ = msg.ack_with(AckKind::Nak(None)).await;
                        return;
                    }
                    let msg = Arc::new(msg);
                    let (seq, delivered) = position(&msg);
                    let span = tracing::info_span!(
                        "consume",
                        subject = %msg.subject,
                        stream_sequence = seq,
                        delivered,
                    );
                    continue_trace(&span, msg.headers.as_ref());
                    async {
                        let work = handler(msg.clone());
                        let verdict = match pull.lease {
                            Some(ack_wait) => with_lease(&msg, ack_wait, work).await,
                            None => Ok(work.await),
                        };
                        match verdict {
                            Ok(verdict) => {
                                settler.settle(&msg, verdict).await;
                            }
                            Err(LeaseLost) => settler.lease_lost(),
                        }
                    }
                    .instrument(span)
                    .await;
                }
            })
            .await;
    }
}
