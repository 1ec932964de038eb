//! The stack as real processes (2 ingress, 2 approval, 2 workers, NATS,
//! Redis, the Zendesk simulator) under a load of 150 tickets while things
//! break: a worker is SIGKILLed mid-event (its partition must come back
//! within the lease, measured), another SIGKILLed while its Zendesk write is
//! held by the simulator, NATS restarts, Redis freezes for a while, and two
//! approvers race on every item. Afterwards the books must balance exactly:
//! one stored event, one proposal, one approval and one comment per ticket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stack;

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use stack::{APPROVERS, Books, Stack};
use zengate_runtime::Shutdown;
use zengate_testkit::{NatsServer, RedisServer, eventually};

const LOAD: usize = 150;
const PARTITIONS: u32 = 8;

/// Injects a held request: the next `method` under `/api/v2/tickets/`
/// waits `hold` before it is answered (and applied).
fn hold_next(sim: &zendesk_sim::SimHandle, method: &str, hold: Duration) {
    sim.inject(zendesk_sim::Fault {
        path_prefix: "/api/v2/tickets/".to_owned(),
        method: Some(method.to_owned()),
        status: 200,
        retry_after: None,
        times: 1,
        latency: Some(hold),
    });
}

/// The first recorded `method` request under `prefix`, once it arrived.
async fn recorded(
    sim: &zendesk_sim::SimHandle,
    method: &str,
    prefix: &str,
) -> zendesk_sim::RecordedRequest {
    eventually(
        &format!("{method} {prefix}… at the simulator"),
        Duration::from_secs(60),
        || async {
            sim.requests()
                .into_iter()
                .find(|r| r.method == method && r.path.starts_with(prefix))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_through_crashes_restarts_and_racing_approvers() {
    let started = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let sim = stack::simulator().await;
    let mut stack = Stack::start(&nats.url(), &redis.url(), &sim, 1, (2, 2, 2)).await;
    let (bus, js) = stack::bus(&nats.url()).await;
    let mut proposals = bus.subscribe("zengate.approval.requested.>").await.unwrap();

    // 1. A worker dies holding an event: the survivor must propose it
    //    within the lease. The ticket fetch is held so the kill lands
    //    mid-event, on whichever worker took it.
    hold_next(&sim, "GET", Duration::from_secs(30));
    let probe = stack::open_tickets(&sim, 1, "probe")[0];
    let held = recorded(&sim, "GET", &format!("/api/v2/tickets/{probe}")).await;
    let victim = stack
        .worker_with_connection(held.peer.as_deref().unwrap())
        .expect("a worker holds the held request");
    let killed = Instant::now();
    stack.workers[victim].process.kill().await;
    let ticket = probe.to_string();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(m) = proposals.next().await {
            if String::from_utf8_lossy(&m.payload).contains(&ticket) {
                return;
            }
        }
    })
    .await
    .expect("the killed worker's event was proposed by the other one");
    let failover = killed.elapsed();
    println!(
        "worker fail-over after SIGKILL mid-event: {failover:?} (SIGKILL → redelivered event proposed)"
    );
    stack.workers[victim].process.restart();
    stack.workers[victim].ready().await;

    // 2. Two approvers race on every item from now on, one per approval
    //    replica; the first Zendesk write is held so a worker can be
    //    killed while writing.
    hold_next(&sim, "PUT", Duration::from_secs(2));
    let stop = Shutdown::new();
    let approvers = stack
        .approval
        .iter()
        .zip(APPROVERS)
        .map(|(a, (_, token))| (a.base(), token.to_owned()))
        .collect();
    let (decisions, approving) = stack::approve_everything(js.clone(), approvers, stop.clone());

    // 3. The load, half through each ingress.
    let mut tickets = vec![probe];
    tickets.extend(stack::open_tickets(&sim, LOAD / 2, "a"));
    let write = recorded(&sim, "PUT", "/api/v2/tickets/").await;
    let writer = stack
        .worker_with_connection(write.peer.as_deref().unwrap())
        .expect("a worker holds the held write");
    let killed_writing = time::OffsetDateTime::now_utc();
    stack.workers[writer].crash_and_restart().await;
    let written: u64 = write
        .path
        .trim_start_matches("/api/v2/tickets/")
        .trim_end_matches(".json")
        .parse()
        .unwrap();
    stack::webhooks_to(&sim, &stack.ingress[1].addr);
    tickets.extend(stack::open_tickets(&sim, LOAD - LOAD / 2, "b"));

    // 4. NATS restarts once a third of the proposals are in, Redis freezes
    //    for two seconds once two thirds are.
    eventually(
        "a third of the proposals",
        Duration::from_secs(60),
        || async { (stack::items(&js).await.len() >= LOAD / 3).then_some(()) },
    )
    .await;
    nats.restart().await;
    println!("NATS restarted at {:?}", started.elapsed());
    eventually(
        "two thirds of the proposals",
        Duration::from_secs(60),
        || async { (stack::items(&js).await.len() >= 2 * LOAD / 3).then_some(()) },
    )
    .await;
    redis.pause();
    tokio::time::sleep(Duration::from_secs(2)).await; // the outage itself, not a wait for anything
    redis.resume();
    println!("Redis frozen for 2 s at {:?}", started.elapsed());

    // 5. Everything is applied and every consumer is drained.
    stack::all_applied(&js, &sim, &tickets, Duration::from_secs(120)).await;
    stack::quiet(&js, PARTITIONS).await;
    stop.trigger();
    approving.await.unwrap();

    // Exactly once, end to end.
    let books = Books::read(&js, &sim, &tickets).await;
    books.assert_exactly_once(&tickets);
    let outcome = stack::messages(
        &js,
        "ZENGATE",
        &format!("zengate.action.applied.*.{written}"),
    )
    .await;
    let applied_at = outcome[0].info().unwrap().published;
    println!(
        "write held by a SIGKILLed worker applied {} after the kill (ticket {written})",
        applied_at - killed_writing,
    );
    let decisions = decisions.lock().unwrap().clone();
    assert_eq!(decisions.len(), tickets.len(), "every item raced");
    for (id, statuses) in &decisions {
        let won = statuses.iter().filter(|s| **s == 200).count();
        let lost = statuses.iter().filter(|s| **s == 409).count();
        assert!(won <= 1 && won + lost == 2, "item {id}: {statuses:?}");
    }
    let winners = decisions.values().filter(|s| s.contains(&200)).count();
    println!(
        "chaos run: {} tickets, {winners} races with a 200 winner, fail-over {failover:?}, took {:?}",
        tickets.len(),
        started.elapsed()
    );
}
