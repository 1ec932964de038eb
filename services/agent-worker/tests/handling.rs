//! Event handling: dead letters, rate limits, loop prevention, redeliveries
//! beyond the duplicate window, and the whole path from the simulator's
//! webhook through the real ingress to a proposal and its execution.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use agent_worker::RulesDrafter;
use agent_worker::drafter::DraftError;
use async_nats::HeaderMap;
use base64::Engine as _;
use support::{ACCOUNT, Harness, RecordingDrafter, Worker, ticket_event};
use time::OffsetDateTime;
use zendesk_sim::{Fault, WebhookTarget};
use zengate_core::Secret;
use zengate_core::events::{Action, ApprovalReleased, DeadLetter, V1, ZENGATE_STREAM};
use zengate_testkit::{TestService, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_event_is_dead_lettered_and_the_ticket_continues() {
    let h = Harness::start().await;
    let ticket = h.ticket("Printer on fire");
    let other = h.ticket("Another");
    let (drafter, journal) = RecordingDrafter::failing(|event| match event {
        "t0-0" => Some(DraftError::retryable("model overloaded")),
        "t1-0" => Some(DraftError::permanent("cannot draft this")),
        _ => None,
    });
    let worker = Worker::start(h.config(), drafter).await;

    h.publish_event(ticket_event("t0-0", ticket, "created", None))
        .await;
    for n in 1..3 {
        h.publish_event(ticket_event(
            &format!("t0-{n}"),
            ticket,
            "comment_added",
            Some((1, false, "hello?")),
        ))
        .await;
    }
    h.publish_event(ticket_event("t1-0", other, "created", None))
        .await;

    h.wait_for("zengate.dlq.>", 2, Duration::from_secs(20))
        .await;
    h.wait_for("zengate.approval.requested.>", 2, Duration::from_secs(20))
        .await;

    let letters = h.read_all(ZENGATE_STREAM, "zengate.dlq.>").await;
    assert_eq!(letters.len(), 2);
    let retried = letters
        .iter()
        .find(|m| {
            m.subject.as_str() == format!("zengate.dlq.zendesk.{ACCOUNT}.ticket.{ticket}.created")
        })
        .expect("dead letter for the retried event");
    let letter: DeadLetter = serde_json::from_slice(&retried.payload).unwrap();
    assert_eq!(
        letter.original_subject,
        format!("zendesk.{ACCOUNT}.ticket.{ticket}.created")
    );
    assert_eq!(letter.deliveries, 3, "all configured attempts were used");
    assert!(
        letter.reason.contains("model overloaded"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.stream, "ZENGATE_WORK");
    let body = base64::engine::general_purpose::STANDARD
        .decode(&letter.body_base64)
        .unwrap();
    assert_eq!(body, ticket_event("t0-0", ticket, "created", None));
    assert!(
        letter
            .headers
            .iter()
            .any(|(k, v)| k == "Nats-Msg-Id" && *v == format!("{ACCOUNT}:t0-0"))
    );

    let permanent = letters
        .iter()
        .find(|m| m.subject.as_str().ends_with(&format!(".{other}.created")))
        .expect("dead letter for the permanent failure");
    let letter2: DeadLetter = serde_json::from_slice(&permanent.payload).unwrap();
    assert_eq!(letter2.deliveries, 1, "a permanent failure is not retried");
    assert!(letter2.reason.contains("cannot draft this"));

    // Later events of the same ticket were handled, in order, after the failure.
    let proposals = h.proposals().await;
    let sources: Vec<String> = proposals
        .iter()
        .map(|p| match &p.source {
            zengate_core::events::ProposalSource::ZendeskEvent { msg_id, .. } => msg_id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sources,
        [format!("{ACCOUNT}:t0-1"), format!("{ACCOUNT}:t0-2")]
    );
    {
        let j = journal.lock().unwrap();
        assert_eq!(j.order[&ticket], ["t0-0", "t0-0", "t0-0", "t0-1", "t0-2"]);
    }
    assert_eq!(
        worker.metric("zengate_worker_dead_letters_total").await,
        2.0
    );

    // A replay as `zengate dlq replay` publishes it (fresh message id, the
    // original in Zengate-Replay-Of) maps to the original approval id: the
    // already proposed t0-1 is recognised and not proposed again.
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{ACCOUNT}:t0-1:replay:9").as_str());
    headers.insert("Zengate-Replay-Of", format!("{ACCOUNT}:t0-1").as_str());
    h.js.publish_with_headers(
        format!("zendesk.{ACCOUNT}.ticket.{ticket}.comment_added"),
        headers,
        ticket_event("t0-1", ticket, "comment_added", Some((1, false, "hello?"))).into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    eventually(
        "the replay to be recognised",
        Duration::from_secs(10),
        || async {
            (worker
                .metric("zengate_worker_events_total{outcome=\"duplicate\"}")
                .await
                == 1.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        h.proposals().await.len(),
        2,
        "a replay never proposes twice"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out() {
    let h = Harness::start().await;
    let ticket = h.ticket("Slow down");
    let path = format!("/api/v2/tickets/{ticket}.json");
    // A short Retry-After: the client waits and retries by itself.
    h.sim.inject(Fault {
        path_prefix: path.clone(),
        method: Some("GET".to_owned()),
        status: 429,
        retry_after: Some(1),
        times: 1,
        latency: None,
    });
    let (drafter, _journal) = RecordingDrafter::new(Duration::ZERO);
    let worker = Worker::start(h.config(), drafter).await;
    h.publish_event(ticket_event("rl-0", ticket, "created", None))
        .await;
    h.wait_for("zengate.approval.requested.>", 1, Duration::from_secs(20))
        .await;
    let gets = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count();
    assert_eq!(gets, 2, "one refused, one retried");
    assert_eq!(
        worker
            .metric("zengate_worker_events_total{outcome=\"retried\"}")
            .await,
        0.0
    );

    // A Retry-After beyond the client's patience (2 s here): the worker
    // redelivers the event no sooner than Zendesk asked, instead of holding
    // the partition inside the client.
    h.sim.inject(Fault {
        path_prefix: path.clone(),
        method: Some("GET".to_owned()),
        status: 429,
        retry_after: Some(3),
        times: 1,
        latency: None,
    });
    let started = std::time::Instant::now();
    h.publish_event(ticket_event(
        "rl-1",
        ticket,
        "comment_added",
        Some((1, false, "any news?")),
    ))
    .await;
    h.wait_for("zengate.approval.requested.>", 2, Duration::from_secs(20))
        .await;
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "redelivered after {:?}, before Retry-After",
        started.elapsed()
    );
    assert_eq!(
        worker
            .metric("zengate_worker_events_total{outcome=\"retried\"}")
            .await,
        1.0
    );
    assert_eq!(h.count(ZENGATE_STREAM, "zengate.dlq.>").await, 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_and_staff_comments_yield_no_proposal() {
    let h = Harness::start().await;
    let ticket = h.ticket("Loop");
    let me = h.sim.api_user().id;
    let (drafter, journal) = RecordingDrafter::new(Duration::ZERO);
    let worker = Worker::start(h.config(), drafter).await;

    h.publish_event(ticket_event(
        "own",
        ticket,
        "comment_added",
        Some((me, true, "our reply")),
    ))
    .await;
    h.publish_event(ticket_event(
        "staff",
        ticket,
        "comment_added",
        Some((me + 1, true, "a colleague's note")),
    ))
    .await;
    h.publish_event(ticket_event("status", ticket, "status_changed", None))
        .await;
    h.publish_event(ticket_event(
        "customer",
        ticket,
        "comment_added",
        Some((me + 2, false, "thanks!")),
    ))
    .await;

    h.wait_for("zengate.approval.requested.>", 1, Duration::from_secs(20))
        .await;
    for (outcome, n) in [
        ("skipped_own_comment", 1.0),
        ("skipped_staff_comment", 1.0),
        ("skipped_event_type", 1.0),
        ("proposed", 1.0),
    ] {
        assert_eq!(
            worker
                .metric(&format!(
                    "zengate_worker_events_total{{outcome=\"{outcome}\"}}"
                ))
                .await,
            n,
            "{outcome}"
        );
    }
    let proposals = h.proposals().await;
    assert_eq!(proposals.len(), 1);
    assert_eq!(
        journal.lock().unwrap().calls,
        1,
        "only the customer's comment was drafted"
    );
    assert!(matches!(
        &proposals[0].source,
        zengate_core::events::ProposalSource::ZendeskEvent { msg_id, .. } if msg_id.ends_with(":customer")
    ));
    worker.stop().await;
}

/// The simulator's signed webhooks go through the real ingress into NATS;
/// the worker proposes with the built-in rules; releasing the proposal makes
/// the executor write the reply once; the simulator's webhook for that agent
/// comment comes back through the ingress and is not answered (no loop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_to_proposal_to_reply_without_loops() {
    const SECRET: &str = "d2ViaG9vay1zaWduaW5nLXNlY3JldA==";
    let h = Harness::start().await;
    let ingress_config = ingress::IngressConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        nats: h.nats.url().into(),
        redis: h.redis.url().into(),
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
    let ingress_app = ingress::Application::build(ingress_config).await.unwrap();
    let ingress_addr = ingress_app.local_addr().unwrap();
    let ingress = TestService::spawn(ingress_addr, |s| ingress_app.run(s));
    h.sim.set_webhook(Some(WebhookTarget {
        url: format!("http://{ingress_addr}{}", ingress::WEBHOOK_PATH),
        secret: Secret::new(SECRET),
        webhook_id: "01SIMHOOK".to_owned(),
    }));
    let worker = Worker::start(h.config(), Arc::new(RulesDrafter::builtin().unwrap())).await;

    let ticket = h
        .sim
        .create_enduser_ticket(
            "Printer on fire",
            "It is smoking",
            "Ada Lovelace",
            "ada@example.com",
        )
        .id;
    h.wait_for("zengate.approval.requested.>", 1, Duration::from_secs(20))
        .await;
    let proposal = h.proposals().await.remove(0);
    assert_eq!(proposal.proposed_by, "rules:builtin");
    assert_eq!(proposal.account_id, ACCOUNT.to_string());
    let Action::Reply {
        ticket_id,
        body,
        fields,
    } = &proposal.action
    else {
        panic!("expected a reply, got {:?}", proposal.action);
    };
    assert_eq!(*ticket_id, ticket.to_string());
    assert!(
        body.contains("Printer on fire") && body.contains(&ticket.to_string()),
        "{body}"
    );
    assert_eq!(fields.add_tags, ["zengate_acknowledged"]);
    assert!(proposal.reasons[0].contains("acknowledge"));

    // An approver releases it (as the approval service would).
    let released = ApprovalReleased {
        v: V1,
        approval_id: proposal.approval_id.clone(),
        account_id: proposal.account_id.clone(),
        action: proposal.action.clone(),
        approved_by: "grace".to_owned(),
        approved_at: OffsetDateTime::now_utc(),
    };
    h.release(&released, "released").await;
    h.wait_for("zengate.action.applied.>", 1, Duration::from_secs(20))
        .await;
    let me = h.sim.api_user().id;
    let ours: Vec<_> = h
        .sim
        .comments(ticket)
        .into_iter()
        .filter(|c| c.author_id == me)
        .collect();
    assert_eq!(ours.len(), 1);
    assert!(ours[0].public);
    assert!(
        h.sim
            .ticket(ticket)
            .unwrap()
            .tags
            .contains(&"zengate_acknowledged".to_owned())
    );

    // The agent comment's webhook came back and was recognised as our own.
    eventually(
        "our comment's webhook to be skipped",
        Duration::from_secs(20),
        || async {
            (worker
                .metric("zengate_worker_events_total{outcome=\"skipped_own_comment\"}")
                .await
                == 1.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        h.proposals().await.len(),
        1,
        "no proposal for our own reply"
    );

    // A customer reply is drafted again (an internal note by the built-in rules).
    h.sim
        .add_enduser_comment(ticket, "Thanks, it is still smoking")
        .unwrap();
    h.wait_for("zengate.approval.requested.>", 2, Duration::from_secs(20))
        .await;
    let second = h.proposals().await.remove(1);
    let Action::InternalNote { body, .. } = &second.action else {
        panic!("expected an internal note, got {:?}", second.action);
    };
    assert!(body.starts_with("Ada Lovelace replied"), "{body}");

    worker.stop().await;
    ingress.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_in_flight_event_and_reports_ready_before() {
    let h = Harness::start().await;
    let ticket = h.ticket("Shutdown");
    let (drafter, journal) = RecordingDrafter::new(Duration::from_millis(1500));
    let worker = Worker::start(h.config(), drafter).await;

    let ready = reqwest::get(format!("http://{}/readyz", worker.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let report: serde_json::Value = ready.json().await.unwrap();
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in ["nats", "stream:ZENGATE", "stream:ZENGATE_WORK", "redis"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    h.publish_event(ticket_event("sd-0", ticket, "created", None))
        .await;
    eventually("drafting to start", Duration::from_secs(10), || async {
        (journal.lock().unwrap().calls == 1).then_some(())
    })
    .await;
    // Shut down mid-draft: the event is finished, published and acked.
    worker.stop().await;
    assert_eq!(h.proposals().await.len(), 1);
    assert!(h.work_stream_empty().await, "the in-flight event was acked");
    assert_eq!(journal.lock().unwrap().calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_count_is_fixed_per_deployment() {
    let h = Harness::start().await;
    let (drafter, _) = RecordingDrafter::new(Duration::ZERO);
    let worker = Worker::start(h.config(), drafter.clone()).await;
    // A second replica with the same settings starts (idempotent provisioning)…
    let same = agent_worker::Application::build_with_drafter(h.config(), drafter.clone()).await;
    assert!(same.is_ok());
    // …one with another partition count is refused instead of re-partitioning.
    let mut other = h.config();
    other.partitions = 8;
    let err = agent_worker::Application::build_with_drafter(other, drafter)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            agent_worker::WorkerError::Topology(
                agent_worker::topology::TopologyError::Mismatch { .. }
            )
        ),
        "{err}"
    );
    worker.stop().await;
}
