//! Redis behind a circuit breaker, so a Redis outage costs the intake almost
//! nothing. Every operation has a short deadline; after a few consecutive
//! failures (or at once when the connection itself breaks) the breaker opens
//! and requests skip Redis without waiting; a background task probes Redis
//! (connect, then `PING` within the same deadline) and closes the breaker once
//! it answers in time again. One multiplexed connection carries every request
//! (commands from concurrent requests are pipelined on it).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult};
use tokio::sync::{Notify, watch};
use zengate_runtime::Shutdown;

/// Consecutive failed operations that open the breaker.
const TRIP_AFTER: u32 = 3;

/// Longest wait for a new connection (TCP, TLS, `AUTH`) before a probe gives
/// up. Connecting is off the request path, so it may take longer than one
/// operation's deadline.
const CONNECT_DEADLINE: Duration = Duration::from_secs(1);

/// Why an operation did not run or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    #[error("redis skipped: the breaker is open")]
    Open,
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A batched lookup failed (the batch's error, as text).
    #[error("redis lookup failed: {0}")]
    Failed(String),
    /// Lookups queue faster than Redis answers: skipped, not waited for.
    #[error("redis lookups backlogged; skipped")]
    Busy,
}

/// Breaker settings.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Deadline of one operation (and of a probe's `PING`).
    pub timeout: Duration,
    /// Pause between probes while the breaker is open.
    pub probe_interval: Duration,
}

/// What the breaker exports: `1` while open, and how often it opened.
#[derive(Debug, Clone, Default)]
pub struct BreakerMetrics {
    pub open: Gauge,
    pub trips: Counter,
}

/// A Redis connection guarded by a circuit breaker.
#[derive(Debug)]
pub struct GuardedRedis {
    client: redis::Client,
    settings: BreakerSettings,
    conn: RwLock<Option<MultiplexedConnection>>,
    open: AtomicBool,
    failures: AtomicU32,
    wake_prober: Notify,
    state: watch::Sender<bool>,
    metrics: BreakerMetrics,
}

impl GuardedRedis {
    /// Connects once (bounded by the connect deadline) and starts the prober.
    /// Redis being down only starts the breaker open.
    pub async fn start(
        client: redis::Client,
        settings: BreakerSettings,
        metrics: BreakerMetrics,
        shutdown: &Shutdown,
    ) -> Arc<Self> {
        let me = Arc::new(Self {
            client,
            settings,
            conn: RwLock::new(None),
            open: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            wake_prober: Notify::new(),
            state: watch::Sender::new(true),
            metrics,
        });
        me.metrics.open.set(1);
        match me.probe().await {
            Ok(conn) => me.close(conn),
            Err(e) => tracing::warn!(
                error = %e,
                "redis unavailable at start; deduplicating on the JetStream window until it answers"
            ),
        }
        tokio::spawn(me.clone().probe_while_open(shutdown.clone()));
        me
    }

    /// Whether requests currently skip Redis.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Breaker transitions: `true` while open.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.state.subscribe()
    }

    /// Runs `op` on the shared connection with the operation deadline, or
    /// fails at once while the breaker is open.
    pub async fn run<T, F, Fut>(&self, op: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = match (self.is_open(), self.current()) {
            (false, Some(conn)) => conn,
            _ => return Err(RedisUnavailable::Open),
        };
        match tokio::time::timeout(self.settings.timeout, op(conn)).await {
            Ok(Ok(v)) => {
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                let broken =
                    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error();
                self.failed(broken);
                Err(e.into())
            }
            Err(_) => {
                self.failed(false);
                Err(RedisUnavailable::Timeout(self.settings.timeout))
            }
        }
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.conn.read().ok().and_then(|c| c.clone())
    }

    fn failed(&self, broken: bool) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if (broken || n >= TRIP_AFTER) && !self.open.swap(true, Ordering::AcqRel) {
            if let Ok(mut slot) = self.conn.write() {
                *slot = None;
            }
            self.metrics.open.set(1);
            self.metrics.trips.inc();
            self.state.send_replace(true);
            tracing::warn!(
                failures = n,
                "redis breaker open: skipping redis, deduplicating on the JetStream window"
            );
            self.wake_prober.notify_one();
        }
    }

    fn close(&self, conn: MultiplexedConnection) {
        if let Ok(mut slot) = self.conn.write() {
            *slot = Some(conn);
        }
        self.failures.store(0, Ordering::Relaxed);
        self.open.store(false, Ordering::Release);
        self.metrics.open.set(0);
        self.state.send_replace(false);
        tracing::info!("redis breaker closed: redis answers again");
    }

    /// A fresh connection that answered `PING` within the operation deadline.
    async fn probe(&self) -> Result<MultiplexedConnection, RedisUnavailable> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_DEADLINE))
            .set_response_timeout(Some(CONNECT_DEADLINE));
        let mut conn = tokio::time::timeout(
            CONNECT_DEADLINE,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| RedisUnavailable::Timeout(CONNECT_DEADLINE))??;
        let pong: String = tokio::time::timeout(
            self.settings.timeout,
            redis::cmd("PING").query_async(&mut conn),
        )
        .await
        .map_err(|_| RedisUnavailable::Timeout(self.settings.timeout))??;
        if pong == "PONG" {
            Ok(conn)
        } else {
            Err(RedisUnavailable::Timeout(self.settings.timeout))
        }
    }

    async fn probe_while_open(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            if !self.is_open() {
                tokio::select! {
                    () = self.wake_prober.notified() => {}
                    () = shutdown.wait() => return,
                }
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.probe_interval) => {}
                () = shutdown.wait() => return,
            }
            match self.probe().await {
                Ok(conn) => self.close(conn),
                Err(e) => tracing::debug!(error = %e, "redis probe failed; breaker stays open"),
            }
        }
    }
}
