//! Issuance throughput and latency against the same server's `/healthz`, in
//! the same run, with the same HTTP client: the release `auth` binary runs as
//! a child process exactly as deployed (JSON logs at INFO to a file, spans,
//! a private nats-server and redis-server), users are looked up in Redis and
//! both rate-limit counters are exercised (limits set out of reach).
//!
//! Beside it runs the limit of the design (`minimal.rs`): a server that does
//! only what an issuance must (one Redis `GET` of the user, the signature,
//! the audit on JetStream) with nothing else. Its own issuance-to-`/healthz`
//! ratio is the most any issuing server can reach on this machine, and the
//! service's issuance rate over the minimal one shows what the service's
//! extras (limits, logs, spans, metrics) cost.
//!
//! For 16 and 64 connections it runs `/healthz`, `POST /webhook/zendesk-jwt`
//! and `GET /webhook/chat-token` against the service and `/healthz` and
//! `GET /webhook/chat-token` against the minimal server, for `BENCH_SECS`
//! (default 3) each, repeated `BENCH_ROUNDS` times (default 3, interleaved so
//! machine load hits every target alike), and prints the median events/s,
//! p50, p99, the CPU per request of the server, of nats-server, of
//! redis-server and of the whole machine (the load client and the kernel
//! included: what bounds the rate on a shared machine), and the ratio to the
//! same server's `/healthz`; then the service's RSS at idle and its peak.
//!
//! `cargo bench -p auth --bench issue` (`AUTH_BENCH_BIN=<path>` runs another
//! build of the binary, e.g. a saved copy of the previous version, for a
//! before/after comparison under the same machine load).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_debug_implementations
)]

mod minimal;

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth::users::{NewUser, RedisUsers};
use zengate_runtime::redis_store::RedisStore;
use zengate_testkit::{
    NatsServer, RedisServer, ServiceProcess, cpu_of, free_port, machine_busy, proc_stats,
    service_binary,
};

/// The minimal server runs on the services' allocator, so the ratio
/// compares the work, not the allocator.
#[global_allocator]
static ALLOCATOR: zengate_runtime::Allocator = zengate_runtime::Allocator;

const CONNECTIONS: [usize; 2] = [16, 64];
const SHARED_SECRET: &str = "bench-shared-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Healthz,
    Widget,
    Chat,
}

impl Target {
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

/// Which server a phase drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Auth,
    Minimal,
}

/// Every measured (server, target), `/healthz` first for each server.
const ROWS: [(Who, Target); 5] = [
    (Who::Auth, Target::Healthz),
    (Who::Auth, Target::Widget),
    (Who::Auth, Target::Chat),
    (Who::Minimal, Target::Healthz),
    (Who::Minimal, Target::Chat),
];

/// CPU time so far of the server under test, nats-server, redis-server and
/// the whole machine.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    server: Duration,
    nats: Duration,
    redis: Duration,
    machine: Duration,
}

