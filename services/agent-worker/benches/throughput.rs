//! Worker throughput against the Zendesk simulator, and webhook→proposal
//! latency through the real ingress. Real NATS and Redis (private
//! processes), the built-in rules drafter, every event fetching its ticket
//! and comments over HTTP.
//!
//! Latency: webhooks at a fixed offered rate (`BENCH_RATE`, default 200/s,
//! for `BENCH_LATENCY_SECS`, default 10) through the ingress, two release
//! `agent-worker` processes and, when built, the `approval` process; the
//! time from the ingress's 200 to `zengate.approval.requested` and to the
//! pending item, and each process's RSS (idle and peak, from /proc).
//!
//! `cargo bench -p agent-worker` (needs `.dev/bin` on PATH, see
//! scripts/setup.sh; `cargo build --release -p approval` first to include the
//! approval service). `BENCH_EVENTS` (default 2000, 0 skips) sets the
//! throughput runs' event count; `WORKER_BENCH_BIN=<path>` runs another
//! build of the worker binary in the latency run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_worker::{Application, Role, RulesDrafter, WorkerConfig};
use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use zendesk_client::{ClientConfig, Credentials};
use zendesk_sim::{SimConfig, SimHandle, Simulator};
use zengate_core::Secret;
use zengate_core::events::{ApprovalRequested, ProposalSource, ZENGATE_STREAM};
use zengate_runtime::{Shutdown, bus};
use zengate_testkit::{
    NatsServer, RedisServer, ServiceProcess, free_port, proc_stats, service_binary,
};

const ACCOUNT: u64 = 42;
const EMAIL: &str = "bot@example.com";
const TOKEN: &str = "bench-token";
const SECRET: &str = "YmVuY2gtd2ViaG9vay1zZWNyZXQ=";

struct Infra {
    nats: NatsServer,
    redis: RedisServer,
    sim: SimHandle,
    js: jetstream::Context,
    nats_client: async_nats::Client,
}

async fn infra() -> Infra {
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Simulator::start(SimConfig::new(EMAIL, TOKEN, ACCOUNT), listener)
        .await
        .unwrap();
    let nats_client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(nats_client.clone());
    bus::ensure_stream(&js, bus::zendesk_stream_config(&Default::default()))
        .await
        .unwrap();
    bus::ensure_stream(&js, bus::zengate_stream_config())
        .await
        .unwrap();
    Infra {
        nats,
        redis,
        sim,
        js,
        nats_client,
    }
}

fn config(i: &Infra) -> WorkerConfig {
    let mut zendesk = ClientConfig::new(
        "acme",
        Credentials::ApiToken {
            email: EMAIL.to_owned(),
            token: Secret::new(TOKEN),
        },
    );
    zendesk.base_url_override = Some(i.sim.base_url());
    WorkerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        nats: i.nats.url().into(),
        redis: i.redis.url().into(),
        http: Default::default(),
        account_id: ACCOUNT,
        zendesk,
        partitions: 32,
        filter_subjects: vec!["zendesk.*.ticket.*.*".to_owned()],
        ack_wait: Duration::from_secs(30),
        max_deliver: 5,
        retry_backoff: Duration::from_millis(100),
        retry_backoff_max: Duration::from_secs(2),
        fetch_wait: Duration::from_secs(1),
        rules_file: None,
        role: Role::Drafter,
        skip_staff_comments: true,
        comments_limit: 10,
        record_ttl: Duration::from_secs(3600),
        executor_concurrency: 1,
        redis_timeout: Duration::from_millis(500),
        nats_timeout: Duration::from_secs(5),
        release_keys: None,
        drafter: Default::default(),
    }
}

fn event(id: &str, ticket: u64, n: usize) -> Vec<u8> {
    let (ty, ev) = if n == 0 {
        ("created", "{}".to_owned())
    } else {
        (
            "comment_added",
            r#"{"comment":{"id":"1","body":"any news?","is_public":true,"author":{"id":"7","is_staff":false,"name":"Ada"}}}"#
                .to_owned(),
        )
    };
    format!(
        r#"{{"account_id":{ACCOUNT},"id":"{id}","type":"zen:event-type:ticket.{ty}","subject":"zen:ticket:{ticket}","time":"2025-01-08T10:12:07Z","zendesk_event_version":"2022-11-06","detail":{{"id":"{ticket}","subject":"Bench"}},"event":{ev}}}"#
    )
    .into_bytes()
}

