//! `cargo bench -p ingress`: the ingress against the limit of its design,
//! measured in the same run with the same load client and the same private
//! nats-server and redis-server:
//!
//! - (a) the release `ingress` binary, as a child process on port 0, with
//!   events that just happened (as Zendesk delivers them: the JetStream
//!   duplicate window covers them, Redis is written but not asked), and
//!   (a') the same with events older than the window (a Redis lookup each);
//! - (b) a minimal verify-and-publish server written here (`minimal.rs`), and
//!   (b') the same publishing the message the design asks for (per-ticket
//!   subject, the ingress's bus headers), which costs nats-server and the
//!   publisher more whoever sends it;
//! - (c) raw async-nats JetStream publish + PubAck, no HTTP;
//!
//! at 16 and 64 connections (median of `BENCH_RUNS` runs, default 3), each
//! with the CPU per event of the server under test, of nats-server, of
//! redis-server and of the whole machine (all of them, the load client and
//! the kernel: what bounds the rate on a shared machine) and the share of the
//! machine's CPU time the hypervisor gave to others (steal: a phase with much
//! of it was slowed by neighbours, not by its server), then the ingress
//! at half its own maximum rate (open loop, p99) and (b') at that same rate
//! (the tail any publisher of the design's message sees here), the ingress
//! with Redis healthy / refusing / black-holed / slow, and its resident
//! memory at idle, at the bench's peak, under 400 parallel 1 MiB deliveries
//! with forged signatures, and after that burst.
//!
//! `BENCH_BASELINE_BIN=<path>` adds (a0), another build of the ingress (a
//! saved copy of an earlier version), measured in the same runs.
//! `BENCH_PARTS` picks parts (`throughput,redis,memory`; all by default),
//! `BENCH_INGRESS_ENV` (`NAME=value;…`) adds ingress settings,
//! `BENCH_PLAIN_MALLOC=1` drops the image's allocator settings, and
//! `BENCH_EVENTS` (default 20000) sets the events per phase, so a short run is
//! `BENCH_EVENTS=2000 BENCH_RUNS=1 cargo bench -p ingress`; `BENCH_PHASE_SECS`
//! (default 30) caps one phase, so a collapsing server is measured over what
//! it completed in that time; `BENCH_REDIS_DELAY_MS` (default 200) is the slow
//! Redis proxy's delay.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_debug_implementations
)]

mod client;
mod events;
mod minimal;
mod procs;
#[path = "../../tests/support/redis_faults.rs"]
mod redis_faults;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use client::Stats;
use procs::Server;
use redis_faults::Fault;
use zengate_testkit::{NatsServer, RedisServer};

/// The minimal server (this binary in its server role) runs on the services'
/// allocator, so the ratio compares the work, not the allocator.
#[global_allocator]
static ALLOCATOR: zengate_runtime::Allocator = zengate_runtime::Allocator;

const PATH: &str = ingress::WEBHOOK_PATH;
const RAW_STREAM: &str = "BENCH_RAW";
const BURST: usize = 400;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measured phase: client-side stats plus CPU per event of the server,
/// nats-server, redis-server and the whole machine (these, the load client
/// and the kernel).
#[derive(Debug, Clone, Default)]
struct Row {
    stats: Stats,
    cpu: procs::Cpu,
}

/// Median of each figure over the runs of one target.
fn median(rows: &[Row]) -> Row {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
        v[v.len() / 2]
    }
    let mut statuses = std::collections::BTreeMap::new();
    for r in rows {
        for (k, v) in &r.stats.statuses {
            *statuses.entry(*k).or_default() += v;
        }
    }
    Row {
        stats: Stats {
            per_sec: mid(rows.iter().map(|r| r.stats.per_sec).collect()),
            p50: mid(rows.iter().map(|r| r.stats.p50).collect()),
            p99: mid(rows.iter().map(|r| r.stats.p99).collect()),
            statuses,
        },
        cpu: procs::Cpu {
            server: rows
                .iter()
                .map(|r| r.cpu.server)
                .collect::<Option<Vec<_>>>()
                .map(mid),
            nats: mid(rows.iter().map(|r| r.cpu.nats).collect()),
            redis: mid(rows.iter().map(|r| r.cpu.redis).collect()),
            machine: mid(rows.iter().map(|r| r.cpu.machine).collect()),
            steal: mid(rows.iter().map(|r| r.cpu.steal).collect()),
        },
    }
}

