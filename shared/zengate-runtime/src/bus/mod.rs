//! NATS connection and idempotent provisioning of the streams and buckets in
//! DESIGN.md. Several replicas may start at once: provisioning tolerates a
//! concurrent creator and converges on the configured settings.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use zengate_core::events::{ZENDESK_STREAM, ZENGATE_STREAM};

use crate::nats::{NatsAuth, NatsConfig};

mod consume;
pub mod dead_letter;
mod publish;

pub use consume::{
    Backoff, LeaseLost, OnSettled, Pull, Settled, Settler, Verdict, consume, position, with_lease,
};
pub use publish::{PublishError, Publisher};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// `url` lists the seed URLs without user info; `source` comes from a
    /// client that was never given a secret inside a URL.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot use NATS credentials file {path}: {message}")]
    Credentials { path: String, message: String },
    #[error("cannot provision stream {name}: {message}")]
    Stream { name: String, message: String },
    #[error("cannot provision key-value bucket {name}: {message}")]
    Bucket { name: String, message: String },
}

/// Connects with a client name (visible in `nats server report connections`)
/// and keeps reconnecting forever, also before the first success: a service
/// may start before NATS. Refused credentials are logged on every attempt.
pub async fn connect(config: &NatsConfig, name: &str) -> Result<async_nats::Client, BusError> {
    let options = options(config, name).await?.retry_on_initial_connect();
    open(config, options).await
}

/// Like [`connect`], but the first attempt must succeed: tries each seed URL
/// once and returns the error (refused credentials, TLS failure, nobody
/// listening). For tools and tests, which should fail rather than wait.
pub async fn connect_once(config: &NatsConfig, name: &str) -> Result<async_nats::Client, BusError> {
    let options = options(config, name).await?;
    open(config, options).await
}

