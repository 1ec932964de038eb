//! Long-horizon deduplication by the signed event id.
//!
//! Order of operations keeps a failed publish from ever becoming "already
//! seen": the key is only written after JetStream acknowledged the event.
//! Races between concurrent copies (and crashes between ack and write) are
//! covered by JetStream's `Nats-Msg-Id` duplicate window, which is also all
//! there is while Redis is down (the breaker is open).
//!
//! Lookups from concurrent requests are coalesced: one task sends whatever
//! lookups are waiting as a single `MGET`, so Redis sees one round trip per
//! batch instead of one per request. Writes leave the request path:
//! acknowledged ids go to one writer task that sends them to Redis in
//! pipelined batches (gathered for up to 20 ms), and keeps a bounded backlog while the breaker is open so
//! the ids of events received during an outage are still recorded once Redis
//! is back.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

use crate::breaker::{GuardedRedis, RedisUnavailable};

/// Key prefix of a remembered event id.
pub const KEY_PREFIX: &str = "zengate:ingress:seen:";

/// Ids waiting to be written (while Redis is slow or down) beyond which new
/// ones are dropped and counted.
const BACKLOG: usize = 16 * 1024;

/// Tries of one batch while Redis answers (a closed breaker) but fails.
const WRITE_ATTEMPTS: u32 = 5;
const WRITE_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Ids written per pipeline.
const BATCH: usize = 256;

/// How long the writer gathers ids before sending a pipeline that is not
/// full. A fresh id is covered by the JetStream duplicate window for minutes,
/// so a short delay costs nothing, while sending every few ids as their own
/// pipeline made Redis writes a tenth of the ingress's CPU under load.
const WRITE_LINGER: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct Dedup {
    redis: Arc<GuardedRedis>,
    lookups: mpsc::Sender<Lookup>,
    writes: mpsc::Sender<String>,
    unrecorded: Counter,
}

/// One request's question to the lookup task.
#[derive(Debug)]
struct Lookup {
    key: String,
    reply: oneshot::Sender<Result<bool, RedisUnavailable>>,
}

fn key(msg_id: &str) -> String {
    let mut k = String::with_capacity(KEY_PREFIX.len() + msg_id.len());
    k.push_str(KEY_PREFIX);
    k.push_str(msg_id);
    k
}

impl Dedup {
    /// Starts the lookup and writer tasks; they end once every `Dedup`
    /// clone is dropped.
    pub fn start(redis: Arc<GuardedRedis>, horizon: Duration, unrecorded: Counter) -> Self {
        let (lookups, questions) = mpsc::channel(BACKLOG);
        tokio::spawn(look_up_batches(redis.clone(), questions));
        let (writes, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(write_batches(
            redis.clone(),
            horizon.as_secs().max(1),
            rx,
            unrecorded.clone(),
        ));
        Self {
            redis,
            lookups,
            writes,
            unrecorded,
        }
    }

    /// Whether this event was already made durable within the horizon. While
    /// the breaker is open this answers at once without asking.
    pub async fn seen(&self, msg_id: &str) -> Result<bool, RedisUnavailable> {
        if self.redis.is_open() {
            return Err(RedisUnavailable::Open);
        }
        let (reply, answer) = oneshot::channel();
        let lookup = Lookup {
            key: key(msg_id),
            reply,
        };
        if self.lookups.try_send(lookup).is_err() {
            return Err(RedisUnavailable::Busy);
        }
        answer.await.unwrap_or(Err(RedisUnavailable::Busy))
    }

    /// Records a durable event (call only after the PubAck). Never waits: the
    /// id is queued for the writer, or counted as unrecorded when the backlog
    /// is full.
    pub fn remember(&self, msg_id: &str) {
        if self.writes.try_send(key(msg_id)).is_err() {
            self.unrecorded.inc();
        }
    }
}

/// Answers waiting lookups, all of them with one `MGET` per round trip.
async fn look_up_batches(redis: Arc<GuardedRedis>, mut questions: mpsc::Receiver<Lookup>) {
    let mut batch = Vec::with_capacity(BATCH);
    while questions.recv_many(&mut batch, BATCH).await > 0 {
        let mut mget = redis::cmd("MGET");
        for q in &batch {
            mget.arg(&q.key);
        }
        let mget = &mget;
        let found = redis
            .run(|mut c| async move { mget.query_async::<Vec<redis::Value>>(&mut c).await })
            .await;
        match found {
            Ok(values) if values.len() == batch.len() => {
                for (q, v) in batch.drain(..).zip(values) {
                    let _ = q.reply.send(Ok(!matches!(v, redis::Value::Nil)));
                }
            }
            Ok(_) => {
                for q in batch.drain(..) {
                    let _ = q.reply.send(Err(RedisUnavailable::Busy));
                }
            }
            Err(e) => {
                let why = e.to_string();
                for q in batch.drain(..) {
                    let _ = q.reply.send(Err(RedisUnavailable::Failed(why.clone())));
                }
            }
        }
    }
}

/// Adds ids to `batch` until it is full or [`WRITE_LINGER`] has passed (or
/// the channel closed: what was gathered is still written).
async fn gather(rx: &mut mpsc::Receiver<String>, batch: &mut Vec<String>) {
    let linger = tokio::time::sleep(WRITE_LINGER);
    tokio::pin!(linger);
    while batch.len() < BATCH {
        tokio::select! {
            n = rx.recv_many(batch, BATCH - batch.len()) => if n == 0 { return },
            _ = &mut linger => return,
        }
    }
}

async fn write_batches(
    redis: Arc<GuardedRedis>,
    horizon_secs: u64,
    mut rx: mpsc::Receiver<String>,
    unrecorded: Counter,
) {
    let mut state = redis.watch();
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        gather(&mut rx, &mut batch).await;
        for attempt in 1.. {
            // While the breaker is open, hold the batch (the channel holds the
            // rest) until Redis answers again.
            if state.wait_for(|open| !*open).await.is_err() {
                return;
            }
            let mut pipe = redis::pipe();
            for k in &batch {
                pipe.cmd("SET")
                    .arg(k)
                    .arg(1)
                    .arg("EX")
                    .arg(horizon_secs)
                    .ignore();
            }
            let pipe = &pipe;
            match redis
                .run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await
            {
                Ok(()) => break,
                // Redis answers but refuses the writes (the breaker stays
                // closed): give up on this batch after a few tries.
                Err(e) if attempt >= WRITE_ATTEMPTS => {
                    tracing::warn!(error = %e, ids = batch.len(), "event ids not recorded in redis");
                    unrecorded.inc_by(batch.len() as u64);
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, ids = batch.len(), "event ids not recorded yet; retrying");
                    tokio::time::sleep(WRITE_RETRY_PAUSE).await;
                }
            }
        }
        batch.clear();
    }
}