/// Drives `server` with `requests` and reads its CPU time around the phase.
async fn http_phase(server: &Server, requests: Vec<Bytes>, conns: usize, rate: Option<f64>) -> Row {
    let n = requests.len() as u32;
    let cpu = procs::Cpu::now(Some(server.pid()));
    let cap = Duration::from_secs(env_usize("BENCH_PHASE_SECS", 30) as u64);
    let stats = client::run(server.addr, Arc::new(requests), conns, rate, cap).await;
    let cpu_after = procs::Cpu::now(Some(server.pid()));
    let done: usize = stats.statuses.values().sum();
    if stats.failures() > 0 || done < n as usize {
        let log = server.log_text();
        let last = log.lines().last().unwrap_or_default();
        println!(
            "  note: {done} of {n} sent within the phase cap, statuses {:?}; server's last log line: {}",
            stats.statuses,
            last.chars().take(300).collect::<String>()
        );
    }
    Row {
        stats,
        cpu: cpu_after.per_event_since(&cpu, done),
    }
}

/// Raw JetStream publish + PubAck from `conns` concurrent publishers.
async fn raw_phase(js: &jetstream::Context, tag: &str, total: usize, conns: usize) -> Row {
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..total)
            .map(|i| Bytes::from(events::event(tag, i, events::OLD)))
            .collect(),
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu = procs::Cpu::now(None);
    let start = Instant::now();
    let workers = (0..conns).map(|_| {
        let (js, bodies, next, tag) = (js.clone(), bodies.clone(), next.clone(), tag.to_owned());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t = Instant::now();
                let mut h = async_nats::HeaderMap::new();
                h.insert("Nats-Msg-Id", format!("{tag}-{i}").as_str());
                js.publish_with_headers(format!("bench.raw.42.{}", i % 500), h, body.clone())
                    .await
                    .expect("publish")
                    .await
                    .expect("ack");
                lat.push(t.elapsed());
            }
            lat
        })
    });
    let lat: Vec<Duration> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(|r| r.expect("publisher"))
        .collect();
    Row {
        stats: Stats::from_latencies(total, start.elapsed(), lat),
        cpu: procs::Cpu::now(None).per_event_since(&cpu, total),
    }
}

/// The share of the machine's CPU time the hypervisor took during a phase.
fn steal_share(r: &Row) -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    r.cpu.steal.as_secs_f64() * r.stats.per_sec / cpus * 100.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_row(name: &str, r: &Row) {
    let micros = |d: Option<Duration>| {
        d.map(|c| format!("{:>6.0} µs", c.as_secs_f64() * 1e6))
            .unwrap_or_else(|| format!("{:>9}", "-"))
    };
    let c = &r.cpu;
    let (cpu, nats, redis, machine) = (
        micros(c.server),
        micros(Some(c.nats)),
        micros(Some(c.redis)),
        micros(Some(c.machine)),
    );
    println!(
        "| {name:<38} | {:>9.0} | {:>7.2} | {:>7.2} | {cpu} | {nats} | {redis} | {machine} | {:>4.0}% |",
        r.stats.per_sec,
        ms(r.stats.p50),
        ms(r.stats.p99),
        steal_share(r)
    );
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples `server`'s RSS every 10 ms until `done` resolves; the highest seen.
async fn peak_during<F: std::future::Future>(server: &Server, done: F) -> (F::Output, u64) {
    let pid = server.pid();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak = peak.max(kib);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        })
    };
    let out = done.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (out, sampler.await.expect("sampler"))
}

/// Whether `part` is selected by `BENCH_PARTS` (all when unset).
fn part(name: &str) -> bool {
    std::env::var("BENCH_PARTS")
        .map(|v| v.split(',').any(|p| p.trim() == name))
        .unwrap_or(true)
}

fn table_head(first: &str) {
    println!(
        "| {first:<38} | {:>9} | {:>7} | {:>7} | {:>9} | {:>9} | {:>9} | {:>9} | {:>5} |",
        "events/s", "p50 ms", "p99 ms", "cpu/event", "nats", "redis", "all/event", "steal"
    );
    println!(
        "|{:-<40}|{:-<11}|{:-<9}|{:-<9}|{:-<11}|{:-<11}|{:-<11}|{:-<11}|{:-<7}|",
        "", "", "", "", "", "", "", "", ""
    );
}

