//! Approval benchmark (not a test): with 10 000 pending items held in a real
//! NATS KV bucket, the latency of `GET /v1/approvals?state=pending&limit=50`
//! (p50/p99) and decisions per second with concurrent approvers.
//!
//! `cargo bench -p approval --bench decisions` (needs `scripts/setup.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use support::{ALICE, BOB, Infra, Svc, reply_request};
use zengate_testkit::eventually;

const ITEMS: usize = 10_000;
const LIST_REQUESTS: usize = 1_000;
const DECISIONS: usize = 2_000;
const APPROVERS: usize = 16;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let infra = Infra::start().await;
    let svc = Arc::new(
        Svc::start_with(&infra, |c| {
            c.timeout = Duration::from_secs(24 * 3600);
            c.sweep_interval = Duration::from_secs(30);
        })
        .await,
    );

    // 10 000 proposals through the bus and the intake consumer.
    let started = Instant::now();
    let requests: Vec<_> = (0..ITEMS)
        .map(|i| reply_request(&format!("9{i:07}"), &format!("Proposal number {i}")))
        .collect();
    let ids: Vec<String> = requests.iter().map(|r| r.approval_id.clone()).collect();
    futures::stream::iter(requests)
        .for_each_concurrent(64, |r| {
            let infra = &infra;
            async move { infra.publish_request(&r).await }
        })
        .await;
    eventually("10 000 pending items", Duration::from_secs(300), || async {
        (svc.metric("zengate_approval_pending").await >= ITEMS as f64).then_some(())
    })
    .await;
    let intake = started.elapsed();
    println!(
        "intake: {ITEMS} requests published and held in {:.2} s ({:.0} items/s)",
        intake.as_secs_f64(),
        ITEMS as f64 / intake.as_secs_f64()
    );

    // List latency, sequential, one client.
    let http = reqwest::Client::new();
    let url = svc.url("/v1/approvals?state=pending&limit=50");
    let mut lat = Vec::with_capacity(LIST_REQUESTS);
    for _ in 0..LIST_REQUESTS {
        let t = Instant::now();
        let res = http.get(&url).bearer_auth(ALICE).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.bytes().await.unwrap();
        lat.push(t.elapsed());
        assert!(body.len() > 1000);
    }
    lat.sort_unstable();
    println!(
        "GET /v1/approvals?state=pending&limit=50 with {ITEMS} pending ({LIST_REQUESTS} requests): p50 {} p99 {} max {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );

    // Decisions: concurrent approvers on distinct items (each is a KV CAS
    // plus the decided and released publishes).
    let started = Instant::now();
    let lat: Vec<Duration> = futures::stream::iter(ids.iter().take(DECISIONS).cloned().enumerate())
        .map(|(i, id)| {
            let http = http.clone();
            let svc = svc.clone();
            async move {
                let token = if i % 2 == 0 { ALICE } else { BOB };
                let t = Instant::now();
                let res = http
                    .post(svc.url(&format!("/v1/approvals/{id}/approve")))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                t.elapsed()
            }
        })
        .buffer_unordered(APPROVERS)
        .collect()
        .await;
    let wall = started.elapsed();
    let mut lat = lat;
    lat.sort_unstable();
    println!(
        "decisions: {DECISIONS} approvals by {APPROVERS} concurrent approvers in {:.2} s = {:.0} decisions/s (latency p50 {} p99 {})",
        wall.as_secs_f64(),
        DECISIONS as f64 / wall.as_secs_f64(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );

    // Contended: pairs of approvers racing on the same item.
    let started = Instant::now();
    let contended = 500;
    let results: Vec<u16> =
        futures::stream::iter(ids.iter().skip(DECISIONS).take(contended).cloned())
            .map(|id| {
                let http = http.clone();
                let svc = svc.clone();
                async move {
                    let path = svc.url(&format!("/v1/approvals/{id}/approve"));
                    let (a, b) = tokio::join!(
                        http.post(&path).bearer_auth(ALICE).send(),
                        http.post(&path).bearer_auth(BOB).send()
                    );
                    let (a, b) = (a.unwrap().status().as_u16(), b.unwrap().status().as_u16());
                    assert_eq!(a.min(b), 200);
                    assert_eq!(a.max(b), 409);
                    a
                }
            })
            .buffer_unordered(APPROVERS / 2)
            .collect()
            .await;
    let wall = started.elapsed();
    println!(
        "contended: {} items each raced by 2 approvers in {:.2} s = {:.0} requests/s, every race one 200 + one 409",
        results.len(),
        wall.as_secs_f64(),
        (2 * results.len()) as f64 / wall.as_secs_f64()
    );
    let svc = Arc::try_unwrap(svc).ok().unwrap();
    svc.stop().await;
}