impl Cpu {
    fn per_request_since(&self, start: &Cpu, requests: usize) -> Cpu {
        let n = requests.max(1) as u32;
        let per = |now: Duration, then: Duration| now.saturating_sub(then) / n;
        Cpu {
            server: per(self.server, start.server),
            nats: per(self.nats, start.nats),
            redis: per(self.redis, start.redis),
            machine: per(self.machine, start.machine),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// CPU per request.
    cpu: Cpu,
}

/// One server under test.
struct Server {
    process: ServiceProcess,
    base: String,
    pid: u32,
}

struct Bench {
    http: reqwest::Client,
    auth: Server,
    minimal: Server,
    tokens: Arc<Vec<String>>,
    /// nats-server's and redis-server's pids.
    shared: (u32, u32),
    secs: u64,
}

impl Bench {
    fn server(&self, who: Who) -> &Server {
        match who {
            Who::Auth => &self.auth,
            Who::Minimal => &self.minimal,
        }
    }

    fn cpu(&self, who: Who) -> Cpu {
        Cpu {
            server: cpu_of(self.server(who).pid),
            nats: cpu_of(self.shared.0),
            redis: cpu_of(self.shared.1),
            machine: machine_busy(),
        }
    }

    async fn phase(&self, who: Who, target: Target, connections: usize, secs: f64) -> Phase {
        let base = self.server(who).base.clone();
        let before = self.cpu(who);
        let started = Instant::now();
        let until = started + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..connections)
            .map(|i| {
                let http = self.http.clone();
                let base = base.clone();
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
                        assert_eq!(res.status(), 200, "{who:?} {}", target.label());
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
        // Audits published after the phase are charged to it too.
        self.drain_audits(who).await;
        let after = self.cpu(who);
        all.sort_unstable();
        let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
        Phase {
            rate: all.len() as f64 / elapsed,
            p50: pick(0.50),
            p99: pick(0.99),
            cpu: after.per_request_since(&before, all.len()),
        }
    }

    /// Waits until the server's background audit publisher has caught up,
    /// so its backlog does not share the CPU with the next phase.
    async fn drain_audits(&self, who: Who) {
        let base = &self.server(who).base;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let backlog = match who {
                Who::Auth => {
                    let text = self.http.get(format!("{base}/metrics")).send().await;
                    let text = text.unwrap().text().await.unwrap();
                    zengate_testkit::metric_value(&text, "zengate_auth_audit_buffered")
                }
                Who::Minimal => {
                    let text = self.http.get(format!("{base}/audit-backlog")).send().await;
                    text.unwrap().text().await.unwrap().parse().unwrap()
                }
            };
            if backlog == 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
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

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
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

async fn start(
    name: &str,
    bin: std::path::PathBuf,
    env: Vec<(String, String)>,
    logs: &std::path::Path,
) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut env = env;
    env.push(("AUTH_ADDR".into(), addr.clone()));
    let mut process = ServiceProcess::spawn(name, bin, env, logs);
    process.wait_ready(&addr).await;
    let pid = process.pid().expect("the server runs");
    Server {
        process,
        base: format!("http://{addr}"),
        pid,
    }
}

#[tokio::main]
async fn main() {
    if std::env::var(minimal::ROLE_VAR).as_deref() == Ok("minimal") {
        minimal::serve().await;
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs: u64 = env_or("BENCH_SECS", 3);
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let logs = tempfile::tempdir().unwrap();
    let limit = (u64::MAX / 2).to_string();
    let shared_env = || {
        vec![
            ("NATS_URL".to_owned(), nats.url()),
            ("REDIS_URL".to_owned(), redis.url()),
            (
                "ZENDESK_JWT_SHARED_SECRET".to_owned(),
                SHARED_SECRET.to_owned(),
            ),
        ]
    };
    let mut auth_env = shared_env();
    auth_env.extend([
        ("AUTH_AUDIT_BUFFER".into(), "1000000".into()),
        ("AUTH_RATE_LIMIT_PER_TOKEN".into(), limit.clone()),
        ("AUTH_RATE_LIMIT_PER_IP".into(), limit),
        ("RUST_LOG".into(), "info".into()),
        ("LOG_FORMAT".into(), "json".into()),
    ]);
    let auth = start(
        "auth",
        std::env::var_os("AUTH_BENCH_BIN")
            .map(Into::into)
            .unwrap_or_else(|| service_binary("auth")),
        auth_env,
        logs.path(),
    )
    .await;
    let mut minimal_env = shared_env();
    minimal_env.push((minimal::ROLE_VAR.into(), "minimal".into()));
    let minimal = start(
        "minimal",
        std::env::current_exe().expect("bench executable"),
        minimal_env,
        logs.path(),
    )
    .await;

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
    let mut bench = Bench {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(CONNECTIONS[CONNECTIONS.len() - 1])
            .build()
            .unwrap(),
        auth,
        minimal,
        tokens: Arc::new(tokens),
        shared: (
            nats.pid().expect("nats-server runs"),
            redis.pid().expect("redis-server runs"),
        ),
        secs,
    };
    let idle = proc_stats(bench.auth.pid).expect("auth runs");

    // Warm-up: connections, the Redis pools, allocator arenas.
    for (who, target) in ROWS {
        bench.phase(who, target, CONNECTIONS[1], 1.0).await;
    }

    // results[c][r] = one Phase per round; ratios[c][r] per round, each to
    // the same server's /healthz in that round.
    let mut results = vec![vec![Vec::new(); ROWS.len()]; CONNECTIONS.len()];
    let mut ratios = vec![vec![Vec::new(); ROWS.len()]; CONNECTIONS.len()];
    // auth's chat-token rate over the minimal server's, per round.
    let mut to_limit = vec![Vec::new(); CONNECTIONS.len()];
    let mut peak_rss = 0;
    for _ in 0..rounds {
        for (c, &connections) in CONNECTIONS.iter().enumerate() {
            let mut round = Vec::new();
            for (who, target) in ROWS {
                let p = bench
                    .phase(who, target, connections, bench.secs as f64)
                    .await;
                if who == Who::Auth {
                    peak_rss = peak_rss.max(proc_stats(bench.auth.pid).expect("auth runs").rss_kib);
                }
                round.push(p);
            }
            for (r, (who, _)) in ROWS.iter().enumerate() {
                let healthz = ROWS
                    .iter()
                    .position(|&(w, t)| w == *who && t == Target::Healthz)
                    .expect("every server has a /healthz row");
                results[c][r].push(round[r]);
                ratios[c][r].push(round[r].rate / round[healthz].rate);
            }
            to_limit[c].push(round[2].rate / round[4].rate);
        }
    }
    let end = proc_stats(bench.auth.pid).expect("auth runs");

    println!(
        "auth issuance benchmark: release binary, JSON logs at INFO, Redis lookup + 2 rate-limit \
         counters + audit; minimal = Redis GET + sign + audit, nothing else; {secs} s per phase, \
         median of {rounds} interleaved rounds; CPU per request in µs"
    );
    println!(
        "{:>5}  {:<8} {:<40} {:>9} {:>7} {:>7} {:>7} {:>6} {:>6} {:>8} {:>7}",
        "conns",
        "server",
        "target",
        "events/s",
        "p50 ms",
        "p99 ms",
        "server",
        "nats",
        "redis",
        "machine",
        "ratio"
    );
    for (c, &connections) in CONNECTIONS.iter().enumerate() {
        for (r, (who, target)) in ROWS.iter().enumerate() {
            let p = median(results[c][r].clone(), |p| p.rate);
            let ratio = median(ratios[c][r].clone(), |r| *r);
            let server = match who {
                Who::Auth => "auth",
                Who::Minimal => "minimal",
            };
            println!(
                "{connections:>5}  {server:<8} {:<40} {:>9.0} {:>7.2} {:>7.2} {:>7.1} {:>6.1} {:>6.1} {:>8.1} {:>6.2}x",
                target.label(),
                p.rate,
                ms(p.p50),
                ms(p.p99),
                us(p.cpu.server),
                us(p.cpu.nats),
                us(p.cpu.redis),
                us(p.cpu.machine),
                ratio
            );
        }
        println!(
            "{connections:>5}  auth chat-token / minimal chat-token: {:.2}",
            median(to_limit[c].clone(), |r| *r)
        );
    }
    println!(
        "target: issuance >= 0.60x /healthz at each connection count; the minimal server's own \
         ratio is the most this design reaches here"
    );
    println!(
        "auth RSS: idle {:.1} MiB, largest seen after a phase {:.1} MiB, peak (VmHWM) {:.1} MiB",
        mib(idle.rss_kib),
        mib(peak_rss),
        mib(end.peak_rss_kib)
    );
    bench.auth.process.kill().await;
    bench.minimal.process.kill().await;
}
