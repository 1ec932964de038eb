//! Application wiring: one `AppState`, the router, and `Application`
//! (`build` binds and connects, `run` serves until shutdown) for `main`,
//! the all-in-one stack and tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi as _;
use zengate_core::events::ZENGATE_STREAM;
use zengate_runtime::bus::{self, BusError, Publisher};
use zengate_runtime::health::{self, Checks};
use zengate_runtime::redis_store::{RedisStore, StoreError};
use zengate_runtime::{Background, ConfigError, HttpLimits, Shutdown, serve};

use crate::audit::AuditQueue;
use crate::client_ip::TrustedProxies;
use crate::config::{AuthConfig, LookupConfig};
use crate::http;
use crate::issue::Issuer;
use crate::keys::KeyStore;
use crate::metrics::AuthMetrics;
use crate::users::{HttpLookup, Lookup, RedisUsers};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the user lookup client: {0}")]
    Lookup(String),
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// Requests per minute; 0 = no limit.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_ip: u64,
    pub per_token: u64,
}

/// Everything a request needs.
#[derive(Debug)]
pub struct AppState {
    pub issuer: Arc<Issuer>,
    pub lookup: Lookup,
    pub redis: Arc<RedisStore>,
    pub limits: Limits,
    pub proxies: TrustedProxies,
    pub metrics: Arc<AuthMetrics>,
}

/// A built auth service, bound to its listener, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    client: async_nats::Client,
    publisher: Publisher,
    limits: HttpLimits,
    issuer: Arc<Issuer>,
    audit: Arc<AuditQueue>,
    keys: Arc<KeyStore>,
    secret_poll: Duration,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Application {
    /// Connects to NATS, provisions `ZENGATE`, loads the keys, and binds
    /// `config.addr` (port 0 picks a free port).
    pub async fn build(config: AuthConfig) -> Result<Self, AuthError> {
        let listener = TcpListener::bind(config.addr).await?;
        let keys = Arc::new(KeyStore::new(config.keys.clone())?);
        let client = bus::connect(&config.nats, "zengate-auth").await?;
        let js = bus::jetstream(client.clone(), config.publish_timeout);
        bus::ensure_stream(
            &js,
            bus::zengate_stream_config_replicated(config.nats.stream_replicas),
        )
        .await?;
        let redis = Arc::new(RedisStore::new(&config.redis, config.redis_timeout)?);
        let lookup = match &config.lookup {
            LookupConfig::Redis => Lookup::Redis(RedisUsers::new(redis.clone())),
            LookupConfig::Http {
                url,
                timeout,
                authorization,
            } => Lookup::Http(
                HttpLookup::new(url.clone(), *timeout, authorization.clone())
                    .map_err(|e| AuthError::Lookup(e.to_string()))?,
            ),
        };

        let mut registry = Registry::default();
        let metrics = Arc::new(AuthMetrics::register(&mut registry));
        let audit = Arc::new(AuditQueue::new(config.audit_buffer, metrics.clone()));
        let issuer = Arc::new(Issuer::new(
            keys.clone(),
            config.token_ttl,
            audit.clone(),
            metrics.clone(),
        ));
        let state = Arc::new(AppState {
            issuer: issuer.clone(),
            lookup,
            redis: redis.clone(),
            limits: Limits {
                per_ip: config.rate_limit_per_ip,
                per_token: config.rate_limit_per_token,
            },
            proxies: TrustedProxies::new(config.trusted_proxies.clone()),
            metrics,
        });
        let checks = Checks {
            nats: Some(client.clone()),
            js: Some(js.clone()),
            streams: vec![ZENGATE_STREAM.to_owned()],
            redis: Some(redis),
            redis_required: true,
            ..Checks::default()
        };

        // Only the Bearer endpoints are meant for browsers on other origins.
        let mut browser = Router::new()
            .route(crate::CHAT_TOKEN_PATH, get(http::chat_token))
            .route(crate::MESSAGING_TOKEN_PATH, get(http::messaging_token));
        if let Some(cors) = cors(&config.allowed_origins)? {
            browser = browser.layer(cors);
        }
        let router = Router::new()
            .route(crate::ZENDESK_JWT_PATH, post(http::zendesk_jwt))
            .route(crate::MESSAGING_JWT_PATH, post(http::messaging_jwt))
            .route("/demo", get(http::demo))
            .route("/demo.js", get(http::demo_js))
            .merge(browser)
            .with_state(state)
            .merge(health::routes(checks, Arc::new(registry)))
            .merge(zengate_runtime::openapi::routes(
                crate::openapi::ApiDoc::openapi(),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            // JSON and everything else: nothing may load or frame it.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ));

        #[cfg(unix)]
        let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; secrets reload by polling only");
                None
            }
        };
        Ok(Self {
            listener,
            router,
            client,
            publisher: Publisher::new(js, config.publish_timeout),
            limits: config.http.clone(),
            issuer,
            audit,
            keys,
            secret_poll: config.secret_poll,
            #[cfg(unix)]
            hangup,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The in-process issuer (same keys, audit queue and metrics as HTTP).
    pub fn issuer(&self) -> Arc<Issuer> {
        self.issuer.clone()
    }

    /// The live keys; `reload_logged` is what SIGHUP triggers.
    pub fn keys(&self) -> Arc<KeyStore> {
        self.keys.clone()
    }

    /// Serves until `shutdown`, drains in-flight requests, publishes what it
    /// can of the audit buffer, flushes NATS.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), AuthError> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "auth listening");
        let mut background = Background::default();
        background.spawn(self.audit.clone().drain(self.publisher, shutdown.clone()));
        background.spawn(reload_loop(
            self.keys.clone(),
            self.secret_poll,
            #[cfg(unix)]
            self.hangup,
            shutdown.clone(),
        ));
        serve(
            self.listener,
            self.router,
            &self.limits,
            background,
            shutdown,
        )
        .await;
        bus::flush_bounded(&self.client).await;
        tracing::info!("auth stopped");
        Ok(())
    }
}

fn cors(origins: &[String]) -> Result<Option<CorsLayer>, ConfigError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let values = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o).map_err(|_| {
                ConfigError::invalid("AUTH_ALLOWED_ORIGINS", format!("{o:?} is not an origin"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_methods([Method::GET])
            .allow_headers([header::AUTHORIZATION])
            .max_age(Duration::from_secs(600)),
    ))
}

/// Reloads the keys on SIGHUP and whenever a poll finds a change.
async fn reload_loop(
    keys: Arc<KeyStore>,
    every: Duration,
    #[cfg(unix)] mut hangup: Option<tokio::signal::unix::Signal>,
    shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => keys.reload_logged("poll"),
            _ = hup => keys.reload_logged("SIGHUP"),
        }
    }
}
