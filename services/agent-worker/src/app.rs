//! Application wiring: one `WorkerState`, the health/metrics router, the
//! partition and executor loops, and `Application` (`build` binds and
//! connects, `run` consumes until shutdown) for `main`, the all-in-one
//! stack and tests.

use std::net::SocketAddr;
use std::sync::Arc;

use async_nats::jetstream::{self, consumer::PullConsumer, kv};
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use zendesk_client::{ClientError, ZendeskClient};
use zengate_core::events::ZENGATE_STREAM;
use zengate_runtime::bus::{self, BusError, Publisher, Pull, Settler};
use zengate_runtime::health::{self, Checks};
use zengate_runtime::redis_store::{RedisStore, StoreError};
use zengate_runtime::serve::DRAIN_DEADLINE;
use zengate_runtime::{Background, Shutdown, serve};

use crate::config::WorkerConfig;
use crate::drafter::SharedDrafter;
use crate::llm::{CallError, ModelDrafter};
use crate::metrics::WorkerMetrics;
use crate::records::Records;
use crate::rules::{RulesDrafter, RulesError};
use crate::topology::{self, TopologyError};
use crate::{executor, partition};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error("invalid Zendesk client configuration: {0}")]
    Client(#[from] ClientError),
    #[error("cannot build the model drafter: {0}")]
    Model(#[from] CallError),
    #[error("cannot read DRAFTER_SYSTEM_PROMPT_FILE {path}: {message}")]
    Prompt { path: String, message: String },
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a handler needs.
pub struct WorkerState {
    pub config: WorkerConfig,
    pub js: jetstream::Context,
    /// Every publish (proposals, outcomes, dead letters) goes through it.
    pub publisher: Publisher,
    pub client: ZendeskClient,
    pub drafter: SharedDrafter,
    pub records: Records,
    pub metrics: WorkerMetrics,
    api_user: OnceCell<u64>,
    /// The `approvals` bucket, opened on first use (release verification).
    pub(crate) approvals: OnceCell<kv::Store>,
}

impl std::fmt::Debug for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerState")
            .field("config", &self.config)
            .field("client", &self.client)
            .field("drafter", &self.drafter.name())
            .finish_non_exhaustive()
    }
}

impl WorkerState {
    /// Settles deliveries with the configured attempts and backoff.
    pub(crate) fn settler(&self) -> Settler {
        Settler::new(
            self.publisher.clone(),
            self.config.max_deliver,
            self.config.backoff(),
        )
    }

    /// Pulls `batch` messages at a time, handling them one by one, each
    /// under a delivery lease of one ack wait.
    pub(crate) fn pull(&self, batch: usize) -> Pull {
        Pull {
            batch,
            concurrency: 1,
            fetch_wait: self.config.fetch_wait,
            lease: Some(self.config.ack_wait),
        }
    }

    /// The API user's id (loop prevention), fetched once and then cached; a
    /// failed lookup is retried by the next event that needs it.
    pub async fn api_user_id(&self) -> Result<u64, ClientError> {
        self.api_user
            .get_or_try_init(|| async { self.client.me().await.map(|u| u.id) })
            .await
            .copied()
    }

    /// The API user's id if it was looked up already (never sends a request).
    pub fn cached_api_user_id(&self) -> Option<u64> {
        self.api_user.get().copied()
    }
}

/// A built worker, bound to its listener, not yet consuming.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    client: async_nats::Client,
    state: Arc<WorkerState>,
    partitions: Vec<PullConsumer>,
    executor: Option<PullConsumer>,
}

impl Application {
    /// Builds with the configured drafter (see [`drafter_from_config`]).
    pub async fn build(config: WorkerConfig) -> Result<Self, WorkerError> {
        let drafter = drafter_from_config(&config)?;
        Self::build_with_drafter(config, drafter).await
    }

