//! `deploy/nats/nats-server.conf`, run as is on a private nats-server (only
//! the listen port, monitoring port and store dir are overridden, on the
//! command line, and the password variables are set on the server process):
//! each service's user can do what the service needs and nothing that would
//! let it forge another service's events. The last test runs the whole
//! webhook → proposal → approval → Zendesk path with one user per service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use support::Stack;
use zengate_core::Secret;
use zengate_runtime::bus;
use zengate_runtime::{Env, NatsConfig};
use zengate_testkit::{NatsServer, RedisServer};

const CONF: &str = include_str!("../deploy/nats/nats-server.conf");

const USERS: [(&str, &str, &str); 5] = [
    ("ingress", "NATS_INGRESS_PASSWORD", "lp-ingress-pw"),
    ("auth", "NATS_AUTH_PASSWORD", "lp-auth-pw"),
    ("approval", "NATS_APPROVAL_PASSWORD", "lp-approval-pw"),
    ("agent-worker", "NATS_WORKER_PASSWORD", "lp-worker-pw"),
    ("ops", "NATS_OPS_PASSWORD", "lp-ops-pw"),
];

async fn server() -> NatsServer {
    let env: Vec<(&str, &str)> = USERS.iter().map(|(_, var, pw)| (*var, *pw)).collect();
    let server = NatsServer::start_with_config_env(CONF, &env).await;
    // The file's store_dir (/data) was overridden by the test's.
    let log = server.log_text();
    assert!(
        log.contains(&server.dir().join("js").display().to_string()),
        "JetStream should store under the test dir: {log}"
    );
    server
}

fn password(user: &str) -> &'static str {
    USERS.iter().find(|(u, ..)| *u == user).unwrap().2
}

fn nats_config(server: &NatsServer, user: &str) -> NatsConfig {
    NatsConfig::from_env(&Env::from_pairs([
        ("NATS_URL", server.url()),
        ("NATS_USER", user.to_owned()),
        ("NATS_PASSWORD", password(user).to_owned()),
    ]))
    .unwrap()
}

/// A client for `user` and the server errors it is sent (permission
/// violations arrive as asynchronous `-ERR`s).
struct Session {
    client: async_nats::Client,
    js: jetstream::Context,
    errors: tokio::sync::mpsc::UnboundedReceiver<String>,
}

async fn session(server: &NatsServer, user: &str) -> Session {
    let (tx, errors) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_user_and_password(
        user.to_owned(),
        password(user).to_owned(),
    )
    .event_callback(move |event| {
        let tx = tx.clone();
        async move {
            if let async_nats::Event::ServerError(e) = event {
                let _ = tx.send(e.to_string());
            }
        }
    })
    .connect(server.url())
    .await
    .unwrap_or_else(|e| panic!("{user} cannot connect: {e}"));
    // Short: a denied JetStream publish shows as a missing PubAck.
    let js = bus::jetstream(client.clone(), Duration::from_secs(2));
    Session { client, js, errors }
}

impl Session {
    /// Publishes through JetStream and reports whether a PubAck came back.
    async fn js_publish(&self, subject: &str) -> Result<u64, String> {
        let ack = self
            .js
            .publish(subject.to_owned(), "{}".into())
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map(|a| a.sequence).map_err(|e| e.to_string())
    }

    /// A core publish that the server must report as a permission violation.
    async fn core_publish_is_denied(&mut self, subject: &str) {
        while self.errors.try_recv().is_ok() {}
        self.client
            .publish(subject.to_owned(), "{}".into())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        let err = tokio::time::timeout(Duration::from_secs(5), self.errors.recv())
            .await
            .unwrap_or_else(|_| panic!("no permission violation reported for {subject}"))
            .unwrap();
        let lower = err.to_lowercase();
        assert!(
            lower.contains("permissions violation") && lower.contains(&subject.to_lowercase()),
            "{err}"
        );
    }
}

/// The last message stored on `subject` in `stream`, read by `ops`.
async fn last_on(ops: &Session, stream: &str, subject: &str) -> Option<u64> {
    let stream = ops.js.get_stream(stream).await.unwrap();
    stream
        .get_last_raw_message_by_subject(subject)
        .await
        .ok()
        .map(|m| m.sequence)
}

