//! The executor writes each released approval to Zendesk exactly once under
//! duplicates, redeliveries, slow answers and crashes. Real NATS, Redis and
//! the Zendesk simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use agent_worker::{Role, WorkerConfig};
use support::{ACCOUNT, Harness, RecordingDrafter, Worker};
use time::OffsetDateTime;
use zendesk_client::{CommentInput, TicketUpdate};
use zendesk_sim::Fault;
use zengate_core::events::{
    Action, ActionOutcome, ApprovalReleased, FieldChanges, Requester, V1, ZENGATE_STREAM,
};
use zengate_testkit::eventually;

fn reply(ticket: u64, body: &str) -> Action {
    Action::Reply {
        ticket_id: ticket.to_string(),
        body: body.to_owned(),
        fields: FieldChanges {
            add_tags: vec!["zengate".to_owned()],
            ..Default::default()
        },
    }
}

fn release(approval_id: &str, action: Action) -> ApprovalReleased {
    ApprovalReleased {
        v: V1,
        approval_id: approval_id.to_owned(),
        account_id: ACCOUNT.to_string(),
        action,
        approved_by: "grace".to_owned(),
        approved_at: OffsetDateTime::now_utc(),
    }
}

/// Records the approval and publishes `r` signed, with message id
/// `<approval>:<copy>` (distinct copies are what a re-publishing approval
/// service or a replay produce).
async fn publish(h: &Harness, r: &ApprovalReleased, copy: &str) {
    h.release(r, copy).await;
}

fn executor_config(h: &Harness) -> WorkerConfig {
    let mut c = h.config();
    c.role = Role::Executor;
    c.ack_wait = Duration::from_secs(2);
    c.max_deliver = 5;
    c
}

async fn executor(config: WorkerConfig) -> Worker {
    let (drafter, _) = RecordingDrafter::new(Duration::ZERO);
    Worker::start(config, drafter).await
}

fn our_comments(h: &Harness, ticket: u64, body: &str) -> usize {
    let me = h.sim.api_user().id;
    h.sim
        .comments(ticket)
        .iter()
        .filter(|c| c.author_id == me && c.body == body)
        .count()
}

async fn outcomes(h: &Harness) -> Vec<ActionOutcome> {
    h.read_all(ZENGATE_STREAM, "zengate.action.>")
        .await
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect()
}

