//! `/healthz`, `/readyz` and `/metrics`, the same on every HTTP service.
//!
//! `/healthz` answers while the process serves requests. `/readyz` checks the
//! dependencies a service cannot work without (NATS, its streams and buckets)
//! and reports optional ones (Redis where it only degrades) without failing.

use std::sync::Arc;

use async_nats::jetstream;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::bus::is_connected;
use crate::redis_store::RedisStore;

/// What `/readyz` checks.
#[derive(Clone, Default)]
pub struct Checks {
    pub nats: Option<async_nats::Client>,
    pub js: Option<jetstream::Context>,
    pub streams: Vec<String>,
    pub buckets: Vec<String>,
    pub redis: Option<Arc<RedisStore>>,
    /// When false, Redis trouble is reported but does not make the service unready.
    pub redis_required: bool,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checks")
            .field("streams", &self.streams)
            .field("buckets", &self.buckets)
            .field("redis_required", &self.redis_required)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
struct CheckResult {
    name: String,
    ok: bool,
    required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    ready: bool,
    checks: Vec<CheckResult>,
}

impl Checks {
    async fn run(&self) -> Report {
        let mut checks = Vec::new();
        if let Some(client) = &self.nats {
            let ok = is_connected(client);
            checks.push(CheckResult {
                name: "nats".into(),
                ok,
                required: true,
                detail: (!ok).then(|| format!("{:?}", client.connection_state())),
            });
        }
        if let Some(js) = &self.js {
            for name in &self.streams {
                let r =
                    tokio::time::timeout(std::time::Duration::from_secs(2), js.get_stream(name))
                        .await;
                let (ok, detail) = match r {
                    Ok(Ok(_)) => (true, None),
                    Ok(Err(e)) => (false, Some(e.to_string())),
                    Err(_) => (false, Some("timed out".to_owned())),
                };
                checks.push(CheckResult {
                    name: format!("stream:{name}"),
                    ok,
                    required: true,
                    detail,
                });
            }
            for name in &self.buckets {
                let r =
                    tokio::time::timeout(std::time::Duration::from_secs(2), js.get_key_value(name))
                        .await;
                let (ok, detail) = match r {
                    Ok(Ok(_)) => (true, None),
                    Ok(Err(e)) => (false, Some(e.to_string())),
                    Err(_) => (false, Some("timed out".to_owned())),
                };
                checks.push(CheckResult {
                    name: format!("kv:{name}"),
                    ok,
                    required: true,
                    detail,
                });
            }
        }
        if let Some(redis) = &self.redis {
            let r = redis.ping().await;
            checks.push(CheckResult {
                name: "redis".into(),
                ok: r.is_ok(),
                required: self.redis_required,
                detail: r.err().map(|e| e.to_string()),
            });
        }
        Report {
            ready: checks.iter().all(|c| c.ok || !c.required),
            checks,
        }
    }
}

#[derive(Clone)]
struct HealthState {
    checks: Arc<Checks>,
    registry: Arc<Registry>,
}

/// The three routes, to merge into a service's router.
pub fn routes<S: Clone + Send + Sync + 'static>(
    checks: Checks,
    registry: Arc<Registry>,
) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(HealthState {
            checks: Arc::new(checks),
            registry,
        })
}

/// Process alive.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "the process serves requests", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Dependencies reachable; a JSON report of every check.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "every required dependency is reachable"),
    (status = 503, description = "a required dependency is not reachable")))]
async fn readyz(State(state): State<HealthState>) -> Response {
    let report = state.checks.run().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

/// Prometheus / OpenMetrics text.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "metrics in OpenMetrics text format", body = String)))]
async fn metrics(State(state): State<HealthState>) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The OpenAPI description of the three routes above, merged into every
/// service's document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics))]
pub struct HealthApi;
