//! Issuance throughput and latency against the same server's `/healthz`, in
//! the same run, with the same HTTP client: the release `auth` binary runs as
//! a child process exactly as deployed (JSON logs at INFO to a file, spans,
//! a private nats-server and redis-server), users are looked up in Redis and
//! both rate-limit counters are exercised (limits set out of reach).
//!
//! For 16 and 64 connections it runs `/healthz`, `POST /webhook/zendesk-jwt`
//! and `GET /webhook/chat-token` for `BENCH_SECS` (default 3) each, repeated
//! `BENCH_ROUNDS` times (default 3, interleaved so machine load hits every
//! target alike), and prints the median events/s, p50, p99, the server's CPU
//! per request and the ratio to `/healthz`; then the service's RSS at idle
//! and its peak.
//!
//! `cargo bench -p auth --bench issue` (`AUTH_BENCH_BIN=<path>` runs another
//! build of the binary, e.g. a saved copy of the previous version, for a
//! before/after comparison under the same machine load).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth::users::{NewUser, RedisUsers};
use zengate_runtime::redis_store::RedisStore;
use zengate_testkit::{
    NatsServer, ProcStats, RedisServer, ServiceProcess, free_port, proc_stats, service_binary,
};

const CONNECTIONS: [usize; 2] = [16, 64];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Healthz,
    Widget,
    Chat,
}

impl Target {
    const ALL: [Target; 3] = [Target::Healthz, Target::Widget, Target::Chat];

