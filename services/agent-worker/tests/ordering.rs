//! Per-ticket order across replicas, and nothing lost or doubled when a
//! replica dies mid-run. Real NATS, Redis and the Zendesk simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::{Harness, RecordingDrafter, Worker, assert_ordered, ticket_event};
use zengate_core::events::ProposalSource;
use zengate_testkit::eventually;

/// `rounds` events for each of `tickets` tickets, interleaved round by round:
/// the first of each ticket is `created`, the rest end-user comments.
async fn publish_interleaved(h: &Harness, tickets: &[u64], rounds: usize) -> Vec<(String, String)> {
    publish_interleaved_from(h, tickets, 0, rounds).await
}

async fn publish_interleaved_from(
    h: &Harness,
    tickets: &[u64],
    first: usize,
    end: usize,
) -> Vec<(String, String)> {
    let mut sources = Vec::new();
    for n in first..end {
        for (k, ticket) in tickets.iter().enumerate() {
            let id = format!("t{k}-{n}");
            let (action, comment) = if n == 0 {
                ("created", None)
            } else {
                ("comment_added", Some((1, false, "still burning")))
            };
            h.publish_event(ticket_event(&id, *ticket, action, comment))
                .await;
            sources.push((
                format!("{}:{id}", support::ACCOUNT),
                format!("zendesk.{}.ticket.{ticket}.{action}", support::ACCOUNT),
            ));
        }
    }
    sources
}

fn approval_ids(sources: &[(String, String)]) -> HashSet<String> {
    sources
        .iter()
        .map(|(msg_id, subject)| {
            ProposalSource::ZendeskEvent {
                msg_id: msg_id.clone(),
                subject: subject.clone(),
            }
            .approval_id()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_keep_each_tickets_order() {
    let h = Harness::start().await;
    let tickets: Vec<u64> = (0..50).map(|i| h.ticket(&format!("ticket {i}"))).collect();
    let (drafter, journal) = RecordingDrafter::new(Duration::from_millis(2));
    // A backlog first: every partition has a queue the replicas compete for.
    let mut sources = publish_interleaved(&h, &tickets, 10).await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Worker::start(h.config(), drafter.clone()).await);
    }
    // ...then more while they run.
    sources.extend(publish_interleaved_from(&h, &tickets, 10, 20).await);
    assert_eq!(sources.len(), 1000);
    h.wait_for(
        "zengate.approval.requested.>",
        1000,
        Duration::from_secs(50),
    )
    .await;

    let proposals = h.proposals().await;
    assert_eq!(proposals.len(), 1000);
    let ids: HashSet<String> = proposals.iter().map(|p| p.approval_id.clone()).collect();
    assert_eq!(ids, approval_ids(&sources));
    {
        let j = journal.lock().unwrap();
        assert!(
            j.overlaps.is_empty(),
            "concurrent events of one ticket: {:?}",
            j.overlaps
        );
        assert_eq!(j.calls, 1000);
        assert_eq!(j.order.len(), 50);
        assert!(j.order.values().all(|ids| ids.len() == 20));
        assert_ordered(&j);
    }
    // Work was spread over the replicas.
    let mut busy = 0;
    for w in &workers {
        if w.metric("zengate_worker_events_total{outcome=\"proposed\"}")
            .await
            > 0.0
        {
            busy += 1;
        }
    }
    assert!(busy >= 2, "only {busy} of 3 workers handled events");
    for w in workers {
        w.stop().await;
    }
    assert!(h.work_stream_empty().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_loses_nothing_and_doubles_nothing() {
    let h = Harness::start().await;
    let tickets: Vec<u64> = (0..50).map(|i| h.ticket(&format!("ticket {i}"))).collect();
    let (drafter, journal) = RecordingDrafter::new(Duration::from_millis(5));
    let mut config = h.config();
    config.ack_wait = Duration::from_secs(2);
    let victim = Worker::start(config.clone(), drafter.clone()).await;
    let mut survivors = Vec::new();
    for _ in 0..2 {
        survivors.push(Worker::start(config.clone(), drafter.clone()).await);
    }

    let sources = publish_interleaved(&h, &tickets, 6).await;
    let total = sources.len();
    // Kill one replica while it is holding messages.
    eventually("the victim to be busy", Duration::from_secs(20), || async {
        (victim
            .metric("zengate_worker_events_total{outcome=\"proposed\"}")
            .await
            >= 10.0)
            .then_some(())
    })
    .await;
    victim.kill();

    h.wait_for(
        "zengate.approval.requested.>",
        total,
        Duration::from_secs(50),
    )
    .await;
    eventually(
        "the work stream to drain",
        Duration::from_secs(20),
        || async { h.work_stream_empty().await.then_some(()) },
    )
    .await;

    let proposals = h.proposals().await;
    assert_eq!(proposals.len(), total, "exactly one proposal per event");
    let ids: HashSet<String> = proposals.iter().map(|p| p.approval_id.clone()).collect();
    assert_eq!(ids, approval_ids(&sources));
    {
        let j = journal.lock().unwrap();
        assert!(
            j.overlaps.is_empty(),
            "concurrent events of one ticket: {:?}",
            j.overlaps
        );
        assert_ordered(&j);
        let seen: HashSet<&String> = j.order.values().flatten().collect();
        assert_eq!(seen.len(), total, "every event reached the drafter");
    }
    for w in survivors {
        w.stop().await;
    }
}
