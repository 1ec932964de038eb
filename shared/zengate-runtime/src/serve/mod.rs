//! `serve(listener, router, limits, background, shutdown)`: how every zengate
//! service (and the all-in-one stack) serves HTTP and runs its background
//! tasks until shutdown.
//!
//! A hostile or broken client cannot hold resources without bound: the
//! header block must arrive within [`HttpLimits::header_read_timeout`] and
//! fit in [`HttpLimits::max_header_bytes`] (`431`), the body within
//! [`HttpLimits::body_read_timeout`] (`408`), an idle connection is closed
//! after [`HttpLimits::keepalive_timeout`], at most
//! [`HttpLimits::max_connections`] connections are served (the rest wait in
//! the listen backlog), at most [`HttpLimits::max_in_flight`] requests are
//! handled (`503` with `Retry-After` beyond), and HTTP/2 cleartext is spoken
//! only when [`HttpLimits::h2c`] is set.
//!
//! On shutdown the listener closes, each connection finishes the request it
//! is serving and closes, and the background tasks (which watch the same
//! [`Shutdown`]) settle; what has not finished within the drain deadline is
//! aborted.

mod layers;
mod limits;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt as _;

pub use limits::{HttpLimits, MIN_HEADER_BYTES};

use crate::Shutdown;

/// Longest wait for connections and background tasks at shutdown (within a
/// Kubernetes grace period of 30 s).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

/// Tasks that run beside the HTTP server (consumers, sweepers, audit
/// drainers). Each watches the [`Shutdown`] given to [`serve`] and returns
/// once its work has settled.
#[derive(Debug)]
pub struct Background {
    tasks: JoinSet<()>,
    drain: Duration,
}

impl Default for Background {
    fn default() -> Self {
        Self::new(DRAIN_DEADLINE)
    }
}

impl Background {
    /// Tasks given `drain` to settle after shutdown before they are aborted.
    pub fn new(drain: Duration) -> Self {
        Self {
            tasks: JoinSet::new(),
            drain,
        }
    }

    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }
}

/// Serves `router` on `listener` within `limits` and runs `background` until
/// `shutdown`; then drains both (see the module doc). Requests carry the
/// peer's [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    background: Background,
    shutdown: Shutdown,
) {
    let Background { mut tasks, drain } = background;
    let router = layers::apply(router, limits);
    let builder = Arc::new(builder(limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.wait() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause, do not spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(connection(
            builder.clone(),
            stream,
            peer,
            router.clone(),
            ConnLimits {
                header_read: limits.header_read_timeout,
                keepalive: limits.keepalive_timeout,
            },
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    let settled = tokio::time::timeout(drain, async {
        tokio::join!(
            async { while connections.join_next().await.is_some() {} },
            async { while tasks.join_next().await.is_some() {} },
        )
    })
    .await;
    if settled.is_err() {
        tracing::warn!(
            ?drain,
            connections = connections.len(),
            tasks = tasks.len(),
            "connections or background tasks did not settle in time; aborting them"
        );
        connections.shutdown().await;
        tasks.shutdown().await;
    }
}

fn builder(limits: &HttpLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Timed here instead (`Activity`): hyper's timer also runs while a
        // kept-alive connection waits for its next request, which would cut
        // every idle connection at the header timeout.
        .header_read_timeout(None)
        .keep_alive(true)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    if limits.h2c {
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(u32::try_from(limits.max_in_flight).unwrap_or(u32::MAX))
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        builder
    } else {
        builder.http1_only()
    }
}

/// Whether a connection is serving a request, since when it is idle, and
/// since when the header block of its next request is arriving.
#[derive(Debug)]
struct Activity {
    active: AtomicUsize,
    idle_since: Mutex<Instant>,
    head_started: Mutex<Option<Instant>>,
    /// Wakes the connection's watchdog when a header block starts.
    head_begun: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            active: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            head_started: Mutex::new(None),
            head_begun: Notify::new(),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        *lock(&self.head_started) = None;
        self.active.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Bytes arrived: between requests they start a header block.
    fn received(&self) {
        if self.active.load(Ordering::Acquire) == 0 {
            let mut started = lock(&self.head_started);
            if started.is_none() {
                *started = Some(Instant::now());
                self.head_begun.notify_one();
            }
        }
    }

    /// When the connection must close if nothing changes: the header block
    /// under way is due, or the idle connection has waited long enough.
    /// `None` while a request is being served.
    fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        if let Some(started) = *lock(&self.head_started) {
            return Some(started + limits.header_read);
        }
        Some(*lock(&self.idle_since) + limits.keepalive)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The per-connection timeouts.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    header_read: Duration,
    keepalive: Duration,
}

/// The client's socket, reporting every read to the connection's
/// [`Activity`] (a header block's first bytes start its timeout).
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Marks a request in progress until dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *lock(&self.0.idle_since) = Instant::now();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection until it ends, closing it when a header block or
/// an idle wait overruns, and gracefully at shutdown.
async fn connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnLimits,
    shutdown: Shutdown,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let tracker = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let busy = tracker.begin();
        let answer = router.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let res = answer.await;
            drop(busy);
            res
        }
    });
    let io = Watched {
        stream,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        // While a request is served, look again after a while.
        let due = activity
            .deadline(&limits)
            .unwrap_or_else(|| Instant::now() + limits.keepalive);
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.wait(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = activity.head_begun.notified() => {}
            _ = tokio::time::sleep_until(due) => {
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    // Idle or stuck in a header block: nothing to finish.
                    tracing::debug!(%peer, "closing an idle or slow connection");
                    return;
                }
            }
        }
    }
}