async fn open(
    config: &NatsConfig,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, BusError> {
    let connect_err = |source| BusError::Connect {
        url: config.display_servers(),
        source,
    };
    let addrs = config
        .servers
        .iter()
        .map(|s| {
            s.parse::<async_nats::ServerAddr>().map_err(|e| {
                connect_err(async_nats::ConnectError::with_source(
                    async_nats::ConnectErrorKind::ServerParse,
                    e,
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    options.connect(addrs).await.map_err(connect_err)
}

/// Applies authentication, TLS and the reconnect behaviour shared by both
/// entry points.
async fn options(config: &NatsConfig, name: &str) -> Result<async_nats::ConnectOptions, BusError> {
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                async_nats::Event::Connected => tracing::info!("NATS connected"),
                async_nats::Event::ClientError(e) if is_refusal(&e.to_string()) => {
                    tracing::error!(error = %e, "NATS refused the connection's credentials")
                }
                async_nats::Event::ServerError(e) if is_refusal(&e.to_string()) => {
                    tracing::warn!(error = %e, "NATS reported a permission or authorization error")
                }
                other => tracing::debug!(event = %other, "NATS event"),
            }
        });
    options = match &config.auth {
        NatsAuth::None => options,
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.expose().to_owned())
        }
        NatsAuth::Token(token) => options.token(token.expose().to_owned()),
        NatsAuth::NkeySeed(seed) => options.nkey(seed.expose().to_owned()),
        NatsAuth::CredsFile(path) => {
            options
                .credentials_file(path)
                .await
                .map_err(|e| BusError::Credentials {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
        }
    };
    if let Some(ca) = &config.tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &config.tls.client_cert {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    Ok(options.require_tls(config.tls.required))
}

fn is_refusal(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("authorization") || m.contains("authentication") || m.contains("permission")
}

/// JetStream context whose requests (including publish acks) time out after
/// `timeout`.
pub fn jetstream(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(timeout)
        .build(client)
}

/// Settings of the provider-event stream.
#[derive(Debug, Clone)]
pub struct ZendeskStreamSettings {
    pub max_age: Duration,
    pub duplicate_window: Duration,
    pub replicas: usize,
}

impl Default for ZendeskStreamSettings {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(10 * 60),
            replicas: 1,
        }
    }
}

/// `ZENDESK_EVENTS` on `zendesk.>`, file storage.
pub fn zendesk_stream_config(settings: &ZendeskStreamSettings) -> stream::Config {
    stream::Config {
        name: ZENDESK_STREAM.to_owned(),
        description: Some("Verified Zendesk webhook events (exact signed bodies)".to_owned()),
        subjects: vec!["zendesk.>".to_owned()],
        storage: stream::StorageType::File,
        max_age: settings.max_age,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        ..Default::default()
    }
}

/// `ZENGATE` on `zengate.>`, file storage, a 2 minute duplicate window so
/// publishers can retry with a stable `Nats-Msg-Id`; one replica.
pub fn zengate_stream_config() -> stream::Config {
    zengate_stream_config_replicated(1)
}

/// [`zengate_stream_config`] kept on `replicas` servers of a cluster
/// (`ZENGATE_STREAM_REPLICAS`).
pub fn zengate_stream_config_replicated(replicas: usize) -> stream::Config {
    stream::Config {
        name: ZENGATE_STREAM.to_owned(),
        description: Some("zengate's own events: approvals, actions, audits, DLQ".to_owned()),
        subjects: vec!["zengate.>".to_owned()],
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(30 * 24 * 3600),
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas,
        ..Default::default()
    }
}

fn differs(want: &stream::Config, have: &stream::Config) -> bool {
    want.subjects != have.subjects
        || want.max_age != have.max_age
        || want.duplicate_window != have.duplicate_window
}

/// Routing zengate never configures on its own streams: a stream that
/// republishes, mirrors or sources makes messages appear on subjects (the
/// `approvals` bucket, release subjects) without anyone publishing them,
/// past every publish permission. Such a stream was made by someone else.
pub fn foreign_routing(want: &stream::Config, have: &stream::Config) -> Option<String> {
    let mut found = Vec::new();
    if have.republish.is_some() && want.republish.is_none() {
        found.push("republish");
    }
    if have.mirror.is_some() && want.mirror.is_none() {
        found.push("mirror");
    }
    let sources = |c: &stream::Config| c.sources.as_ref().map_or(0, Vec::len);
    if sources(have) > sources(want) {
        found.push("sources");
    }
    if have.subject_transform.is_some() && want.subject_transform.is_none() {
        found.push("subject transform");
    }
    (!found.is_empty()).then(|| {
        format!(
            "stream {} has a {} zengate did not configure; refusing to use it (remove the stream or that setting)",
            have.name,
            found.join(", ")
        )
    })
}

/// Creates the stream, or brings an existing one to `config`'s subjects,
/// retention and duplicate window. Safe to run from many replicas at once.
/// Refuses a stream with routing zengate did not set ([`foreign_routing`]).
/// The replica count applies when the stream is created; an existing
/// stream keeps its own (scaling it is an operator's `nats stream edit
/// --replicas`, which not every service's NATS user may do), with a warning
/// when it differs.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, BusError> {
    let name = config.name.clone();
    let err = |e: &dyn std::fmt::Display| BusError::Stream {
        name: name.clone(),
        message: e.to_string(),
    };
    let mut last = String::new();
    for _ in 0..5 {
        // Not there (yet) falls through to creating it.
        if let Ok(mut existing) = js.get_stream(&name).await {
            let info = existing.info().await.map_err(|e| err(&e))?;
            if let Some(why) = foreign_routing(&config, &info.config) {
                tracing::error!(stream = %name, %why, "stream configuration not made by zengate");
                return Err(err(&why));
            }
            warn_on_replicas(&name, config.num_replicas, info.config.num_replicas);
            if differs(&config, &info.config) {
                tracing::info!(stream = %name, "updating stream configuration");
                js.update_stream(config.clone())
                    .await
                    .map_err(|e| err(&e))?;
            }
            return Ok(existing);
        }
        match js.create_stream(config.clone()).await {
            Ok(s) => return Ok(s),
            // Another replica may have created it meanwhile: look again.
            Err(e) => last = e.to_string(),
        }
    }
    Err(BusError::Stream {
        name,
        message: last,
    })
}

fn warn_on_replicas(name: &str, want: usize, have: usize) {
    if want.max(1) != have.max(1) {
        tracing::warn!(
            stream = %name,
            configured = want,
            existing = have,
            "the stream exists with another replica count; it keeps its own \
             (scale it with `nats stream edit --replicas`)"
        );
    }
}

/// Creates or opens a key-value bucket (file storage). Safe to race. As for
/// streams, `num_replicas` applies when the bucket is created.
pub async fn ensure_kv(js: &jetstream::Context, config: kv::Config) -> Result<kv::Store, BusError> {
    let name = config.bucket.clone();
    let mut last = String::new();
    for _ in 0..5 {
        if let Ok(store) = js.get_key_value(&name).await {
            check_bucket_routing(js, &config).await?;
            return Ok(store);
        }
        match js.create_key_value(config.clone()).await {
            Ok(store) => return Ok(store),
            Err(e) => last = e.to_string(),
        }
    }
    Err(BusError::Bucket {
        name,
        message: last,
    })
}

/// An existing bucket's stream must not republish, mirror or source
/// beyond what `config` asks for ([`foreign_routing`]).
async fn check_bucket_routing(
    js: &jetstream::Context,
    config: &kv::Config,
) -> Result<(), BusError> {
    let err = |message: String| BusError::Bucket {
        name: config.bucket.clone(),
        message,
    };
    let mut stream = js
        .get_stream(format!("KV_{}", config.bucket))
        .await
        .map_err(|e| err(e.to_string()))?;
    let info = stream.info().await.map_err(|e| err(e.to_string()))?;
    warn_on_replicas(
        &info.config.name,
        config.num_replicas,
        info.config.num_replicas,
    );
    let want = stream::Config {
        republish: config.republish.clone(),
        mirror: config.mirror.clone(),
        sources: config.sources.clone(),
        ..Default::default()
    };
    match foreign_routing(&want, &info.config) {
        Some(why) => {
            tracing::error!(bucket = %config.bucket, %why, "bucket configuration not made by zengate");
            Err(err(why))
        }
        None => Ok(()),
    }
}

/// True while the client holds a live connection.
pub fn is_connected(client: &async_nats::Client) -> bool {
    matches!(
        client.connection_state(),
        async_nats::connection::State::Connected
    )
}

/// Flushes pending publishes at shutdown, giving up after two seconds: with
/// NATS unreachable a flush would otherwise wait for a reconnect forever.
pub async fn flush_bounded(client: &async_nats::Client) {
    if tokio::time::timeout(Duration::from_secs(2), client.flush())
        .await
        .is_err()
    {
        tracing::warn!("NATS flush did not complete at shutdown");
    }
}
