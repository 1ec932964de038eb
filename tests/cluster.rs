//! The stack on a three-node JetStream cluster with every stream, consumer
//! and the approvals bucket at three replicas. Under load, one node is
//! killed and restarted, then the node leading `ZENDESK_EVENTS`: intake must
//! come back (the time is printed) and nothing may be lost or doubled: one
//! stored event, one proposal, one applied approval and one Zendesk comment
//! per ticket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod stack;

use std::time::{Duration, Instant};

use stack::{APPROVERS, Books, Stack};
use zengate_runtime::Shutdown;
use zengate_testkit::{NatsCluster, RedisServer, eventually};

const LOAD: usize = 60;
const REPLICAS: usize = 3;
const STREAMS: [&str; 4] = ["ZENDESK_EVENTS", "ZENGATE", "ZENGATE_WORK", "KV_approvals"];

/// Waits until every stream is led and all its replicas are current.
async fn caught_up(cluster: &NatsCluster) {
    for stream in STREAMS {
        eventually(
            &format!("{stream} caught up on {REPLICAS} replicas"),
            Duration::from_secs(60),
            || async {
                cluster
                    .stream_caught_up(stream, REPLICAS)
                    .await
                    .then_some(())
            },
        )
        .await;
    }
}

/// Waits until the approvals bucket holds at least `n` items.
async fn proposals_reach(js: &async_nats::jetstream::Context, n: usize) {
    eventually(
        &format!("{n} proposals"),
        Duration::from_secs(60),
        || async { (stack::items(js).await.len() >= n).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_leader_loss_lose_and_double_nothing() {
    let started = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cluster = NatsCluster::start().await;
    let redis = RedisServer::start().await;
    let sim = stack::simulator().await;
    let stack = Stack::start(&cluster.urls(), &redis.url(), &sim, REPLICAS, (1, 1, 2)).await;
    let (_bus, js) = stack::bus(&cluster.urls()).await;

    // Everything zengate created is replicated three times.
    caught_up(&cluster).await;
    for stream in STREAMS {
        let info = js
            .get_stream(stream)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
        assert_eq!(info.config.num_replicas, REPLICAS, "{stream}");
    }
    let mut executor = js
        .get_stream("ZENGATE")
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("executor")
        .await
        .unwrap();
    let consumer = executor.info().await.unwrap().clone();
    assert_eq!(
        consumer.cluster.unwrap().replicas.len() + 1,
        REPLICAS,
        "consumers inherit"
    );

    let stop = Shutdown::new();
    let approver = vec![(stack.approval[0].base(), APPROVERS[0].1.to_owned())];
    let (_, approving) = stack::approve_everything(js.clone(), approver, stop.clone());
    let tickets = stack::open_tickets(&sim, LOAD, "c");
    let ingress = stack.ingress[0].addr.clone();

    // A node that does not lead the event stream.
    proposals_reach(&js, LOAD / 4).await;
    let leader = cluster.stream_leader("ZENDESK_EVENTS").await.unwrap();
    let follower = (leader + 1) % cluster.len();
    let killed = Instant::now();
    cluster.kill(follower).await;
    let intake = stack::intake_back(&ingress, killed).await;
    println!(
        "node loss ({}): intake back after {intake:?}",
        cluster.name(follower)
    );
    proposals_reach(&js, LOAD / 2).await;
    let restarted = Instant::now();
    cluster.restart(follower).await;
    caught_up(&cluster).await;
    println!(
        "node loss: node rejoined and caught up in {:?}",
        restarted.elapsed()
    );

    // The node leading the event stream.
    let leader = cluster.stream_leader("ZENDESK_EVENTS").await.unwrap();
    let killed = Instant::now();
    cluster.kill(leader).await;
    let intake = stack::intake_back(&ingress, killed).await;
    let new_leader = eventually(
        "a new ZENDESK_EVENTS leader",
        Duration::from_secs(30),
        || async {
            cluster
                .stream_leader("ZENDESK_EVENTS")
                .await
                .filter(|l| *l != leader)
        },
    )
    .await;
    println!(
        "leader loss ({} → {}): intake back after {intake:?}",
        cluster.name(leader),
        cluster.name(new_leader)
    );
    cluster.restart(leader).await;
    caught_up(&cluster).await;

    stack::all_applied(&js, &sim, &tickets, Duration::from_secs(120)).await;
    stack::quiet(&js, 8).await;
    stop.trigger();
    approving.await.unwrap();
    Books::read(&js, &sim, &tickets)
        .await
        .assert_exactly_once(&tickets);
    println!("cluster run: {LOAD} tickets, took {:?}", started.elapsed());
}
