//! Worker throughput against the Zendesk simulator, and webhook→proposal
//! latency through the real ingress. Real NATS and Redis (private
//! processes), the built-in rules drafter, every event fetching its ticket
//! and comments over HTTP.
//!
//! `cargo bench -p agent-worker` (needs `.dev/bin` on PATH, see
//! scripts/setup.sh). `BENCH_EVENTS` (default 2000) sets the event count.
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
use zengate_testkit::{NatsServer, RedisServer};

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

async fn latency(events: usize) -> (Duration, Duration, Duration) {
    let i = infra().await;
    let ticket = i
        .sim
        .create_enduser_ticket("Latency", "hello", "Ada", "ada@example.com")
        .id;
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
        redis_timeout: Duration::from_millis(250),
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
    let workers = start_workers(&i, 1).await;
    let mut sub = i
        .nats_client
        .subscribe("zengate.approval.requested.>")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut lat = Vec::with_capacity(events);
    for n in 0..events {
        let id = format!("lat-{n}");
        let body = event(&id, ticket, n);
        let ts = "2025-01-08T10:12:08Z";
        let sig = zengate_core::signature::sign(&Secret::new(SECRET), ts, &body);
        sent.insert(format!("{ACCOUNT}:{id}"), Instant::now());
        let res = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-zendesk-account-id", ACCOUNT.to_string())
            .header("x-zendesk-webhook-id", "01BENCH")
            .header("x-zendesk-webhook-invocation-id", format!("inv-{n}"))
            .header("x-zendesk-webhook-signature-timestamp", ts)
            .header("x-zendesk-webhook-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        // One event at a time: latency, not queueing, is measured.
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        let p: ApprovalRequested = serde_json::from_slice(&msg.payload).unwrap();
        let ProposalSource::ZendeskEvent { msg_id, .. } = p.source else {
            panic!("unexpected source");
        };
        lat.push(sent[&msg_id].elapsed());
    }
    for (s, j) in workers {
        s.trigger();
        let _ = j.await;
    }
    stop.trigger();
    let _ = ingress_task.await;
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    (pct(0.5), pct(0.99), lat[lat.len() - 1])
}

fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for instances in [1, 2] {
            let rate = throughput(instances, events).await;
            println!(
                "throughput: {instances} worker instance(s), {events} events, 32 partitions, 100 tickets: {rate:.0} events/s"
            );
        }
        let (p50, p99, max) = latency(300).await;
        println!(
            "webhook -> proposal through ingress (300 sequential events): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    });
}
