//! `Infra`: the private NATS and Redis of one test, with a JetStream handle
//! for the test itself and readers for what reached the bus.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, message::StreamMessage};
use futures::{StreamExt, TryStreamExt};

use crate::{NatsServer, RedisServer, eventually, init_telemetry};

#[derive(Debug)]
pub struct Infra {
    pub nats: NatsServer,
    pub redis: RedisServer,
    pub js: jetstream::Context,
}

impl Infra {
    /// Starts both servers (and the test telemetry, once per process).
    pub async fn start() -> Self {
        init_telemetry();
        let nats = NatsServer::start().await;
        let redis = RedisServer::start().await;
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(nats.url())
            .await
            .expect("connect to the test NATS");
        Self {
            nats,
            redis,
            js: jetstream::new(client),
        }
    }

    /// Messages stored in `stream`.
    pub async fn stream_messages(&self, stream: &str) -> u64 {
        let mut s = self.js.get_stream(stream).await.unwrap();
        s.info().await.unwrap().state.messages
    }

    /// Messages stored in `stream` on subjects matching `filter`.
    pub async fn count(&self, stream: &str, filter: &str) -> usize {
        let Ok(stream) = self.js.get_stream(stream).await else {
            return 0;
        };
        let mut info = stream.info_with_subjects(filter).await.unwrap();
        let mut total = 0;
        while let Some((_, n)) = info.try_next().await.unwrap() {
            total += n;
        }
        total
    }

    /// Waits until `filter` holds at least `n` messages in `stream`.
    pub async fn wait_count(&self, stream: &str, filter: &str, n: usize, deadline: Duration) {
        eventually(&format!("{n} message(s) on {filter}"), deadline, || async {
            (self.count(stream, filter).await >= n).then_some(())
        })
        .await;
    }

    /// The last message on `subject` in `stream`, headers included.
    pub async fn last_message(&self, stream: &str, subject: &str) -> StreamMessage {
        let stream = self.js.get_stream(stream).await.unwrap();
        stream
            .get_last_raw_message_by_subject(subject)
            .await
            .unwrap()
    }

    /// Every message in `stream` whose subject matches `filter`, in order.
    pub async fn read_all(&self, stream: &str, filter: &str) -> Vec<jetstream::Message> {
        read_all(&self.js, stream, filter).await
    }
}

/// Every message in `stream` whose subject matches `filter`, in order.
pub async fn read_all(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> Vec<jetstream::Message> {
    let stream = js.get_stream(stream).await.unwrap();
    let mut c: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: filter.to_owned(),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(10),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut remaining = c.info().await.unwrap().num_pending;
    let mut out = Vec::new();
    while remaining > 0 {
        let mut batch = c
            .fetch()
            .max_messages(remaining.min(1000) as usize)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .unwrap();
        let before = out.len();
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            remaining = m.info().unwrap().pending;
            out.push(m);
        }
        if out.len() == before {
            break;
        }
    }
    out
}
