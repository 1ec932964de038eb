//! The JetStream objects the worker relies on, provisioned idempotently so
//! replicas can start together.
//!
//! Per-ticket order comes from partitioning: `ZENGATE_WORK` (work-queue
//! retention, no subjects of its own) sources the ticket subjects of
//! `ZENDESK_EVENTS` through a subject transform that prefixes a partition
//! number hashed from account and ticket id. Each partition has one durable
//! pull consumer with `max_ack_pending = 1`, so the server hands out one
//! message per partition at a time, to whichever replica asks first.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, RetentionPolicy, Source, SubjectTransform};
use async_nats::jetstream::{self, consumer::PullConsumer};
use zengate_core::events::{ZENDESK_STREAM, ZENGATE_STREAM};
use zengate_runtime::bus::{self, BusError};

/// The partitioned work stream.
pub const WORK_STREAM: &str = "ZENGATE_WORK";
/// First token of every subject in the work stream.
pub const WORK_PREFIX: &str = "zgwork";
/// Durable name of the executor consumer on `ZENGATE`.
pub const EXECUTOR_CONSUMER: &str = "executor";
/// What the executor consumes.
pub const RELEASED_FILTER: &str = "zengate.approval.released.>";

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot provision {what}: {message}")]
    Provision { what: String, message: String },
    #[error(
        "stream {WORK_STREAM} exists with a different partitioning or filter ({found}); the \
         partition count is fixed per deployment, see docs/worker.md before changing it"
    )]
    Mismatch { found: String },
}

/// The source transforms for `filters` with `partitions` partitions. A filter
/// `zendesk.*.ticket.*.created` becomes
/// `zgwork.{{partition(P,1,2)}}.zendesk.{{wildcard(1)}}.ticket.{{wildcard(2)}}.created`,
/// so the original subject is the work subject minus its first two tokens.
pub fn transforms(filters: &[String], partitions: u32) -> Vec<SubjectTransform> {
    filters
        .iter()
        .map(|filter| {
            let mut n = 0;
            let mut account_wildcard = None;
            let mut ticket_wildcard = 0;
            let tokens: Vec<String> = filter
                .split('.')
                .enumerate()
                .map(|(i, tok)| {
                    if tok == "*" {
                        n += 1;
                        if i == 1 {
                            account_wildcard = Some(n);
                        }
                        if i == 3 {
                            ticket_wildcard = n;
                        }
                        format!("{{{{wildcard({n})}}}}")
                    } else {
                        tok.to_owned()
                    }
                })
                .collect();
            let keys = match account_wildcard {
                Some(a) => format!("{a},{ticket_wildcard}"),
                None => ticket_wildcard.to_string(),
            };
            SubjectTransform {
                source: filter.clone(),
                destination: format!(
                    "{WORK_PREFIX}.{{{{partition({partitions},{keys})}}}}.{}",
                    tokens.join(".")
                ),
            }
        })
        .collect()
}

/// The provider subject a work subject was derived from.
pub fn original_subject(work_subject: &str) -> Option<&str> {
    let rest = work_subject.strip_prefix(WORK_PREFIX)?.strip_prefix('.')?;
    let (_, original) = rest.split_once('.')?;
    Some(original)
}

