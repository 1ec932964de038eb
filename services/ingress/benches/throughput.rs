//! Ingress throughput and latency against the raw JetStream ceiling, measured
//! in the same run against the same private nats-server:
//!
//! 1. raw async-nats JetStream publish + PubAck, 64 concurrent publishers;
//! 2. signed ~2 KB ticket events through the running ingress over HTTP, 64
//!    concurrent connections;
//! 3. the ingress driven open-loop at half its measured maximum rate (p99);
//! 4. the same server's `GET /healthz` over the same client and concurrency:
//!    the HTTP ceiling of this machine, which the ingress can never exceed.
//!
//! Requests are built and signed before each timed phase, as the raw phase's
//! bodies are, so the timings hold transport and server work only.
//!
//! `cargo bench -p ingress` (BENCH_EVENTS overrides the event count).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use futures::future::join_all;
use ingress::{Application, IngressConfig};
use tokio::sync::Mutex;
use zengate_core::Secret;
use zengate_runtime::Shutdown;
use zengate_runtime::bus::ZendeskStreamSettings;
use zengate_testkit::{NatsServer, RedisServer};

const CONCURRENCY: usize = 64;
const SECRET: &str = "bench-signing-secret";

fn event(i: usize) -> Vec<u8> {
    let ticket = 1000 + i % 500;
    let filler = "x".repeat(1700);
    format!(
        r#"{{"account_id":42,"id":"bench-{i}-{n}","type":"zen:event-type:ticket.comment_added","subject":"zen:ticket:{ticket}","time":"2025-01-08T10:12:07Z","zendesk_event_version":"2022-11-06","detail":{{"id":"{ticket}","subject":"Bench ticket","description":"{filler}"}},"event":{{"comment":{{"id":"{i}","body":"hello","is_public":true,"author":{{"id":"7","is_staff":false,"name":"Bench"}}}}}}}}"#,
        n = std::process::id()
    )
    .into_bytes()
}

struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(total: usize, elapsed: Duration, mut lat: Vec<Duration>) -> Stats {
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    Stats {
        per_sec: total as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Runs `total` jobs over `CONCURRENCY` workers as fast as possible.
async fn closed_loop<F, Fut>(total: usize, job: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let start = Instant::now();
    let workers = (0..CONCURRENCY).map(|_| {
        let (job, next, lat) = (job.clone(), next.clone(), lat.clone());
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                job(i).await;
                mine.push(t.elapsed());
            }
            lat.lock().await.extend(mine);
        })
    });
    join_all(workers).await;
    let elapsed = start.elapsed();
    let lat = std::mem::take(&mut *lat.lock().await);
    stats(total, elapsed, lat)
}

/// Sends `total` jobs at a fixed `rate` per second regardless of completions.
async fn open_loop<F, Fut>(total: usize, rate: f64, job: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let job = Arc::new(job);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        tick.tick().await;
        let job = job.clone();
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            job(i).await;
            t.elapsed()
        }));
    }
    let lat: Vec<Duration> = join_all(handles)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    stats(total, start.elapsed(), lat)
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;

    // 1. Raw JetStream publish-ack ceiling on a stream of the same shape.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: "BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(600),
        ..Default::default()
    })
    .await
    .unwrap();
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..total).map(|i| Bytes::from(event(i))).collect());
    let (js2, b2) = (js.clone(), bodies.clone());
    let raw = closed_loop(total, move |i| {
        let (js, b) = (js2.clone(), b2.clone());
        async move {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("raw-{i}").as_str());
            let subject = format!("bench.raw.42.ticket.{}.comment_added", 1000 + i % 500);
            js.publish_with_headers(subject, h, b[i].clone())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    })
    .await;

    // 2. The ingress over HTTP.
    let config = IngressConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        nats: nats.url().into(),
        redis: redis.url().into(),
        http: Default::default(),
        secrets: vec![Secret::new(SECRET)],
        account_id: 42,
        webhook_id: None,
        body_limit: 1 << 20,
        signature_max_age: None,
        dedup_horizon: Duration::from_secs(3600),
        publish_timeout: Duration::from_secs(5),
        redis_timeout: Duration::from_millis(250),
        stream: ZendeskStreamSettings::default(),
    };
    let app = Application::build(config).await.unwrap();
    let url = format!(
        "http://{}{}",
        app.local_addr().unwrap(),
        ingress::WEBHOOK_PATH
    );
    let shutdown = Shutdown::new();
    let server = tokio::spawn(app.run(shutdown.clone()));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    // Every request of phases 2 and 3, signed in advance.
    let ts = "2025-01-08T10:12:08Z";
    let signed: Arc<Vec<(Bytes, String)>> = Arc::new(
        (0..total + (total / 2).max(1000))
            .map(|i| {
                let body = event(i);
                let sig = zengate_core::signature::sign(&Secret::new(SECRET), ts, &body);
                (Bytes::from(body), sig)
            })
            .collect(),
    );
    let send = {
        let (http, url, signed) = (http.clone(), url.clone(), signed.clone());
        move |i: usize| {
            let (body, sig) = signed[i].clone();
            let req = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-zendesk-account-id", "42")
                .header("x-zendesk-webhook-id", "01BENCH")
                .header("x-zendesk-webhook-invocation-id", format!("inv-{i}"))
                .header("x-zendesk-webhook-signature-timestamp", ts)
                .header("x-zendesk-webhook-signature", sig)
                .body(body);
            async move {
                let res = req.send().await.unwrap();
                assert_eq!(res.status(), 200);
            }
        }
    };
    let ing = closed_loop(total, send.clone()).await;

    // 3. Open loop at half the measured ingress maximum.
    let half = ing.per_sec / 2.0;
    let n = (total / 2).max(1000);
    let s = send.clone();
    let paced = open_loop(n, half, move |i| s(total + i)).await;

    // 4. The HTTP ceiling: the same server's /healthz.
    let health = url.replace(ingress::WEBHOOK_PATH, "/healthz");
    let h = http.clone();
    let ceiling = closed_loop(total, move |_| {
        let req = h.get(&health);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
        }
    })
    .await;

    shutdown.trigger();
    let _ = server.await;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "events per run: {total}, concurrency: {CONCURRENCY}, body ~{} bytes",
        event(0).len()
    );
    println!(
        "raw JetStream publish+ack : {:>8.0} msg/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        raw.per_sec,
        ms(raw.p50),
        ms(raw.p99)
    );
    println!(
        "ingress (HTTP, verified)  : {:>8.0} ev/s   p50 {:>6.2} ms  p99 {:>6.2} ms",
        ing.per_sec,
        ms(ing.p50),
        ms(ing.p99)
    );
    println!(
        "ingress at half max ({:.0}/s): p50 {:>6.2} ms  p99 {:>6.2} ms",
        half,
        ms(paced.p50),
        ms(paced.p99)
    );
    println!(
        "HTTP ceiling (/healthz)   : {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        ceiling.per_sec,
        ms(ceiling.p50),
        ms(ceiling.p99)
    );
    println!("ratio ingress/raw: {:.2}", ing.per_sec / raw.per_sec);
    println!(
        "ratio ingress/HTTP ceiling: {:.2}; HTTP ceiling/raw: {:.2}",
        ing.per_sec / ceiling.per_sec,
        ceiling.per_sec / raw.per_sec
    );
}
