//! Application wiring: one `AppState`, the router, and `Application`
//! (`build` binds and connects, `run` serves until shutdown) for `main`,
//! the all-in-one stack and tests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use zengate_core::events::ZENDESK_STREAM;
use zengate_runtime::bus::{self, BusError, Publisher};
use zengate_runtime::health::{self, Checks};
use zengate_runtime::redis_store::{RedisStore, StoreError};
use zengate_runtime::{Background, HttpLimits, Shutdown, serve};

use crate::breaker::{BreakerSettings, GuardedRedis};
use crate::budget::BodyBudget;
use crate::config::IngressConfig;
use crate::dedup::Dedup;
use crate::metrics::IngressMetrics;
use crate::request::Rules;
use crate::webhook;
use crate::window::{self, DuplicateWindow};

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a request needs.
#[derive(Debug)]
pub struct AppState {
    pub rules: Rules,
    pub publisher: Publisher,
    pub dedup: Dedup,
    pub budget: BodyBudget,
    pub window: Arc<DuplicateWindow>,
    pub metrics: IngressMetrics,
}

/// A built ingress, bound to its listener, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    client: async_nats::Client,
    limits: HttpLimits,
    /// Stops the background work (the Redis prober) once serving ends.
    background: Shutdown,
}

impl Application {
    /// Connects to NATS, provisions `ZENDESK_EVENTS`, and binds `config.addr`
    /// (port 0 picks a free port).
    pub async fn build(config: IngressConfig) -> Result<Self, IngressError> {
        let listener = TcpListener::bind(config.addr).await?;
        config.warn_on_weak_settings();
        let client = bus::connect(&config.nats, "zengate-ingress").await?;
        let js = bus::jetstream(client.clone(), config.publish_timeout);
        bus::ensure_stream(&js, bus::zendesk_stream_config(&config.stream)).await?;
        let redis = Arc::new(RedisStore::new(&config.redis, config.redis_timeout)?);
        let redis_client = config
            .redis
            .client()
            .map_err(|e| StoreError::Config(e.to_string()))?;

        let mut registry = Registry::default();
        let metrics = IngressMetrics::register(&mut registry);
        let background = Shutdown::new();
        let guarded = GuardedRedis::start(
            redis_client,
            BreakerSettings {
                timeout: config.redis_timeout,
                probe_interval: config.redis_probe_interval,
            },
            metrics.breaker.clone(),
            &background,
        )
        .await;
        let dedup = Dedup::start(
            guarded,
            config.dedup_horizon,
            metrics.redis_unrecorded.clone(),
        );
        // `ensure_stream` left the stream at the configured window.
        let window = Arc::new(DuplicateWindow::new(config.dedup_clock_skew));
        window.set(config.stream.duplicate_window);
        tokio::spawn(window.clone().follow(
            js.clone(),
            ZENDESK_STREAM.to_owned(),
            window::REFRESH,
            background.clone(),
        ));
        let state = Arc::new(AppState {
            rules: Rules {
                secrets: config.secrets.clone(),
                account_id: config.account_id,
                webhook_id: config.webhook_id.clone(),
                body_limit: config.body_limit,
                signature_max_age: config.signature_max_age,
            },
            publisher: Publisher::new(js.clone(), config.publish_timeout),
            dedup,
            budget: BodyBudget::new(
                config.max_inflight_bytes,
                metrics.inflight_body_bytes.clone(),
            ),
            window,
            metrics,
        });
        let checks = Checks {
            nats: Some(client.clone()),
            js: Some(js),
            streams: vec![ZENDESK_STREAM.to_owned()],
            redis: Some(redis),
            redis_required: false,
            ..Checks::default()
        };
        let router = Router::new()
            .route(crate::WEBHOOK_PATH, post(webhook::receive))
            .with_state(state)
            .merge(health::routes(checks, Arc::new(registry)))
            .merge(zengate_runtime::openapi::routes(
                crate::openapi::ApiDoc::openapi(),
            ));
        Ok(Self {
            listener,
            router,
            client,
            limits: config.http,
            background,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`, drains in-flight requests, flushes NATS.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), IngressError> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "ingress listening");
        serve(
            self.listener,
            self.router,
            &self.limits,
            Background::default(),
            shutdown,
        )
        .await;
        self.background.trigger();
        bus::flush_bounded(&self.client).await;
        tracing::info!("ingress stopped");
        Ok(())
    }
}