fn work_stream_config(filters: &[String], partitions: u32, replicas: usize) -> stream::Config {
    stream::Config {
        name: WORK_STREAM.to_owned(),
        description: Some(format!(
            "Ticket events partitioned by ticket into {partitions} ordered partitions"
        )),
        subjects: vec![],
        retention: RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(7 * 24 * 3600),
        num_replicas: replicas,
        sources: Some(vec![Source {
            name: ZENDESK_STREAM.to_owned(),
            subject_transforms: transforms(filters, partitions),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn describe(transforms: &[SubjectTransform]) -> String {
    transforms
        .iter()
        .map(|t| format!("{} -> {}", t.source, t.destination))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes sure `ZENDESK_EVENTS` and `ZENGATE` exist (without overriding the
/// ingress's settings for the former), created on `replicas` servers.
pub async fn ensure_base_streams(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), TopologyError> {
    if js.get_stream(ZENDESK_STREAM).await.is_err() {
        let settings = bus::ZendeskStreamSettings {
            replicas,
            ..Default::default()
        };
        bus::ensure_stream(js, bus::zendesk_stream_config(&settings)).await?;
    }
    bus::ensure_stream(js, bus::zengate_stream_config_replicated(replicas)).await?;
    Ok(())
}

/// Creates `ZENGATE_WORK` (on `replicas` servers) or checks that the
/// existing one partitions the same way; refuses to start on a mismatch
/// rather than silently re-partitioning.
pub async fn ensure_work_stream(
    js: &jetstream::Context,
    filters: &[String],
    partitions: u32,
    replicas: usize,
) -> Result<stream::Stream, TopologyError> {
    let want = work_stream_config(filters, partitions, replicas);
    let want_transforms = transforms(filters, partitions);
    let mut last = String::new();
    for _ in 0..5 {
        if let Ok(mut existing) = js.get_stream(WORK_STREAM).await {
            let info = existing
                .info()
                .await
                .map_err(|e| TopologyError::Provision {
                    what: WORK_STREAM.to_owned(),
                    message: e.to_string(),
                })?;
            let have: Vec<SubjectTransform> = info
                .config
                .sources
                .iter()
                .flatten()
                .flat_map(|s| s.subject_transforms.clone())
                .collect();
            if have != want_transforms {
                return Err(TopologyError::Mismatch {
                    found: describe(&have),
                });
            }
            return Ok(existing);
        }
        match js.create_stream(want.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
    }
    Err(TopologyError::Provision {
        what: WORK_STREAM.to_owned(),
        message: last,
    })
}

/// Name of partition `k`'s durable consumer.
pub fn partition_consumer(k: u32) -> String {
    format!("worker-p{k}")
}

/// Creates or updates one durable consumer per partition. Like every
/// consumer here it inherits its stream's replicas.
pub async fn ensure_partition_consumers(
    stream: &stream::Stream,
    partitions: u32,
    ack_wait: Duration,
    server_max_deliver: i64,
) -> Result<Vec<PullConsumer>, TopologyError> {
    let mut out = Vec::with_capacity(partitions as usize);
    for k in 0..partitions {
        let name = partition_consumer(k);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            description: Some(format!("ordered partition {k} of {partitions}")),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait,
            max_deliver: server_max_deliver,
            max_ack_pending: 1,
            filter_subject: format!("{WORK_PREFIX}.{k}.>"),
            ..Default::default()
        };
        out.push(create_consumer(stream, &name, config).await?);
    }
    Ok(out)
}

/// Creates or updates the executor's durable consumer on `ZENGATE`.
pub async fn ensure_executor_consumer(
    js: &jetstream::Context,
    ack_wait: Duration,
    server_max_deliver: i64,
) -> Result<PullConsumer, TopologyError> {
    let stream = js
        .get_stream(ZENGATE_STREAM)
        .await
        .map_err(|e| TopologyError::Provision {
            what: ZENGATE_STREAM.to_owned(),
            message: e.to_string(),
        })?;
    let config = pull::Config {
        durable_name: Some(EXECUTOR_CONSUMER.to_owned()),
        description: Some("executes released approvals against Zendesk".to_owned()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        max_deliver: server_max_deliver,
        max_ack_pending: 256,
        filter_subject: RELEASED_FILTER.to_owned(),
        ..Default::default()
    };
    create_consumer(&stream, EXECUTOR_CONSUMER, config).await
}

/// Create-or-update, retried: replicas starting together race on it.
async fn create_consumer(
    stream: &stream::Stream,
    name: &str,
    config: pull::Config,
) -> Result<PullConsumer, TopologyError> {
    let mut last = String::new();
    for attempt in 0..5u64 {
        match stream.create_consumer(config.clone()).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                last = e.to_string();
                if let Ok(c) = stream.get_consumer::<pull::Config>(name).await
                    && c.cached_info().config.filter_subject == config.filter_subject
                {
                    return Ok(c);
                }
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
            }
        }
    }
    Err(TopologyError::Provision {
        what: format!("consumer {name}"),
        message: last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transform_shapes() {
        let t = transforms(&["zendesk.*.ticket.*.*".to_owned()], 32);
        assert_eq!(
            t[0].destination,
            "zgwork.{{partition(32,1,2)}}.zendesk.{{wildcard(1)}}.ticket.{{wildcard(2)}}.{{wildcard(3)}}"
        );
        let t = transforms(&["zendesk.42.ticket.*.created".to_owned()], 8);
        assert_eq!(
            t[0].destination,
            "zgwork.{{partition(8,1)}}.zendesk.42.ticket.{{wildcard(1)}}.created"
        );
    }

    #[test]
    fn original_subjects() {
        assert_eq!(
            original_subject("zgwork.7.zendesk.42.ticket.5.created"),
            Some("zendesk.42.ticket.5.created")
        );
        assert_eq!(original_subject("zendesk.42.ticket.5.created"), None);
    }
}