/// Extra settings for every ingress started, from `BENCH_INGRESS_ENV`
/// (`NAME=value;NAME=value`), e.g. to compare log levels.
fn ingress_env() -> Vec<(String, String)> {
    std::env::var("BENCH_INGRESS_ENV")
        .unwrap_or_default()
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[tokio::main]
async fn main() {
    if std::env::var(procs::ROLE_VAR).as_deref() == Ok("minimal") {
        minimal::serve().await;
        return;
    }
    let total = env_usize("BENCH_EVENTS", 20_000);
    let runs = env_usize("BENCH_RUNS", 3).max(1);
    let extra = ingress_env();
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    procs::watch_shared(
        nats.pid().expect("nats-server running"),
        redis.pid().expect("redis-server running"),
    );
    let ingress = Server::ingress(&nats.url(), &redis.url(), &extra).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = ingress.memory();
    ingress.reset_peak();
    println!(
        "events per phase: {total}, runs: {runs} (median), body ~{} bytes, ingress settings {extra:?}",
        events::event("x", 0, events::OLD).len(),
    );
    println!("before: {}", loadavg());

    if part("throughput") {
        let baseline = match std::env::var("BENCH_BASELINE_BIN") {
            Ok(exe) => Some(Server::ingress_from(&exe, &nats.url(), &redis.url(), &extra).await),
            Err(_) => None,
        };
        throughput(&nats, &ingress, baseline.as_ref(), total, runs).await;
    }
    if part("redis") {
        redis_states(&nats, &redis, &ingress, &extra, total, runs).await;
    }
    if part("memory") {
        memory(&ingress, idle).await;
    }
    println!("after: {}", loadavg());
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| {
            format!(
                "loadavg {}",
                l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            )
        })
        .unwrap_or_default()
}

/// (a), (b) and (c) at 16 and 64 connections, then (a) at half its maximum.
async fn throughput(
    nats: &NatsServer,
    ingress: &Server,
    baseline: Option<&Server>,
    total: usize,
    runs: usize,
) {
    let minimal = Server::minimal(&nats.url(), false).await;
    let shaped = Server::minimal(&nats.url(), true).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut raw_config = zengate_runtime::bus::zendesk_stream_config(&Default::default());
    raw_config.name = RAW_STREAM.to_owned();
    raw_config.subjects = vec!["bench.raw.>".to_owned()];
    js.get_or_create_stream(raw_config).await.unwrap();

    // Warm-up: connections, streams and caches, not measured.
    let warm = total.clamp(200, 2000);
    http_phase(&minimal, events::signed(PATH, "warm-b", warm), 64, None).await;
    http_phase(&shaped, events::signed(PATH, "warm-d", warm), 64, None).await;
    http_phase(ingress, events::signed(PATH, "warm-a", warm), 64, None).await;
    raw_phase(&js, "warm-c", warm, 64).await;

    let mut max_rate = 1000.0;
    let mut rss_peak = 0u64;
    for conns in [16usize, 64] {
        let (mut a, mut old, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut d = Vec::new();
        let mut base = Vec::new();
        for run in 0..runs {
            c.push(raw_phase(&js, &format!("c{conns}-{run}"), total, conns).await);
            let reqs = events::signed(PATH, &format!("b{conns}-{run}"), total);
            b.push(http_phase(&minimal, reqs, conns, None).await);
            let reqs = events::signed(PATH, &format!("d{conns}-{run}"), total);
            d.push(http_phase(&shaped, reqs, conns, None).await);
            let reqs = events::signed(PATH, &format!("a{conns}-{run}"), total);
            let (row, peak) = peak_during(ingress, http_phase(ingress, reqs, conns, None)).await;
            rss_peak = rss_peak.max(peak);
            a.push(row);
            let reqs = events::signed_at(PATH, &format!("o{conns}-{run}"), total, events::OLD);
            old.push(http_phase(ingress, reqs, conns, None).await);
            if let Some(baseline) = baseline {
                let reqs = events::signed(PATH, &format!("z{conns}-{run}"), total);
                base.push(http_phase(baseline, reqs, conns, None).await);
            }
        }
        let (a, old, b, c) = (median(&a), median(&old), median(&b), median(&c));
        let d = median(&d);
        println!();
        println!("{conns} connections");
        table_head("target");
        print_row("(a) ingress (release binary)", &a);
        print_row("(a') ingress, events past the window", &old);
        print_row("(b) minimal verify-and-publish", &b);
        print_row("(b') minimal, the design's message", &d);
        print_row("(c) raw JetStream publish+ack", &c);
        if !base.is_empty() {
            let base = median(&base);
            print_row("(a0) BENCH_BASELINE_BIN", &base);
            println!(
                "ratio a/a0: {:.2}   a0/b: {:.2}",
                a.stats.per_sec / base.stats.per_sec,
                base.stats.per_sec / b.stats.per_sec
            );
        }
        println!(
            "ratio a/b: {:.2}   a'/b: {:.2}   a/c: {:.2}   b/c: {:.2}   a/b': {:.2}   b'/b: {:.2}",
            a.stats.per_sec / b.stats.per_sec,
            old.stats.per_sec / b.stats.per_sec,
            a.stats.per_sec / c.stats.per_sec,
            b.stats.per_sec / c.stats.per_sec,
            a.stats.per_sec / d.stats.per_sec,
            d.stats.per_sec / b.stats.per_sec
        );
        max_rate = a.stats.per_sec;
    }

    // Open loop at half the ingress's own maximum (64 connections).
    let half = max_rate / 2.0;
    let paced = http_phase(
        ingress,
        events::signed(PATH, "half", (total / 2).max(1000)),
        64,
        Some(half),
    )
    .await;
    // The same rate through the minimal server sending the design's message:
    // the latency tail this machine and nats-server give any publisher.
    let paced_limit = http_phase(
        &shaped,
        events::signed(PATH, "half-d", (total / 2).max(1000)),
        64,
        Some(half),
    )
    .await;
    println!();
    let paced_line = |what: &str, r: &Row| {
        println!(
            "{what:<62} p50 {:.2} ms  p99 {:.2} ms  (non-200: {}, steal {:.0}%)",
            ms(r.stats.p50),
            ms(r.stats.p99),
            r.stats.failures(),
            steal_share(r)
        );
    };
    paced_line(
        &format!("ingress open loop at half its 64-connection max ({half:.0}/s):"),
        &paced,
    );
    paced_line("(b') at the same rate:", &paced_limit);
    println!(
        "ingress RSS peak under this load: {:.1} MiB sampled, VmHWM {:.1} MiB",
        mib(rss_peak),
        mib(ingress.memory().hwm_kib)
    );
}

/// The ingress with Redis healthy vs refusing vs black-holed vs slow, each its
/// own process started with Redis already in that state, runs interleaved.
async fn redis_states(
    nats: &NatsServer,
    redis: &RedisServer,
    ingress: &Server,
    extra: &[(String, String)],
    total: usize,
    runs: usize,
) {
    let redis_addr = format!("127.0.0.1:{}", redis.port()).parse().unwrap();
    let black = Fault::black_hole().await;
    let slow_delay = Duration::from_millis(env_usize("BENCH_REDIS_DELAY_MS", 200) as u64);
    let slow = Fault::slow(redis_addr, slow_delay).await;
    let modes = [
        ("healthy".to_owned(), None),
        ("refused".to_owned(), Some(redis_faults::refused_url())),
        ("black-holed".to_owned(), Some(black.url())),
        (
            format!("slow (+{} ms proxy)", slow_delay.as_millis()),
            Some(slow.url()),
        ),
    ];
    let mut servers = Vec::new();
    for (_, url) in &modes {
        servers.push(match url {
            None => None,
            Some(u) => Some(Server::ingress(&nats.url(), u, extra).await),
        });
    }
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(); modes.len()];
    for run in 0..runs {
        for (m, server) in servers.iter().enumerate() {
            let server = server.as_ref().unwrap_or(ingress);
            // Old events: each is looked up in Redis, whatever its state.
            let reqs = events::signed_at(PATH, &format!("redis{m}-{run}"), total, events::OLD);
            rows[m].push(http_phase(server, reqs, 64, None).await);
        }
    }
    println!();
    println!("ingress at 64 connections by Redis state (each its own process)");
    table_head("redis");
    let healthy = median(&rows[0]).stats.per_sec;
    for ((name, _), rows) in modes.iter().zip(&rows) {
        let row = median(rows);
        print_row(
            &format!("{name} ({:.2}x)", row.stats.per_sec / healthy),
            &row,
        );
        if row.stats.failures() > 0 {
            println!("  non-200: {:?}", row.stats.statuses);
        }
    }
}