    fn label(self) -> &'static str {
        match self {
            Target::Healthz => "GET /healthz",
            Target::Widget => "POST /webhook/zendesk-jwt?user_token=…",
            Target::Chat => "GET /webhook/chat-token (Bearer)",
        }
    }

    fn request(self, http: &reqwest::Client, base: &str, token: &str) -> reqwest::RequestBuilder {
        match self {
            Target::Healthz => http.get(format!("{base}/healthz")),
            Target::Widget => http.post(format!("{base}/webhook/zendesk-jwt?user_token={token}")),
            Target::Chat => http
                .get(format!("{base}/webhook/chat-token"))
                .bearer_auth(token),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Server CPU time per request.
    cpu_per_req: Duration,
}

struct Bench {
    http: reqwest::Client,
    base: String,
    tokens: Arc<Vec<String>>,
    pid: u32,
    secs: u64,
}

impl Bench {
    async fn phase(&self, target: Target, connections: usize, secs: f64) -> Phase {
        let before = self.stats();
        let started = Instant::now();
        let until = started + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..connections)
            .map(|i| {
                let http = self.http.clone();
                let base = self.base.clone();
                let tokens = self.tokens.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(16 * 1024);
                    while Instant::now() < until {
                        let t = Instant::now();
                        let res = target
                            .request(&http, &base, &tokens[i])
                            .send()
                            .await
                            .expect("request");
                        assert_eq!(res.status(), 200, "{}", target.label());
                        let _ = res.bytes().await.expect("body");
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let after = self.stats();
        all.sort_unstable();
        let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
        Phase {
            rate: all.len() as f64 / elapsed,
            p50: pick(0.50),
            p99: pick(0.99),
            cpu_per_req: (after.cpu.saturating_sub(before.cpu)) / all.len().max(1) as u32,
        }
    }

    fn stats(&self) -> ProcStats {
        proc_stats(self.pid).expect("the auth process is running")
    }

    /// Waits until the background audit publisher has caught up, so its
    /// backlog does not share the CPU with the next phase.
    async fn drain_audits(&self) {
        let metrics = format!("{}/metrics", self.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let text = self.http.get(&metrics).send().await.unwrap();
            let text = text.text().await.unwrap();
            if zengate_testkit::metric_value(&text, "zengate_auth_audit_buffered") == 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn median<T: Copy>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs: u64 = env_or("BENCH_SECS", 3);
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let logs = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let limit = (u64::MAX / 2).to_string();
    let mut auth = ServiceProcess::spawn(
        "auth",
        std::env::var_os("AUTH_BENCH_BIN")
            .map(Into::into)
            .unwrap_or_else(|| service_binary("auth")),
        vec![
            ("AUTH_ADDR".into(), addr.clone()),
            ("NATS_URL".into(), nats.url()),
            ("REDIS_URL".into(), redis.url()),
            (
                "ZENDESK_JWT_SHARED_SECRET".into(),
                "bench-shared-secret".into(),
            ),
            ("AUTH_AUDIT_BUFFER".into(), "1000000".into()),
            ("AUTH_RATE_LIMIT_PER_TOKEN".into(), limit.clone()),
            ("AUTH_RATE_LIMIT_PER_IP".into(), limit),
            ("RUST_LOG".into(), "info".into()),
            ("LOG_FORMAT".into(), "json".into()),
        ],
        logs.path(),
    );
    auth.wait_ready(&addr).await;
    let pid = auth.pid().expect("auth runs");

    let users = RedisUsers::new(Arc::new(
        RedisStore::from_url(&redis.url(), Duration::from_secs(2)).unwrap(),
    ));
    let mut tokens = Vec::new();
    for i in 0..CONNECTIONS[CONNECTIONS.len() - 1] {
        let (t, _) = users
            .add(NewUser {
                name: format!("Bench {i}"),
                email: format!("bench{i}@example.com"),
                external_id: None,
                email_verified: false,
            })
            .await
            .unwrap();
        tokens.push(t.expose().to_owned());
    }
    let bench = Bench {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(CONNECTIONS[CONNECTIONS.len() - 1])
            .build()
            .unwrap(),
        base: format!("http://{addr}"),
        tokens: Arc::new(tokens),
        pid,
        secs,
    };
    let idle = bench.stats();

    // Warm-up: connections, the Redis pool, allocator arenas.
    for target in [Target::Chat, Target::Healthz] {
        bench.phase(target, CONNECTIONS[1], 1.0).await;
    }
    bench.drain_audits().await;

    // results[c][t] = one Phase per round; ratios[c][t] per round.
    let mut results = vec![vec![Vec::new(); Target::ALL.len()]; CONNECTIONS.len()];
    let mut ratios = vec![vec![Vec::new(); Target::ALL.len()]; CONNECTIONS.len()];
    let mut peak_rss = 0;
    for _ in 0..rounds {
        for (c, &connections) in CONNECTIONS.iter().enumerate() {
            let mut round = Vec::new();
            for target in Target::ALL {
                let p = bench.phase(target, connections, bench.secs as f64).await;
                peak_rss = peak_rss.max(bench.stats().rss_kib);
                bench.drain_audits().await;
                round.push(p);
            }
            for (t, p) in round.iter().enumerate() {
                results[c][t].push(*p);
                ratios[c][t].push(p.rate / round[0].rate);
            }
        }
    }
    let end = bench.stats();

    println!(
        "auth issuance benchmark: release binary, JSON logs at INFO, Redis lookup + 2 rate-limit \
         counters + audit; {secs} s per phase, median of {rounds} interleaved rounds"
    );
    println!(
        "{:>5}  {:<40} {:>9} {:>8} {:>8} {:>12} {:>8}",
        "conns", "target", "events/s", "p50 ms", "p99 ms", "CPU/req µs", "ratio"
    );
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        for (t, target) in Target::ALL.iter().enumerate() {
            let p = median(results[c][t].clone(), |p| p.rate);
            let ratio = median(ratios[c][t].clone(), |r| *r);
            println!(
                "{connections:>5}  {:<40} {:>9.0} {:>8.2} {:>8.2} {:>12.1} {:>7.2}x",
                target.label(),
                p.rate,
                ms(p.p50),
                ms(p.p99),
                p.cpu_per_req.as_secs_f64() * 1e6,
                ratio
            );
        }
    }
    println!("target: issuance >= 0.60x /healthz at each connection count");
    println!(
        "auth RSS: idle {:.1} MiB, largest seen after a phase {:.1} MiB, peak (VmHWM) {:.1} MiB",
        mib(idle.rss_kib),
        mib(peak_rss),
        mib(end.peak_rss_kib)
    );
    auth.kill().await;
}