#[tokio::test]
async fn each_service_user_can_do_only_its_part() {
    let server = server().await;

    // Each owner provisions what it owns, with its own user, through the
    // same code the services run.
    let ingress = session(&server, "ingress").await;
    bus::ensure_stream(&ingress.js, bus::zendesk_stream_config(&Default::default()))
        .await
        .unwrap();
    let approval = session(&server, "approval").await;
    bus::ensure_stream(&approval.js, bus::zengate_stream_config())
        .await
        .unwrap();
    let approvals_kv = bus::ensure_kv(&approval.js, approval::bucket_config())
        .await
        .unwrap();
    let mut worker = session(&server, "agent-worker").await;
    agent_worker::topology::ensure_base_streams(&worker.js, 1)
        .await
        .unwrap();
    let work = agent_worker::topology::ensure_work_stream(
        &worker.js,
        &["zendesk.*.ticket.*.*".to_owned()],
        2,
        1,
    )
    .await
    .unwrap();
    let partitions =
        agent_worker::topology::ensure_partition_consumers(&work, 2, Duration::from_secs(30), 5)
            .await
            .unwrap();
    agent_worker::topology::ensure_executor_consumer(&worker.js, Duration::from_secs(30), 5)
        .await
        .unwrap();
    let auth = session(&server, "auth").await;
    bus::ensure_stream(&auth.js, bus::zengate_stream_config())
        .await
        .unwrap();
    let mut ops = session(&server, "ops").await;

    // ingress: provider events in, PubAck back; nothing on zengate.>.
    let mut ingress = ingress;
    let seq = ingress
        .js_publish("zendesk.42.ticket.1.created")
        .await
        .expect("ingress publishes provider events");
    assert!(seq > 0);
    assert!(
        ingress
            .js_publish("zengate.approval.released.42.7")
            .await
            .is_err()
    );
    ingress
        .core_publish_is_denied("zengate.approval.released.42.7")
        .await;
    ingress
        .core_publish_is_denied("zengate.auth.jwt_issued.user")
        .await;
    assert_eq!(
        last_on(&ops, "ZENGATE", "zengate.approval.released.42.7").await,
        None
    );

    // The worker: its event ran through ZENGATE_WORK to a partition consumer.
    let mut delivered = None;
    for consumer in &partitions {
        let mut batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .unwrap();
        if let Some(msg) = batch.next().await {
            let msg = msg.unwrap();
            msg.ack().await.unwrap();
            delivered = Some(msg.subject.to_string());
        }
    }
    assert!(
        delivered.is_some_and(|s| s.ends_with("zendesk.42.ticket.1.created")),
        "the worker pulls and acks its work"
    );
    // It proposes, reports outcomes and dead-letters...
    for subject in [
        "zengate.approval.requested.42.1",
        "zengate.action.applied.42.1",
        "zengate.dlq.zendesk.42.ticket.1.created",
    ] {
        worker
            .js_publish(subject)
            .await
            .unwrap_or_else(|e| panic!("worker publishes {subject}: {e}"));
    }
    // ...but cannot release or decide an approval, not even through JetStream.
    let denied = worker.js_publish("zengate.approval.released.42.7").await;
    assert!(
        denied.is_err(),
        "worker got a PubAck for a release: {denied:?}"
    );
    worker
        .core_publish_is_denied("zengate.approval.released.42.7")
        .await;
    worker
        .core_publish_is_denied("zengate.approval.decided.42.7")
        .await;
    assert_eq!(
        last_on(&ops, "ZENGATE", "zengate.approval.released.42.7").await,
        None
    );
    // Nor change a stream it does not own (e.g. to add a source or transform).
    let mut changed = bus::zengate_stream_config();
    changed.max_age = Duration::from_secs(60);
    assert!(worker.js.update_stream(changed).await.is_err());

    // approval: the only publisher of releases, and the bucket's owner.
    let released = approval
        .js_publish("zengate.approval.released.42.7")
        .await
        .expect("approval publishes releases");
    assert_eq!(
        last_on(&ops, "ZENGATE", "zengate.approval.released.42.7").await,
        Some(released)
    );
    approval
        .js_publish("zengate.approval.decided.42.7")
        .await
        .unwrap();
    approvals_kv.put("a1", "pending".into()).await.unwrap();

    // The worker reads the approvals bucket, and cannot write it.
    let worker_kv = worker.js.get_key_value("approvals").await.unwrap();
    assert_eq!(
        worker_kv.get("a1").await.unwrap().as_deref(),
        Some(&b"pending"[..])
    );
    assert!(worker_kv.put("a1", "approved".into()).await.is_err());
    worker.core_publish_is_denied("$KV.approvals.a1").await;
    assert_eq!(
        approvals_kv.get("a1").await.unwrap().as_deref(),
        Some(&b"pending"[..])
    );

    // auth: its audit events, nothing else.
    let mut auth = auth;
    auth.js_publish("zengate.auth.jwt_issued.user")
        .await
        .unwrap();
    auth.core_publish_is_denied("zengate.approval.released.42.7")
        .await;
    auth.core_publish_is_denied("zendesk.42.ticket.1.created")
        .await;

    // ops: lists and replays dead letters, reads events, forges no release.
    let stream = ops.js.get_stream("ZENGATE").await.unwrap();
    let mut dlq: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: "zengate.dlq.>".to_owned(),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dlq.info().await.unwrap().num_pending, 1);
    let letter = last_on(&ops, "ZENGATE", "zengate.dlq.zendesk.42.ticket.1.created")
        .await
        .unwrap();
    ops.js_publish("zendesk.42.ticket.1.created").await.unwrap();
    assert!(stream.delete_message(letter).await.unwrap());
    assert!(
        last_on(&ops, "ZENDESK_EVENTS", "zendesk.42.ticket.1.created")
            .await
            .is_some()
    );
    ops.core_publish_is_denied("zengate.approval.released.42.7")
        .await;

    // The server logs every denial (the whole-path test relies on this).
    let log = server.log_text();
    assert!(
        log.contains("Publish Violation") && log.contains("zengate.approval.released.42.7"),
        "{log}"
    );
}

