//! Issuance throughput and latency with the Redis user lookup, against the
//! same server's `/healthz` in the same run (private nats-server and
//! redis-server): 64 concurrent HTTP clients, a fixed duration each.
//!
//! `cargo bench -p auth` (env `BENCH_SECS`, default 5, per phase).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth::Application;
use auth::config::{AuthConfig, LookupConfig};
use auth::keys::{KeySources, SecretSource};
use auth::users::{NewUser, RedisUsers};
use zengate_core::Secret;
use zengate_runtime::Shutdown;
use zengate_runtime::redis_store::RedisStore;
use zengate_testkit::{NatsServer, RedisServer};

const CLIENTS: usize = 64;

struct Phase {
    requests: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

async fn phase(
    http: &reqwest::Client,
    secs: u64,
    make: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Phase {
    let make = Arc::new(make);
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let http = http.clone();
            let make = make.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(4096);
                while Instant::now() < until {
                    let t = Instant::now();
                    let res = make(&http, i).send().await.expect("request");
                    assert_eq!(res.status(), 200);
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
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Phase {
        requests: all.len() as u64,
        secs,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let config = AuthConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        nats: nats.url().into(),
        redis: redis.url().into(),
        http: Default::default(),
        redis_timeout: Duration::from_secs(1),
        keys: KeySources {
            widget: SecretSource::Inline(Secret::new("bench-shared-secret")),
            messaging: None,
            messaging_keys: None,
        },
        token_ttl: Duration::from_secs(300),
        secret_poll: Duration::from_secs(3600),
        allowed_origins: vec![],
        lookup: LookupConfig::Redis,
        audit_buffer: 1_000_000,
        publish_timeout: Duration::from_secs(2),
        // The limits are exercised (two Redis counters per request) but set
        // high enough not to refuse the benchmark's own traffic.
        rate_limit_per_token: u64::MAX / 2,
        rate_limit_per_ip: u64::MAX / 2,
        trusted_proxies: vec![],
    };
    let app = Application::build(config).await.expect("auth builds");
    let addr = app.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let s = shutdown.clone();
    let server = tokio::spawn(async move { app.run(s).await.expect("auth runs") });

    let users = RedisUsers::new(Arc::new(
        RedisStore::from_url(&redis.url(), Duration::from_secs(2)).unwrap(),
    ));
    let mut tokens = Vec::new();
    for i in 0..CLIENTS {
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
    let tokens = Arc::new(tokens);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let base = format!("http://{addr}");

    // warm-up
    let b = base.clone();
    let t = tokens.clone();
    phase(&http, 1, move |h, i| {
        h.get(format!("{b}/webhook/chat-token")).bearer_auth(&t[i])
    })
    .await;

    let b = base.clone();
    let t = tokens.clone();
    let issue = phase(&http, secs, move |h, i| {
        h.post(format!("{b}/webhook/zendesk-jwt?user_token={}", t[i]))
    })
    .await;
    // Let the audit backlog drain so it does not share the CPU with /healthz.
    let metrics = format!("{base}/metrics");
    let drained = Instant::now();
    loop {
        let text = http
            .get(&metrics)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let buffered = text
            .lines()
            .find_map(|l| l.strip_prefix("zengate_auth_audit_buffered "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if buffered == 0.0 || drained.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = base.clone();
    let health = phase(&http, secs, move |h, _| h.get(format!("{b}/healthz"))).await;

    println!("auth issuance benchmark: {CLIENTS} concurrent clients, {secs} s per phase");
    println!(
        "  issue   (POST /webhook/zendesk-jwt, Redis lookup + 2 rate-limit counters + audit): {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests)",
        issue.rate(),
        issue.p50.as_secs_f64() * 1e3,
        issue.p99.as_secs_f64() * 1e3,
        issue.requests
    );
    println!(
        "  healthz (GET /healthz):                                                           {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests)",
        health.rate(),
        health.p50.as_secs_f64() * 1e3,
        health.p99.as_secs_f64() * 1e3,
        health.requests
    );
    println!(
        "  ratio issue/healthz: {:.2} (target >= 0.5)",
        issue.rate() / health.rate()
    );

    shutdown.trigger();
    let _ = server.await;
}
