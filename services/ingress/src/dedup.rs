//! Long-horizon deduplication by the signed event id.
//!
//! Order of operations keeps a failed publish from ever becoming "already
//! seen": the key is only written after JetStream acknowledged the event.
//! Races between concurrent copies (and crashes between ack and write) are
//! covered by JetStream's `Nats-Msg-Id` duplicate window, which is also all
//! there is while Redis is down (the breaker is open).
//!
//! Ids are kept in one Redis set per UTC day of recording
//! (`zengate:ingress:seen-day:<day>`), which expires a day after the horizon:
//! adding a batch of ids is one `SADD`, where a key per id cost Redis about
//! four times as much CPU per event (a `SET … EX` each, plus an expiry entry).
//! An id is remembered for at least the horizon and at most a day longer.
//!
//! Lookups from concurrent requests are coalesced: one task sends whatever
//! lookups are waiting as one pipeline (an `SMISMEMBER` per day the horizon
//! spans, and an `MGET` of the one-key-per-id form that earlier versions
//! wrote, until those keys expire), so Redis sees one round trip per batch
//! instead of one per request. Writes leave the request path: acknowledged
//! ids go to one writer task that sends them to Redis in batches (gathered
//! for up to 20 ms), and keeps a bounded backlog while the breaker is open so
//! the ids of events received during an outage are still recorded once Redis
//! is back.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};

use crate::breaker::{GuardedRedis, RedisUnavailable};

/// Key prefix of the set of event ids remembered on one UTC day (days since
/// the Unix epoch follow the prefix).
pub const DAY_PREFIX: &str = "zengate:ingress:seen-day:";

/// Key prefix of an event id remembered by earlier versions, one key each.
/// Still looked up, so an upgrade forgets nothing within the horizon.
pub const KEY_PREFIX: &str = "zengate:ingress:seen:";

const DAY_SECS: u64 = 86_400;

/// Ids waiting to be written (while Redis is slow or down) beyond which new
/// ones are dropped and counted.
const BACKLOG: usize = 16 * 1024;

/// Tries of one batch while Redis answers (a closed breaker) but fails.
const WRITE_ATTEMPTS: u32 = 5;
const WRITE_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Ids written per `SADD`, and looked up per pipeline.
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
    msg_id: String,
    reply: oneshot::Sender<Result<bool, RedisUnavailable>>,
}

/// The earlier one-key-per-id form.
fn legacy_key(msg_id: &str) -> String {
    let mut k = String::with_capacity(KEY_PREFIX.len() + msg_id.len());
    k.push_str(KEY_PREFIX);
    k.push_str(msg_id);
    k
}

/// The set of ids remembered on `day` (days since the Unix epoch, UTC).
pub fn day_key(day: u64) -> String {
    format!("{DAY_PREFIX}{day}")
}

/// Today, in days since the Unix epoch (UTC).
pub fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY_SECS)
}

/// The days whose sets may hold an id remembered less than `horizon_secs`
/// before some moment of `today`.
fn lookup_days(today: u64, horizon_secs: u64) -> std::ops::RangeInclusive<u64> {
    today.saturating_sub(horizon_secs.div_ceil(DAY_SECS))..=today
}

/// How long a day's set lives after its last write: every id in it stays
/// for at least the horizon.
fn day_ttl_secs(horizon_secs: u64) -> u64 {
    horizon_secs + DAY_SECS
}

impl Dedup {
    /// Starts the lookup and writer tasks; they end once every `Dedup`
    /// clone is dropped.
    pub fn start(redis: Arc<GuardedRedis>, horizon: Duration, unrecorded: Counter) -> Self {
        let (lookups, questions) = mpsc::channel(BACKLOG);
        tokio::spawn(look_up_batches(
            redis.clone(),
            horizon.as_secs().max(1),
            questions,
        ));
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
            msg_id: msg_id.to_owned(),
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
        if self.writes.try_send(msg_id.to_owned()).is_err() {
            self.unrecorded.inc();
        }
    }
}

/// Answers waiting lookups, all of them with one pipeline per round trip:
/// an `SMISMEMBER` per day the horizon spans, then an `MGET` of the earlier
/// per-id keys.
async fn look_up_batches(
    redis: Arc<GuardedRedis>,
    horizon_secs: u64,
    mut questions: mpsc::Receiver<Lookup>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while questions.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for day in lookup_days(today(), horizon_secs) {
            let cmd = pipe.cmd("SMISMEMBER").arg(day_key(day));
            for q in &batch {
                cmd.arg(&q.msg_id);
            }
        }
        let mget = pipe.cmd("MGET");
        for q in &batch {
            mget.arg(legacy_key(&q.msg_id));
        }
        let pipe = &pipe;
        let found = redis
            .run(|mut c| async move { pipe.query_async::<Vec<Vec<redis::Value>>>(&mut c).await })
            .await;
        match found {
            Ok(replies) if replies.iter().all(|r| r.len() == batch.len()) => {
                for (i, q) in batch.drain(..).enumerate() {
                    let seen = replies.iter().any(|r| match &r[i] {
                        redis::Value::Nil => false,
                        redis::Value::Int(n) => *n != 0,
                        _ => true,
                    });
                    let _ = q.reply.send(Ok(seen));
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
            let key = day_key(today());
            let mut pipe = redis::pipe();
            pipe.cmd("SADD").arg(&key).arg(&batch).ignore();
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(day_ttl_secs(horizon_secs))
                .ignore();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_cover_every_day_an_id_within_the_horizon_was_written() {
        let week = 7 * DAY_SECS;
        assert_eq!(lookup_days(20_000, week), 19_993..=20_000);
        // An id written late on day d is still within a one-hour horizon
        // early on day d + 1.
        assert_eq!(lookup_days(20_000, 3600), 19_999..=20_000);
        assert_eq!(lookup_days(20_000, DAY_SECS), 19_999..=20_000);
        assert_eq!(lookup_days(20_000, DAY_SECS + 1), 19_998..=20_000);
        assert_eq!(lookup_days(1, week), 0..=1);
    }

    #[test]
    fn a_days_set_outlives_its_last_id_by_the_horizon() {
        // Written at the very end of its day, the set's expiry is reset to a
        // day past the horizon, so the last id stays a full horizon.
        assert_eq!(day_ttl_secs(3600), 3600 + DAY_SECS);
    }

    #[test]
    fn the_two_forms_cannot_collide() {
        // Message ids start with the account's digits.
        assert!(!day_key(20_000).starts_with(&legacy_key("1")));
        assert!(!legacy_key("42:e").starts_with(DAY_PREFIX));
    }
}