    /// Connects, provisions streams and consumers, binds `config.addr`.
    pub async fn build_with_drafter(
        config: WorkerConfig,
        drafter: SharedDrafter,
    ) -> Result<Self, WorkerError> {
        let listener = TcpListener::bind(config.addr).await?;
        let client = ZendeskClient::new(config.zendesk.clone())?;
        let nats = bus::connect(&config.nats, "zengate-agent-worker").await?;
        let js = bus::jetstream(nats.clone(), config.nats_timeout);
        let replicas = config.nats.stream_replicas;
        topology::ensure_base_streams(&js, replicas).await?;
        // One extra server-side delivery: a replica dying during the last
        // attempt still leads to a dead letter (see partition.rs).
        let server_max_deliver = i64::from(config.max_deliver) + 1;
        let mut streams = vec![ZENGATE_STREAM.to_owned()];
        let mut partitions = Vec::new();
        if config.role.drafts() {
            let work = topology::ensure_work_stream(
                &js,
                &config.filter_subjects,
                config.partitions,
                replicas,
            )
            .await?;
            partitions = topology::ensure_partition_consumers(
                &work,
                config.partitions,
                config.ack_wait,
                server_max_deliver,
            )
            .await?;
            streams.push(topology::WORK_STREAM.to_owned());
        }
        let executor = if config.role.executes() {
            Some(
                topology::ensure_executor_consumer(&js, config.ack_wait, server_max_deliver)
                    .await?,
            )
        } else {
            None
        };
        let redis = Arc::new(RedisStore::new(&config.redis, config.redis_timeout)?);

        let mut registry = Registry::default();
        let metrics = WorkerMetrics::register(&mut registry);
        drafter.register_metrics(&mut registry);
        let checks = Checks {
            nats: Some(nats.clone()),
            js: Some(js.clone()),
            streams,
            redis: Some(redis.clone()),
            redis_required: true,
            ..Checks::default()
        };
        let router = Router::new()
            .merge(health::routes(checks, Arc::new(registry)))
            .merge(zengate_runtime::openapi::routes(
                utoipa::openapi::OpenApiBuilder::new()
                    .info(utoipa::openapi::Info::new(
                        "zengate agent-worker",
                        env!("CARGO_PKG_VERSION"),
                    ))
                    .build(),
            ));
        let state = Arc::new(WorkerState {
            records: Records::new(redis, config.record_ttl),
            publisher: Publisher::new(js.clone(), config.nats_timeout),
            config,
            js,
            client,
            drafter,
            metrics,
            api_user: OnceCell::new(),
            approvals: OnceCell::new(),
        });
        Ok(Self {
            listener,
            router,
            client: nats,
            state,
            partitions,
            executor,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> Arc<WorkerState> {
        self.state.clone()
    }

    /// Consumes until `shutdown`; then stops pulling, lets in-flight messages
    /// finish and settle, flushes NATS and stops serving health.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), WorkerError> {
        let addr = self.listener.local_addr()?;
        tracing::info!(
            %addr,
            partitions = self.partitions.len(),
            executor = self.executor.is_some(),
            drafter = self.state.drafter.name(),
            "agent worker running"
        );
        // Bounded: if NATS or Zendesk is gone, an in-flight message cannot
        // settle; leaving it unacked means it is redelivered, never lost.
        // Handlers keep their leases while draining (progress acks).
        let mut loops = Background::new(DRAIN_DEADLINE);
        for consumer in self.partitions {
            loops.spawn(partition::run(
                self.state.clone(),
                consumer,
                shutdown.clone(),
            ));
        }
        if let Some(consumer) = self.executor {
            for _ in 0..self.state.config.executor_concurrency {
                loops.spawn(executor::run(
                    self.state.clone(),
                    consumer.clone(),
                    shutdown.clone(),
                ));
            }
        }
        let limits = self.state.config.http.clone();
        serve(self.listener, self.router, &limits, loops, shutdown).await;
        bus::flush_bounded(&self.client).await;
        tracing::info!("agent worker stopped");
        Ok(())
    }
}

/// The drafter `DRAFTER` selects: the rules drafter (`WORKER_RULES_FILE` or
/// the built-in set), or a model drafter that falls back to those rules.
pub fn drafter_from_config(config: &WorkerConfig) -> Result<SharedDrafter, WorkerError> {
    let rules = match &config.rules_file {
        Some(path) => RulesDrafter::from_file(path)?,
        None => RulesDrafter::builtin()?,
    };
    let Some(model) = &config.drafter.model else {
        return Ok(Arc::new(rules));
    };
    let policy = match &model.system_prompt_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| WorkerError::Prompt {
            path: path.display().to_string(),
            message: e.to_string(),
        })?,
        None => crate::llm::prompt::DEFAULT_SYSTEM_PROMPT.to_owned(),
    };
    Ok(Arc::new(ModelDrafter::new(model.clone(), &policy, rules)?))
}
