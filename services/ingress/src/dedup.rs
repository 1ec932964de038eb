//! Long-horizon deduplication by the signed event id.
//!
//! Order of operations keeps a failed publish from ever becoming "already
//! seen": the key is only written after JetStream acknowledged the event.
//! Races between concurrent copies (and crashes between ack and write) are
//! covered by JetStream's `Nats-Msg-Id` duplicate window.

use std::sync::Arc;
use std::time::Duration;

use zengate_runtime::redis_store::{RedisStore, StoreError};

#[derive(Debug, Clone)]
pub struct Dedup {
    store: Arc<RedisStore>,
    horizon: Duration,
}

impl Dedup {
    pub fn new(store: Arc<RedisStore>, horizon: Duration) -> Self {
        Self { store, horizon }
    }

    fn key(msg_id: &str) -> String {
        format!("zengate:ingress:seen:{msg_id}")
    }

    /// Whether this event was already made durable within the horizon.
    pub async fn seen(&self, msg_id: &str) -> Result<bool, StoreError> {
        let n: u64 = self
            .store
            .query(redis::cmd("EXISTS").arg(Self::key(msg_id)))
            .await?;
        Ok(n > 0)
    }

    /// Records a durable event. Call only after the PubAck.
    pub async fn remember(&self, msg_id: &str) -> Result<(), StoreError> {
        let _: () = self
            .store
            .query(
                redis::cmd("SET")
                    .arg(Self::key(msg_id))
                    .arg(1)
                    .arg("EX")
                    .arg(self.horizon.as_secs().max(1)),
            )
            .await?;
        Ok(())
    }
}
