//! Application wiring: one `AppState`, the router, background tasks (KV
//! watch, consumers, sweeper), and `Application` (`build` binds and
//! connects, `run` serves until shutdown) for `main`, the all-in-one stack
//! and tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use zengate_core::events::ZENGATE_STREAM;
use zengate_runtime::bus::{self, BusError, Publisher};
use zengate_runtime::health::{self, Checks};
use zengate_runtime::redis_store::{RedisStore, StoreError as RedisError};
use zengate_runtime::{Background, HttpLimits, Shutdown, serve};

use crate::config::ApprovalConfig;
use crate::metrics::{ApprovalMetrics, RouteLabel};
use crate::openapi::ApiDoc;
use crate::store::{BUCKET, Store};
use crate::visitor::VisitorVerifier;
use crate::{api, console, intake, resume, sweeper, visitor};

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a request or a background task needs.
#[derive(Debug)]
pub struct AppState {
    pub js: jetstream::Context,
    pub store: Arc<Store>,
    pub publisher: Publisher,
    pub redis: Arc<RedisStore>,
    pub metrics: ApprovalMetrics,
    pub visitor: VisitorVerifier,
    /// Settings as read at start (timeouts, limits, secrets, release keys).
    pub config: Arc<ApprovalConfig>,
    /// Cancelled when the service stops (ends SSE streams and tasks).
    pub shutdown: Shutdown,
}

/// `approvals`: file storage, one revision kept per key is enough because
/// the item carries its own history; settled items age out after the
/// default retention (see `retention`).
pub fn bucket_config() -> kv::Config {
    bucket_config_for(crate::retention::DEFAULT)
}

/// [`bucket_config`] with `max_age = retention` (zero: keep everything).
pub fn bucket_config_for(retention: Duration) -> kv::Config {
    kv::Config {
        bucket: BUCKET.to_owned(),
        description: "Approval items: proposals held for a human decision".to_owned(),
        history: 1,
        max_age: retention,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    }
}

/// A built approval service, bound to its listener, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    client: async_nats::Client,
    state: Arc<AppState>,
    limits: HttpLimits,
}

impl Application {
    /// Connects to NATS, provisions `ZENGATE` and `approvals`, and binds
    /// `config.addr` (port 0 picks a free port).
    pub async fn build(config: ApprovalConfig) -> Result<Self, ApprovalError> {
        let config = Arc::new(config);
        let listener = TcpListener::bind(config.addr).await?;
        let client = bus::connect(&config.nats, "zengate-approval").await?;
        let js = bus::jetstream(client.clone(), config.publish_timeout);
        let replicas = config.nats.stream_replicas;
        bus::ensure_stream(&js, bus::zengate_stream_config_replicated(replicas)).await?;
        let bucket = kv::Config {
            num_replicas: replicas,
            ..bucket_config_for(config.retention)
        };
        let kv = bus::ensure_kv(&js, bucket).await?;
        crate::retention::ensure(&js, config.retention).await?;
        let redis = Arc::new(RedisStore::new(&config.redis, config.redis_timeout)?);

        let mut registry = Registry::default();
        let metrics = ApprovalMetrics::register(&mut registry);
        let (pending, indexed) = (metrics.pending.clone(), metrics.indexed.clone());
        let store = Arc::new(Store::new(kv, config.recent_limit, move |c| {
            pending.set(i64::try_from(c.pending).unwrap_or(i64::MAX));
            indexed.set(i64::try_from(c.indexed).unwrap_or(i64::MAX));
        }));
        let state = Arc::new(AppState {
            js: js.clone(),
            store,
            publisher: Publisher::new(js.clone(), config.publish_timeout),
            redis: redis.clone(),
            metrics,
            visitor: VisitorVerifier::new(&config.jwt_secret),
            config: config.clone(),
            shutdown: Shutdown::new(),
        });
        let checks = Checks {
            nats: Some(client.clone()),
            js: Some(js),
            streams: vec![ZENGATE_STREAM.to_owned()],
            buckets: vec![BUCKET.to_owned()],
            redis: Some(redis),
            redis_required: false,
        };
        let router = Router::new()
            .route("/", get(console::page))
            .route(console::SCRIPT_PATH, get(console::script))
            .route(console::STYLE_PATH, get(console::style))
            .route(console::PAGE_STYLE_PATH, get(console::page_style))
            .route("/v1/approvals", get(api::list))
            .route("/v1/approvals/history", get(api::history))
            .route("/v1/approvals/{id}", get(api::get))
            .route("/v1/approvals/{id}/approve", post(api::approve))
            .route("/v1/approvals/{id}/reject", post(api::reject))
            .route("/v1/approvals/{id}/retry", post(api::retry))
            .route("/v1/events", get(api::events))
            .route("/v1/events/ticket", post(api::events_ticket))
            .route("/v1/ticket-requests", post(visitor::create))
            .route(
                "/webhook/resume/{id}",
                get(resume::confirm).post(resume::resume),
            )
            .layer(DefaultBodyLimit::max(64 * 1024))
            .route_layer(middleware::from_fn_with_state(state.clone(), observe))
            .with_state(state.clone())
            .merge(health::routes(checks, Arc::new(registry)))
            .merge(zengate_runtime::openapi::routes(ApiDoc::openapi()));
        let router = console::security_headers(router);
        Ok(Self {
            listener,
            router,
            client,
            state,
            limits: config.http.clone(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves and runs the background tasks until `shutdown`; then stops
    /// fetching, lets in-flight messages finish (ack/nak), drains HTTP and
    /// flushes NATS.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), ApprovalError> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "approval listening");
        let app = self.state.clone();
        // The state's own handle also ends SSE streams, so open streams do
        // not hold the HTTP drain.
        let stop = app.shutdown.clone();
        let mut background = Background::default();
        background.spawn(app.store.clone().watch(stop.clone()));
        background.spawn(intake::run_requests(app.clone(), stop.clone()));
        background.spawn(intake::run_outcomes(app.clone(), stop.clone()));
        background.spawn(sweeper::run(app.clone(), stop.clone()));
        let outer = shutdown.clone();
        background.spawn(async move {
            outer.wait().await;
            stop.trigger();
        });
        serve(
            self.listener,
            self.router,
            &self.limits,
            background,
            shutdown,
        )
        .await;
        self.state.shutdown.trigger();
        bus::flush_bounded(&self.client).await;
        tracing::info!("approval stopped");
        Ok(())
    }
}

async fn observe(State(app): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let res = next.run(req).await;
    app.metrics
        .api_seconds
        .get_or_create(&RouteLabel {
            route,
            status: res.status().as_u16().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    res
}
