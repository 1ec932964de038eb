//! Publishing zengate events with a stable `Nats-Msg-Id`, awaiting the
//! JetStream acknowledgement so "published" means durable. A retry with the
//! same id inside the stream's duplicate window is dropped by JetStream.

use std::time::Duration;

use async_nats::jetstream;
use serde::Serialize;
use zengate_core::headers as h;
use zengate_runtime::telemetry::inject_trace_context;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("publish to {subject} failed: {message}")]
    Bus { subject: String, message: String },
    #[error("publish to {subject} not acknowledged within {timeout:?}")]
    Timeout { subject: String, timeout: Duration },
}

#[derive(Debug, Clone)]
pub struct Publisher {
    js: jetstream::Context,
    timeout: Duration,
}

impl Publisher {
    pub fn new(js: jetstream::Context, timeout: Duration) -> Self {
        Self { js, timeout }
    }

    /// Publishes `body` as JSON and waits for the PubAck.
    pub async fn json<T: Serialize>(
        &self,
        subject: String,
        msg_id: &str,
        body: &T,
    ) -> Result<(), PublishError> {
        self.json_with_headers(subject, msg_id, body, &[]).await
    }

    /// [`Publisher::json`] with extra headers (a release's signature).
    pub async fn json_with_headers<T: Serialize>(
        &self,
        subject: String,
        msg_id: &str,
        body: &T,
        extra: &[(&'static str, &str)],
    ) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(body)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(h::NATS_MSG_ID, msg_id);
        for (name, value) in extra {
            headers.insert(*name, *value);
        }
        headers.insert("Content-Type", "application/json");
        inject_trace_context(&mut headers);
        let bus = |e: &dyn std::fmt::Display| PublishError::Bus {
            subject: subject.clone(),
            message: e.to_string(),
        };
        let send = async {
            self.js
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|e| bus(&e))?
                .await
                .map_err(|e| bus(&e))
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(_ack)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PublishError::Timeout {
                subject: subject.clone(),
                timeout: self.timeout,
            }),
        }
    }
}