#[tokio::test]
async fn wrong_passwords_are_refused() {
    let server = server().await;
    for (user, ..) in USERS {
        let mut config = nats_config(&server, user);
        config.auth = zengate_runtime::nats::NatsAuth::UserPassword {
            user: user.to_owned(),
            password: Secret::new("not-the-password"),
        };
        let err = bus::connect_once(&config, "zg-test").await.unwrap_err();
        assert!(err.to_string().contains("authorization violation"), "{err}");
        bus::connect_once(&nats_config(&server, user), "zg-test")
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
    }
    // No anonymous access at all.
    assert!(
        bus::connect_once(&NatsConfig::from(server.url()), "zg-test")
            .await
            .is_err()
    );
}

/// The real services, each with its own NATS user from the file: a webhook
/// becomes a proposal, an approver approves it, the worker writes exactly
/// one comment. Any permission the file forgot would stall this path.
#[tokio::test]
async fn whole_path_with_one_nats_user_per_service() {
    let nats = server().await;
    let redis = RedisServer::start().await;
    let sim = support::simulator().await;
    let stack = Stack::start(&sim, |user| {
        let pass = password(user);
        support::stack_env(
            &nats,
            &redis,
            &sim,
            &[("NATS_USER", user), ("NATS_PASSWORD", pass)],
        )
    })
    .await;

    let ticket = sim.create_enduser_ticket(
        "Printer on fire",
        "Smoke everywhere, please help!",
        "Dana Customer",
        "dana@example.com",
    );
    let comments_before = sim.comments(ticket.id).len();
    let id = stack.wait_pending(ticket.id).await;
    let res = stack
        .approve(&id, "On it: please unplug the printer.")
        .await;
    assert_eq!(res.status(), 200);

    // The approval service consumes the worker's outcome: the item ends applied.
    assert_eq!(stack.wait_applied(&id).await["state"], "applied");
    let comments = sim.comments(ticket.id);
    assert_eq!(comments.len(), comments_before + 1, "{comments:?}");
    assert_eq!(
        comments.last().unwrap().body,
        "On it: please unplug the printer."
    );
    // No service hit a permission it lacks on the way (the server logs
    // each denial as a "Publish Violation" or "Subscription Violation").
    let log = nats.log_text();
    let violations: Vec<&str> = log.lines().filter(|l| l.contains("Violation")).collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    stack.stop().await;
}
