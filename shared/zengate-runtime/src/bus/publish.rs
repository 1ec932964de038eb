//! The one way zengate publishes to JetStream: a stable `Nats-Msg-Id` (a
//! retry inside the stream's duplicate window is dropped by JetStream), the
//! caller's `traceparent`, JSON encoding, and a bounded wait for the PubAck
//! so "published" means durable.

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, publish::PublishAck};
use async_nats::subject::ToSubject;
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use serde::Serialize;
use zengate_core::headers as h;

use crate::telemetry::inject_trace_context;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("publish to {subject} failed: {message}")]
    Bus { subject: Subject, message: String },
    #[error("publish to {subject} not acknowledged within {timeout:?}")]
    Timeout { subject: Subject, timeout: Duration },
}

/// Publishes and awaits the PubAck, giving up after `timeout`.
#[derive(Debug, Clone)]
pub struct Publisher {
    js: jetstream::Context,
    timeout: Duration,
}

impl Publisher {
    pub fn new(js: jetstream::Context, timeout: Duration) -> Self {
        Self { js, timeout }
    }

    /// The JetStream context this publisher writes to.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Publishes `body` as JSON.
    pub async fn json<T: Serialize>(
        &self,
        subject: impl ToSubject,
        msg_id: &str,
        body: &T,
    ) -> Result<PublishAck, PublishError> {
        self.json_with_headers(subject, msg_id, body, &[]).await
    }

    /// [`Publisher::json`] with extra headers (a release's signature, an
    /// audit's recorded `traceparent`).
    pub async fn json_with_headers<T: Serialize>(
        &self,
        subject: impl ToSubject,
        msg_id: &str,
        body: &T,
        extra: &[(&'static str, &str)],
    ) -> Result<PublishAck, PublishError> {
        let payload = serde_json::to_vec(body)?;
        let mut headers = HeaderMap::new();
        for (name, value) in extra {
            headers.insert(*name, *value);
        }
        headers.insert("Content-Type", "application/json");
        self.bytes(subject, msg_id, headers, payload.into()).await
    }

    /// Publishes `body` exactly as given (the ingress's signed bytes) with
    /// the caller's `headers`, to which the message id and, unless present,
    /// the current `traceparent` are added. The body is not copied.
    pub async fn bytes(
        &self,
        subject: impl ToSubject,
        msg_id: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<PublishAck, PublishError> {
        headers.insert(h::NATS_MSG_ID, msg_id);
        if headers.get(h::TRACEPARENT).is_none() {
            inject_trace_context(&mut headers);
        }
        let subject = subject.to_subject();
        let bus = |e: &dyn std::fmt::Display| PublishError::Bus {
            subject: subject.clone(),
            message: e.to_string(),
        };
        let send = async {
            let ack: PublishAckFuture = self
                .js
                .publish_with_headers(subject.clone(), headers, body)
                .await
                .map_err(|e| bus(&e))?;
            ack.await.map_err(|e| bus(&e))
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(PublishError::Timeout {
                subject: subject.clone(),
                timeout: self.timeout,
            }),
        }
    }
}