/// 400 parallel 1 MiB deliveries with forged but well-formed signatures.
async fn memory(ingress: &Server, idle: procs::Memory) {
    let before = ingress.memory();
    ingress.reset_peak();
    let forged = events::forged_mib(PATH, 0);
    let burst = async {
        let sends = (0..BURST).map(|_| {
            let (addr, req) = (ingress.addr, forged.clone());
            tokio::spawn(async move { client::Conn::new(addr).send(&req).await })
        });
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        for s in futures::future::join_all(sends).await {
            *statuses.entry(s.unwrap()).or_default() += 1;
        }
        statuses
    };
    let (statuses, sampled) = peak_during(ingress, burst).await;
    let peak = ingress.memory();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = ingress.memory();
    println!();
    println!("ingress resident memory (MiB)");
    println!("| idle | before burst | burst peak (sampled / VmHWM) | 3 s after burst |");
    println!("|------|--------------|------------------------------|-----------------|");
    println!(
        "| {:.1} | {:.1} | {:.1} / {:.1} | {:.1} |",
        mib(idle.rss_kib),
        mib(before.rss_kib),
        mib(sampled),
        mib(peak.hwm_kib),
        mib(after.rss_kib)
    );
    println!(
        "burst: {BURST} x 1 MiB forged deliveries -> {statuses:?} (0 = connection closed before an answer)"
    );
}