async fn start_workers(i: &Infra, n: usize) -> Vec<(Shutdown, tokio::task::JoinHandle<()>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let app =
            Application::build_with_drafter(config(i), Arc::new(RulesDrafter::builtin().unwrap()))
                .await
                .unwrap();
        let s = Shutdown::new();
        let s2 = s.clone();
        out.push((s, tokio::spawn(async move { app.run(s2).await.unwrap() })));
    }
    out
}

async fn zengate_messages(js: &jetstream::Context) -> u64 {
    let mut s = js.get_stream(ZENGATE_STREAM).await.unwrap();
    s.info().await.unwrap().state.messages
}

async fn throughput(instances: usize, events: usize) -> f64 {
    let i = infra().await;
    let tickets: Vec<u64> = (0..100)
        .map(|k| {
            i.sim
                .create_enduser_ticket(&format!("Bench {k}"), "hello", "Ada", "ada@example.com")
                .id
        })
        .collect();
    let workers = start_workers(&i, instances).await;
    let started = Instant::now();
    let mut acks = Vec::with_capacity(events);
    for n in 0..events {
        let k = n % tickets.len();
        let round = n / tickets.len();
        let id = format!("b{k}-{round}");
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("{ACCOUNT}:{id}").as_str());
        let subject = format!(
            "zendesk.{ACCOUNT}.ticket.{}.{}",
            tickets[k],
            if round == 0 {
                "created"
            } else {
                "comment_added"
            }
        );
        acks.push(
            i.js.publish_with_headers(subject, headers, event(&id, tickets[k], round).into())
                .await
                .unwrap(),
        );
    }
    for a in acks {
        a.await.unwrap();
    }
    while zengate_messages(&i.js).await < events as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    for (s, j) in workers {
        s.trigger();
        let _ = j.await;
    }
    events as f64 / elapsed.as_secs_f64()
}

/// Where a service binary of this build would be (`target/<profile>/<name>`),
/// if it was built.
fn built_binary(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join(name);
    bin.is_file().then(|| service_binary(name))
}