async fn redis(h: &Harness) -> redis::aio::MultiplexedConnection {
    redis::Client::open(h.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn set_record(h: &Harness, approval_id: &str, value: &str) {
    let mut c = redis(h).await;
    let _: () = redis::cmd("SET")
        .arg(format!("zengate:worker:exec:{approval_id}"))
        .arg(value)
        .query_async(&mut c)
        .await
        .unwrap();
}

async fn total(workers: &[&Worker], series: &str) -> f64 {
    let mut sum = 0.0;
    for w in workers {
        sum += w.metric(series).await;
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_releases_write_one_comment() {
    let h = Harness::start().await;
    let ticket = h.ticket("Twice?");
    let a = executor(executor_config(&h)).await;
    let b = executor(executor_config(&h)).await;
    let r = release(
        "a1000000000000000000000000000001",
        reply(ticket, "We are on it."),
    );
    for copy in ["c1", "c2", "c3"] {
        publish(&h, &r, copy).await;
    }
    eventually("all copies settled", Duration::from_secs(20), || async {
        let done = total(
            &[&a, &b],
            "zengate_worker_executions_total{outcome=\"applied\"}",
        )
        .await
            + total(
                &[&a, &b],
                "zengate_worker_executions_total{outcome=\"replayed\"}",
            )
            .await;
        (done == 3.0).then_some(())
    })
    .await;
    assert_eq!(our_comments(&h, ticket, "We are on it."), 1);
    assert_eq!(
        total(
            &[&a, &b],
            "zengate_worker_executions_total{outcome=\"applied\"}"
        )
        .await,
        1.0
    );
    let outcomes = outcomes(&h).await;
    assert_eq!(outcomes.len(), 1, "one outcome message (Nats-Msg-Id)");
    assert!(outcomes[0].applied);
    assert_eq!(
        outcomes[0].ticket_id.as_deref(),
        Some(ticket.to_string().as_str())
    );
    assert_eq!(outcomes[0].action_type, "reply");
    assert!(
        h.sim
            .ticket(ticket)
            .unwrap()
            .tags
            .contains(&"zengate".to_owned())
    );
    let puts = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(puts, 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_write_is_recognised() {
    let h = Harness::start().await;
    let ticket = h.ticket("Crash after write");
    let r = release(
        "b1000000000000000000000000000001",
        reply(ticket, "Fixed it."),
    );
    // A previous executor claimed it, wrote the comment, and died before
    // recording the result; its claim is stale.
    let stale = OffsetDateTime::now_utc().unix_timestamp() - 60;
    set_record(&h, &r.approval_id, &format!("executing:{stale}")).await;
    h.zendesk
        .update_ticket(
            ticket,
            &TicketUpdate {
                comment: Some(CommentInput {
                    body: "Fixed it.".to_owned(),
                    public: true,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    h.sim.clear_requests();

    let w = executor(executor_config(&h)).await;
    publish(&h, &r, "c1").await;
    h.wait_for("zengate.action.applied.>", 1, Duration::from_secs(20))
        .await;
    assert_eq!(our_comments(&h, ticket, "Fixed it."), 1);
    assert_eq!(
        w.metric("zengate_worker_executions_total{outcome=\"recovered\"}")
            .await,
        1.0
    );
    assert!(h.sim.requests().iter().all(|r| r.method != "PUT"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_the_write_writes_once() {
    let h = Harness::start().await;
    let ticket = h.ticket("Crash before write");
    let r = release(
        "c1000000000000000000000000000001",
        reply(ticket, "Hello again."),
    );
    let stale = OffsetDateTime::now_utc().unix_timestamp() - 60;
    set_record(&h, &r.approval_id, &format!("executing:{stale}")).await;
    let w = executor(executor_config(&h)).await;
    publish(&h, &r, "c1").await;
    h.wait_for("zengate.action.applied.>", 1, Duration::from_secs(20))
        .await;
    assert_eq!(our_comments(&h, ticket, "Hello again."), 1);
    assert_eq!(
        w.metric("zengate_worker_executions_total{outcome=\"applied\"}")
            .await,
        1.0
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_zendesk_and_503_do_not_double_the_write() {
    let h = Harness::start().await;
    let ticket = h.ticket("Slow");
    let path = format!("/api/v2/tickets/{ticket}.json");
    // Slower than ack_wait (progress acks must keep the delivery), then a
    // refusal the client retries.
    h.sim.inject(Fault {
        path_prefix: path.clone(),
        method: Some("PUT".to_owned()),
        status: 0,
        retry_after: None,
        times: 1,
        latency: Some(Duration::from_millis(3500)),
    });
    h.sim.inject(Fault {
        path_prefix: path.clone(),
        method: Some("PUT".to_owned()),
        status: 503,
        retry_after: Some(1),
        times: 1,
        latency: None,
    });
    let mut config = executor_config(&h);
    config.ack_wait = Duration::from_secs(1);
    let w = executor(config).await;
    let r = release("d1000000000000000000000000000001", reply(ticket, "Slowly."));
    publish(&h, &r, "c1").await;
    h.wait_for("zengate.action.applied.>", 1, Duration::from_secs(30))
        .await;
    assert_eq!(our_comments(&h, ticket, "Slowly."), 1);
    let info =
        h.js.get_stream(ZENGATE_STREAM)
            .await
            .unwrap()
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("executor")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .clone();
    assert_eq!(info.num_redelivered, 0, "no redelivery while the write ran");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_write_then_redelivered_writes_once() {
    let h = Harness::start().await;
    let ticket = h.ticket("Killed");
    let path = format!("/api/v2/tickets/{ticket}.json");
    h.sim.inject(Fault {
        path_prefix: path.clone(),
        method: Some("PUT".to_owned()),
        status: 0,
        retry_after: None,
        times: 1,
        latency: Some(Duration::from_millis(1500)),
    });
    let config = executor_config(&h);
    let victim = executor(config.clone()).await;
    let r = release(
        "e1000000000000000000000000000001",
        reply(ticket, "Once only."),
    );
    publish(&h, &r, "c1").await;
    eventually(
        "the PUT to reach Zendesk",
        Duration::from_secs(20),
        || async {
            h.sim
                .requests()
                .iter()
                .any(|r| r.method == "PUT")
                .then_some(())
        },
    )
    .await;
    victim.kill();
    let survivor = executor(config).await;
    h.wait_for("zengate.action.applied.>", 1, Duration::from_secs(30))
        .await;
    // Whether or not the interrupted PUT landed, there is one comment.
    eventually("the comment", Duration::from_secs(5), || async {
        (our_comments(&h, ticket, "Once only.") == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1600)).await; // let a late PUT land, if any
    assert_eq!(our_comments(&h, ticket, "Once only."), 1);
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_ticket_happens_once() {
    let h = Harness::start().await;
    let before = h.sim.tickets().len();
    let w = executor(executor_config(&h)).await;
    let r = release(
        "f1000000000000000000000000000001",
        Action::CreateTicket {
            subject: "Visitor needs help".to_owned(),
            body: "I cannot log in".to_owned(),
            requester: Requester {
                name: "Ada Lovelace".to_owned(),
                email: "ada@example.com".to_owned(),
                external_id: None,
            },
            tags: vec!["chat".to_owned()],
        },
    );
    publish(&h, &r, "c1").await;
    h.wait_for("zengate.action.applied.>", 1, Duration::from_secs(20))
        .await;
    // The execution record is lost (Redis flushed); a redelivery must still
    // not create a second ticket: the idempotency key does it.
    let mut c = redis(&h).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut c).await.unwrap();
    publish(&h, &r, "c2").await;
    eventually("the second copy", Duration::from_secs(20), || async {
        (w.metric("zengate_worker_executions_total{outcome=\"applied\"}")
            .await
            == 2.0)
            .then_some(())
    })
    .await;
    assert_eq!(h.sim.tickets().len(), before + 1);
    let created: Vec<_> = h
        .sim
        .tickets()
        .into_iter()
        .filter(|t| t.subject == "Visitor needs help")
        .collect();
    assert_eq!(created.len(), 1);
    let posts: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(
        posts
            .iter()
            .all(|p| p.header("idempotency-key") == Some(r.approval_id.as_str()))
    );
    let outcome = outcomes(&h).await.remove(0);
    assert_eq!(outcome.result_id, Some(created[0].id.to_string()));
    assert_eq!(outcome.ticket_id, Some(created[0].id.to_string()));
    w.stop().await;
}
