//! `TestService`: a service spawned on port 0 in the test's runtime, with
//! an HTTP client, a metric scraper, and graceful or abrupt stops.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use zengate_runtime::Shutdown;

/// Longest wait for a service to stop gracefully.
const STOP_DEADLINE: Duration = Duration::from_secs(25);

#[derive(Debug)]
pub struct TestService {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub shutdown: Shutdown,
    join: tokio::task::JoinHandle<()>,
}

impl TestService {
    /// Spawns `run(shutdown)` for a service already bound to `addr`
    /// (`Application::build` then `app.run`), the zero-to-production
    /// `spawn_app` way: the test talks to it over real HTTP.
    pub fn spawn<F, Fut, E>(addr: SocketAddr, run: F) -> Self
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Debug,
    {
        let shutdown = Shutdown::new();
        let running = run(shutdown.clone());
        let join = tokio::spawn(async move {
            running.await.expect("service runs");
        });
        Self {
            addr,
            http: reqwest::Client::new(),
            shutdown,
            join,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        with_token(self.http.get(self.url(path)), token)
    }

    pub fn post(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        with_token(self.http.post(self.url(path)), token)
    }

    /// The body of `GET path`.
    pub async fn text(&self, path: &str) -> String {
        let res = self.get(path, None).send().await.unwrap();
        res.text().await.unwrap()
    }

    /// The value of one series on `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        crate::metric_value(&self.text("/metrics").await, series)
    }

    /// Triggers shutdown and waits for the service to drain and stop;
    /// panics if it does not in time or it stopped with an error.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.stopped().await;
    }

    /// Waits for a stop the test triggered itself through `shutdown`.
    pub async fn stopped(self) {
        tokio::time::timeout(STOP_DEADLINE, self.join)
            .await
            .expect("service stops in time")
            .expect("service stopped cleanly");
    }

    /// Like a crash: in-flight work is neither finished nor settled.
    pub fn kill(self) {
        self.join.abort();
    }
}

fn with_token(req: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}