/// The environment of the stack's service processes.
fn service_env(i: &Infra, name: &str, addr: &str) -> Vec<(String, String)> {
    let addr_var = if name == "approval" {
        "APPROVAL_ADDR"
    } else {
        "WORKER_ADDR"
    };
    [
        (addr_var, addr.to_owned()),
        ("NATS_URL", i.nats.url()),
        ("REDIS_URL", i.redis.url()),
        ("ZENDESK_ACCOUNT_ID", ACCOUNT.to_string()),
        ("ZENDESK_SUBDOMAIN", "acme".to_owned()),
        ("ZENDESK_EMAIL", EMAIL.to_owned()),
        ("ZENDESK_API_TOKEN", TOKEN.to_owned()),
        ("ZENDESK_API_BASE_URL", i.sim.base_url()),
        (
            "ZENDESK_JWT_SHARED_SECRET",
            "bench-jwt-shared-secret".to_owned(),
        ),
        (
            "APPROVER_TOKENS",
            "erin:erin-approver-token-0123456789abcdef0123".to_owned(),
        ),
        (
            "APPROVAL_RESUME_SECRET",
            "bench-resume-secret-0123456789".to_owned(),
        ),
        (
            "ZENGATE_RELEASE_SIGNING_SECRET",
            "bench-release-signing-key-0123456789abcdef".to_owned(),
        ),
        ("WORKER_ROLE", "drafter".to_owned()),
        ("WORKER_PARTITIONS", "32".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    // Worker settings to compare (WORKER_FETCH_WAIT, …) pass through.
    .chain(std::env::vars().filter(|(k, _)| k.starts_with("WORKER_") && k != "WORKER_BENCH_BIN"))
    .collect()
}

/// One release service binary as a child process, ready.
async fn spawn_service(i: &Infra, name: &str, n: usize, logs: &std::path::Path) -> ServiceProcess {
    let addr = format!("127.0.0.1:{}", free_port());
    // WORKER_BENCH_BIN: another build of the worker (a saved copy of the
    // previous version) for a before/after comparison.
    let bin = match std::env::var_os("WORKER_BENCH_BIN") {
        Some(path) if name == "agent-worker" => path.into(),
        _ => service_binary(name),
    };
    let mut p = ServiceProcess::spawn(
        &format!("{name}-{n}"),
        bin,
        service_env(i, name, &addr),
        logs,
    );
    p.wait_ready(&addr).await;
    p
}

fn rss(p: &ServiceProcess) -> (f64, f64) {
    let s = p.pid().and_then(proc_stats).expect("the service runs");
    (s.rss_kib as f64 / 1024.0, s.peak_rss_kib as f64 / 1024.0)
}

/// When each event was sent, answered 200 by the ingress, proposed
/// (`zengate.approval.requested`) and, with the approval service running,
/// stored as a pending item; keyed by `Nats-Msg-Id` (then approval id).
#[derive(Default)]
struct Times {
    sent: HashMap<String, Instant>,
    answered: HashMap<String, Instant>,
    proposed: HashMap<String, (Instant, String)>,
    pending: HashMap<String, Instant>,
}

struct Latency {
    offered: f64,
    achieved: f64,
    events: usize,
    /// 200 → approval.requested.
    proposed: Vec<Duration>,
    /// 200 → pending item in the approvals bucket.
    pending: Vec<Duration>,
    /// (idle, peak) RSS in MiB of each worker and of approval.
    rss: Vec<(String, f64, f64)>,
}

/// Webhooks at a fixed offered `rate` for `secs` through the in-process
/// ingress, two worker processes (release binary, drafter role) and, when
/// built, the approval service; 100 tickets, so partitions share the load.
async fn latency(rate: f64, secs: f64) -> Latency {
    let i = infra().await;
    let tickets: Vec<u64> = (0..100)
        .map(|k| {
            i.sim
                .create_enduser_ticket(&format!("Latency {k}"), "hello", "Ada", "ada@example.com")
                .id
        })
        .collect();
    let ingress_config = ingress::IngressConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        nats: i.nats.url().into(),
        redis: i.redis.url().into(),
        http: Default::default(),
        secrets: vec![Secret::new(SECRET)],
        account_id: ACCOUNT,
        webhook_id: None,
        body_limit: 256 * 1024,
        signature_max_age: None,
        dedup_horizon: Duration::from_secs(3600),
        publish_timeout: Duration::from_secs(3),
        redis_timeout: ingress::config::DEFAULT_REDIS_TIMEOUT,
        redis_probe_interval: Duration::from_secs(1),
        max_inflight_bytes: ingress::config::DEFAULT_MAX_INFLIGHT_BYTES,
        dedup_clock_skew: ingress::config::DEFAULT_DEDUP_CLOCK_SKEW,
        stream: Default::default(),
    };
    let app = ingress::Application::build(ingress_config).await.unwrap();
    let url = format!(
        "http://{}{}",
        app.local_addr().unwrap(),
        ingress::WEBHOOK_PATH
    );
    let stop = Shutdown::new();
    let s2 = stop.clone();
    let ingress_task = tokio::spawn(async move { app.run(s2).await });

    let logs = tempfile::tempdir().unwrap();
    let mut services = Vec::new();
    for n in 0..2 {
        services.push(spawn_service(&i, "agent-worker", n, logs.path()).await);
    }
    if built_binary("approval").is_some() {
        services.push(spawn_service(&i, "approval", 0, logs.path()).await);
    } else {
        println!("(approval binary not built: `cargo build --release -p approval` to include it)");
    }
    let with_approval = services.len() == 3;
    let idle: Vec<(f64, f64)> = services.iter().map(rss).collect();

    let times = Arc::new(std::sync::Mutex::new(Times::default()));
    let mut sub = i
        .nats_client
        .subscribe("zengate.approval.requested.>")
        .await
        .unwrap();
    let t = times.clone();
    let proposals = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let at = Instant::now();
            let p: ApprovalRequested = serde_json::from_slice(&msg.payload).unwrap();
            let ProposalSource::ZendeskEvent { msg_id, .. } = p.source else {
                continue;
            };
            t.lock()
                .unwrap()
                .proposed
                .insert(msg_id, (at, p.approval_id));
        }
    });
    let pending = if with_approval {
        let kv =
            i.js.get_key_value(zengate_core::release::APPROVALS_BUCKET)
                .await
                .unwrap();
        let mut watch = kv.watch_all_from_revision(1).await.unwrap();
        let t = times.clone();
        Some(tokio::spawn(async move {
            while let Some(Ok(entry)) = watch.next().await {
                let at = Instant::now();
                t.lock().unwrap().pending.entry(entry.key).or_insert(at);
            }
        }))
    } else {
        None
    };

    let http = reqwest::Client::new();
    let events = (rate * secs).round() as usize;
    let every = Duration::from_secs_f64(1.0 / rate);
    let started = Instant::now();
    let mut sends = Vec::with_capacity(events);
    for n in 0..events {
        tokio::time::sleep_until((started + every * n as u32).into()).await;
        let k = n % tickets.len();
        let round = n / tickets.len();
        let id = format!("lat-{k}-{round}");
        let body = event(&id, tickets[k], round);
        let ts = "2025-01-08T10:12:08Z";
        let sig = zengate_core::signature::sign(&Secret::new(SECRET), ts, &body);
        let key = format!("{ACCOUNT}:{id}");
        times
            .lock()
            .unwrap()
            .sent
            .insert(key.clone(), Instant::now());
        let req = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-zendesk-account-id", ACCOUNT.to_string())
            .header("x-zendesk-webhook-id", "01BENCH")
            .header("x-zendesk-webhook-invocation-id", format!("inv-{n}"))
            .header("x-zendesk-webhook-signature-timestamp", ts)
            .header("x-zendesk-webhook-signature", sig)
            .body(body);
        let t = times.clone();
        // Open loop: a slow answer never delays the next event.
        sends.push(tokio::spawn(async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            t.lock().unwrap().answered.insert(key, Instant::now());
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    let offered_secs = started.elapsed().as_secs_f64();
    let mut peak = vec![(0.0f64, 0.0f64); services.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (p, s) in peak.iter_mut().zip(&services) {
            let (now, hwm) = rss(s);
            *p = (p.0.max(now), hwm);
        }
        let done = {
            let t = times.lock().unwrap();
            t.proposed.len() >= events && (!with_approval || t.pending.len() >= events)
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_done = started.elapsed().as_secs_f64();
    proposals.abort();
    if let Some(p) = pending {
        p.abort();
    }
    stop.trigger();
    let _ = ingress_task.await;

    let mut proposed = Vec::with_capacity(events);
    let mut pending_lat = Vec::with_capacity(events);
    {
        let t = times.lock().unwrap();
        assert_eq!(t.proposed.len(), events, "every event is proposed once");
        for (msg_id, answered) in &t.answered {
            let (at, approval_id) = &t.proposed[msg_id];
            proposed.push(at.saturating_duration_since(*answered));
            if let Some(stored) = t.pending.get(approval_id) {
                pending_lat.push(stored.saturating_duration_since(*answered));
            }
        }
    }
    proposed.sort();
    pending_lat.sort();
    let names = ["agent-worker-0", "agent-worker-1", "approval"];
    let rss = names
        .iter()
        .zip(idle.iter().zip(&peak))
        .map(|(n, (i, p))| ((*n).to_owned(), i.0, p.1))
        .collect();
    for mut s in services {
        s.kill().await;
    }
    Latency {
        offered: events as f64 / offered_secs,
        achieved: events as f64 / all_done,
        events,
        proposed,
        pending: pending_lat,
        rss,
    }
}

fn percentiles(lat: &[Duration]) -> String {
    if lat.is_empty() {
        return "-".to_owned();
    }
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} events)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        lat.len()
    )
}

fn main() {
    let events: usize = env_or("BENCH_EVENTS", 2000);
    let rate: f64 = env_or("BENCH_RATE", 200.0);
    let secs: f64 = env_or("BENCH_LATENCY_SECS", 10.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if events > 0 {
            for instances in [1, 2] {
                let rate = throughput(instances, events).await;
                println!(
                    "throughput: {instances} worker instance(s), {events} events, 32 partitions, 100 tickets: {rate:.0} events/s"
                );
            }
        }
        let l = latency(rate, secs).await;
        println!(
            "webhook -> pending approval, 2 worker processes, 100 tickets: offered {:.0} events/s, \
             achieved {:.0} events/s end to end ({} events)",
            l.offered, l.achieved, l.events
        );
        println!("  ingress 200 -> zengate.approval.requested: {}", percentiles(&l.proposed));
        println!("  ingress 200 -> pending item (approvals bucket): {}", percentiles(&l.pending));
        println!("  target: p99 < 50 ms at 200 events/s");
        for (name, idle, peak) in &l.rss {
            println!("  RSS {name}: idle {idle:.1} MiB, peak (VmHWM) {peak:.1} MiB");
        }
    });
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
