//! The stack as separate service processes for the cluster and chaos tests:
//! one Zendesk simulator, approvers working the approvals
//! bucket, intake probes, and the exactly-once books read afterwards from
//! the streams, the bucket and the simulator.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use zengate_core::Secret;
use zengate_core::events::ApprovalRequested;
use zengate_core::headers;
use zengate_testkit::{ServiceProcess, eventually, free_port, service_binary};

pub const ACCOUNT: u64 = 42;
pub const SIGNING_SECRET: &str = "stack-webhook-signing-secret";
pub const API_EMAIL: &str = "agent@acme.test";
pub const API_TOKEN: &str = "stack-api-token";
/// Two approvers, so two people can race on every item.
pub const APPROVERS: [(&str, &str); 2] = [
    ("erin", "erin-approver-token-0123456789abcdef0123"),
    ("finn", "finn-approver-token-0123456789abcdef0123"),
];

/// The simulator, sending webhooks nowhere yet.
pub async fn simulator() -> zendesk_sim::SimHandle {
    zendesk_sim::Simulator::start(
        zendesk_sim::SimConfig::new(API_EMAIL, Secret::new(API_TOKEN), ACCOUNT),
        "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap(),
    )
    .await
    .unwrap()
}

/// Sends the simulator's webhooks to `ingress` (`127.0.0.1:port`).
pub fn webhooks_to(sim: &zendesk_sim::SimHandle, ingress: &str) {
    sim.set_webhook(Some(zendesk_sim::WebhookTarget {
        url: format!("http://{ingress}/channels/zendesk/webhook"),
        secret: Secret::new(SIGNING_SECRET),
        webhook_id: "01STACK".into(),
    }));
}

/// The environment every service of the stack gets.
fn common_env(
    nats_url: &str,
    redis_url: &str,
    sim_url: &str,
    replicas: usize,
) -> Vec<(String, String)> {
    let tokens = APPROVERS
        .iter()
        .map(|(name, token)| format!("{name}:{token}"))
        .collect::<Vec<_>>()
        .join(",");
    [
        ("NATS_URL", nats_url.to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
        ("ZENGATE_STREAM_REPLICAS", replicas.to_string()),
        ("ZENDESK_ACCOUNT_ID", ACCOUNT.to_string()),
        ("ZENDESK_WEBHOOK_SIGNING_SECRET", SIGNING_SECRET.to_owned()),
        ("ZENDESK_SUBDOMAIN", "acme".to_owned()),
        ("ZENDESK_EMAIL", API_EMAIL.to_owned()),
        ("ZENDESK_API_TOKEN", API_TOKEN.to_owned()),
        ("ZENDESK_API_BASE_URL", sim_url.to_owned()),
        (
            "ZENDESK_JWT_SHARED_SECRET",
            "stack-jwt-shared-secret".to_owned(),
        ),
        ("APPROVER_TOKENS", tokens),
        (
            "APPROVAL_RESUME_SECRET",
            "stack-resume-secret-0123456789".to_owned(),
        ),
        (
            "ZENGATE_RELEASE_SIGNING_SECRET",
            "stack-release-signing-key-0123456789abcdef".to_owned(),
        ),
        ("WORKER_PARTITIONS", "8".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("LOG_FORMAT", "pretty".to_owned()),
        ("NO_COLOR", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// One service process and the address it serves on.
#[derive(Debug)]
pub struct Service {
    pub process: ServiceProcess,
    /// `127.0.0.1:port`
    pub addr: String,
}

impl Service {
    fn spawn(kind: &str, n: usize, env: &[(String, String)], logs: &Path) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        let addr_var = match kind {
            "ingress" => "INGRESS_ADDR",
            "approval" => "APPROVAL_ADDR",
            "agent-worker" => "WORKER_ADDR",
            other => panic!("unknown service {other}"),
        };
        let mut env = env.to_vec();
        env.push((addr_var.to_owned(), addr.clone()));
        let process =
            ServiceProcess::spawn(&format!("{kind}-{n}"), service_binary(kind), env, logs);
        Self { process, addr }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn ready(&mut self) {
        let addr = self.addr.clone();
        self.process.wait_ready(&addr).await;
    }

    /// SIGKILL, then start it again right away (a supervisor restarting a
    /// crashed pod) and wait until it is ready.
    pub async fn crash_and_restart(&mut self) {
        self.process.kill().await;
        self.process.restart();
        self.ready().await;
    }
}

/// The stack: ingress, approval and worker processes sharing one NATS (or
/// cluster), one Redis and the simulator. Logs go to a temporary directory
/// that is kept (and named) when the test fails.
#[derive(Debug)]
pub struct Stack {
    pub ingress: Vec<Service>,
    pub approval: Vec<Service>,
    pub workers: Vec<Service>,
    logs: Option<tempfile::TempDir>,
}

impl Stack {
    /// Starts `n_ingress`, `n_approval` and `n_workers` processes and waits
    /// until every one is ready. The first ingress receives the webhooks.
    pub async fn start(
        nats_url: &str,
        redis_url: &str,
        sim: &zendesk_sim::SimHandle,
        replicas: usize,
        (n_ingress, n_approval, n_workers): (usize, usize, usize),
    ) -> Self {
        let logs = tempfile::Builder::new()
            .prefix("zg-stack-logs-")
            .tempdir()
            .unwrap();
        let env = common_env(nats_url, redis_url, &sim.base_url(), replicas);
        let spawn = |kind: &str, n: usize| -> Vec<Service> {
            (0..n)
                .map(|i| Service::spawn(kind, i, &env, logs.path()))
                .collect()
        };
        let mut me = Self {
            ingress: spawn("ingress", n_ingress),
            approval: spawn("approval", n_approval),
            workers: spawn("agent-worker", n_workers),
            logs: Some(logs),
        };
        for s in me
            .ingress
            .iter_mut()
            .chain(me.approval.iter_mut())
            .chain(me.workers.iter_mut())
        {
            s.ready().await;
        }
        webhooks_to(sim, &me.ingress[0].addr);
        me
    }

    /// The worker whose process holds the client side of a connection from
    /// `peer` (`127.0.0.1:port`, as the simulator recorded it).
    pub fn worker_with_connection(&self, peer: &str) -> Option<usize> {
        let port: u16 = peer.rsplit(':').next()?.parse().ok()?;
        self.workers
            .iter()
            .position(|w| w.process.owns_local_port(port))
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.logs.take()
        {
            eprintln!("service logs kept in {}", dir.keep().display());
        }
    }
}

/// A JetStream context that outlives NATS restarts and node losses.
pub async fn bus(nats_url: &str) -> (async_nats::Client, jetstream::Context) {
    let servers: Vec<String> = nats_url.split(',').map(str::to_owned).collect();
    let client = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .retry_on_initial_connect()
        .connect(servers.as_slice())
        .await
        .unwrap();
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(3))
        .build(client.clone());
    (client, js)
}

/// Creates `n` end-user tickets; returns their ids.
pub fn open_tickets(sim: &zendesk_sim::SimHandle, n: usize, tag: &str) -> Vec<u64> {
    (0..n)
        .map(|i| {
            sim.create_enduser_ticket(
                &format!("Printer on fire ({tag} {i})"),
                "Smoke everywhere, please help!",
                "Dana Customer",
                &format!("dana+{tag}{i}@example.com"),
            )
            .id
        })
        .collect()
}

/// Every item of the approvals bucket, as stored (retried while NATS is
/// unavailable).
pub async fn items(js: &jetstream::Context) -> Vec<approval::item::Item> {
    eventually("the approvals bucket", Duration::from_secs(30), || async {
        let store = js.get_key_value("approvals").await.ok()?;
        let keys: Vec<String> = store
            .keys()
            .await
            .ok()?
            .filter_map(|k| async { k.ok() })
            .collect()
            .await;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = store.get(&key).await.ok()??;
            out.push(serde_json::from_slice(&value).unwrap());
        }
        Some(out)
    })
    .await
}

fn is_state(item: &approval::item::Item, state: approval::item::State) -> bool {
    item.state == state
}

/// What the approvers saw: per item, the HTTP statuses of the final
/// answer each approver got.
pub type Decisions = Arc<Mutex<BTreeMap<String, Vec<u16>>>>;

/// Approves every pending item until `stop`: each approver in `approvers`
/// (`(base_url, token)`) posts at the same moment, so with two they race.
/// A 5xx or a connection failure is retried until a final 200 or 409.
pub fn approve_everything(
    js: jetstream::Context,
    approvers: Vec<(String, String)>,
    stop: zengate_runtime::Shutdown,
) -> (Decisions, tokio::task::JoinHandle<()>) {
    let decisions: Decisions = Arc::default();
    let seen = decisions.clone();
    let task = tokio::spawn(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut started = HashSet::new();
        let mut races = tokio::task::JoinSet::new();
        while !stop.is_triggered() {
            let pending: Vec<String> = items(&js)
                .await
                .into_iter()
                .filter(|i| is_state(i, approval::item::State::Pending))
                .map(|i| i.id)
                .filter(|id| !started.contains(id))
                .collect();
            for id in pending {
                started.insert(id.clone());
                let (http, approvers, seen) = (http.clone(), approvers.clone(), seen.clone());
                races.spawn(async move {
                    let posts = approvers
                        .iter()
                        .map(|(base, token)| approve(&http, base, token, &id));
                    let statuses = futures::future::join_all(posts).await;
                    seen.lock().unwrap().insert(id, statuses);
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.wait() => {}
            }
        }
        while races.join_next().await.is_some() {}
    });
    (decisions, task)
}

async fn approve(http: &reqwest::Client, base: &str, token: &str, id: &str) -> u16 {
    let url = format!("{base}/v1/approvals/{id}/approve");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = http.post(&url).bearer_auth(token).send().await {
            let status = res.status().as_u16();
            if status < 500 {
                return status;
            }
        }
        assert!(Instant::now() < deadline, "no final answer approving {id}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Posts a signed user event (never drafted) to `ingress` every 100 ms,
/// each on its own, until one is made durable (`200`); returns when that
/// answer came, measured from `since`. Overlapping probes keep one stuck
/// publish (a PubAck lost with a dead leader) from hiding the recovery.
pub async fn intake_back(ingress: &str, since: Instant) -> Duration {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("http://{ingress}/channels/zendesk/webhook");
    let mut probes = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for n in 0u64.. {
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "intake never came back"
        );
        tokio::select! {
            _ = tick.tick() => {
                let (http, url) = (http.clone(), url.clone());
                probes.spawn(async move { probe(&http, &url, n).await });
            }
            Some(Ok(true)) = probes.join_next() => return since.elapsed(),
        }
    }
    unreachable!()
}

/// One signed `user.created` delivery; true on `200`.
async fn probe(http: &reqwest::Client, url: &str, n: u64) -> bool {
    let id = format!("probe-{}-{n}", std::process::id());
    let body = format!(
        r#"{{"account_id":{ACCOUNT},"id":"{id}-{t}","type":"zen:event-type:user.created","subject":"zen:user:{u}","time":"2025-01-08T10:12:07Z","zendesk_event_version":"2022-11-06","detail":{{"id":"{u}"}},"event":{{}}}}"#,
        t = time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
        u = 9_007_199_254_800_000u64 + n,
    );
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let signature =
        zengate_core::signature::sign(&Secret::new(SIGNING_SECRET), &timestamp, body.as_bytes());
    http.post(url)
        .header("content-type", "application/json")
        .header(headers::ZENDESK_ACCOUNT_ID, ACCOUNT.to_string())
        .header(headers::ZENDESK_WEBHOOK_ID, "01STACK")
        .header(headers::ZENDESK_INVOCATION_ID, id.as_str())
        .header(headers::ZENDESK_SIGNATURE_TIMESTAMP, timestamp)
        .header(headers::ZENDESK_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Every message on `filter` in `stream`, read with an ephemeral consumer.
pub async fn messages(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> Vec<jetstream::Message> {
    eventually(
        &format!("{filter} in {stream}"),
        Duration::from_secs(30),
        || async {
            let stream = js.get_stream(stream).await.ok()?;
            let consumer = stream
                .create_consumer(consumer::pull::Config {
                    filter_subject: filter.to_owned(),
                    ack_policy: consumer::AckPolicy::None,
                    inactive_threshold: Duration::from_secs(30),
                    ..Default::default()
                })
                .await
                .ok()?;
            let total = consumer.cached_info().num_pending as usize;
            let mut out = Vec::with_capacity(total);
            let mut batch = consumer
                .fetch()
                .max_messages(total.max(1))
                .expires(Duration::from_secs(2))
                .messages()
                .await
                .ok()?;
            while out.len() < total {
                out.push(batch.next().await?.ok()?);
            }
            Some(out)
        },
    )
    .await
}

/// Waits until no consumer of the pipeline holds or owes a message: every
/// event drafted, every decision and release handled, every outcome seen.
pub async fn quiet(js: &jetstream::Context, partitions: u32) {
    let mut durables: Vec<(&str, String)> = (0..partitions)
        .map(|k| ("ZENGATE_WORK", format!("worker-p{k}")))
        .collect();
    durables.push(("ZENGATE", "executor".to_owned()));
    durables.push(("ZENGATE", "approval".to_owned()));
    durables.push(("ZENGATE", "approval-outcomes".to_owned()));
    eventually("every consumer drained", Duration::from_secs(60), || {
        let durables = durables.clone();
        async move {
            for (stream, name) in durables {
                let stream = js.get_stream(stream).await.ok()?;
                let mut c = stream
                    .get_consumer::<consumer::pull::Config>(&name)
                    .await
                    .ok()?;
                let info = c.info().await.ok()?;
                if info.num_pending > 0 || info.num_ack_pending > 0 {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
}

/// The exactly-once books of a run over `tickets`.
#[derive(Debug)]
pub struct Books {
    /// `ticket.created` events stored in `ZENDESK_EVENTS`.
    pub created_events: usize,
    /// Proposals on `zengate.approval.requested.>`, per ticket.
    pub proposals: BTreeMap<u64, usize>,
    /// Comments written by the API user, per ticket.
    pub comments: BTreeMap<u64, usize>,
    /// Items not `applied`.
    pub not_applied: Vec<String>,
    /// Items whose history records other than exactly one approval.
    pub decided_twice: Vec<String>,
    pub items: usize,
    pub dead_letters: usize,
}

impl Books {
    pub async fn read(
        js: &jetstream::Context,
        sim: &zendesk_sim::SimHandle,
        tickets: &[u64],
    ) -> Self {
        let created_events = messages(js, "ZENDESK_EVENTS", "zendesk.*.ticket.*.created")
            .await
            .len();
        let mut proposals: BTreeMap<u64, usize> = tickets.iter().map(|t| (*t, 0)).collect();
        for m in messages(js, "ZENGATE", "zengate.approval.requested.>").await {
            let req: ApprovalRequested = serde_json::from_slice(&m.payload).unwrap();
            let ticket: u64 = req.action.ticket_id().unwrap().parse().unwrap();
            *proposals.entry(ticket).or_default() += 1;
        }
        let api_user = sim.api_user().id;
        let comments = tickets
            .iter()
            .map(|t| {
                let n = sim
                    .comments(*t)
                    .iter()
                    .filter(|c| c.author_id == api_user)
                    .count();
                (*t, n)
            })
            .collect();
        let all = items(js).await;
        let not_applied = all
            .iter()
            .filter(|i| !is_state(i, approval::item::State::Applied))
            .map(|i| format!("{} {:?}", i.id, i.state))
            .collect();
        let decided_twice = all
            .iter()
            .filter(|i| i.history.iter().filter(|h| h.what == "approved").count() != 1)
            .map(|i| i.id.clone())
            .collect();
        let dead_letters = messages(js, "ZENGATE", "zengate.dlq.>").await.len();
        Self {
            created_events,
            proposals,
            comments,
            not_applied,
            decided_twice,
            items: all.len(),
            dead_letters,
        }
    }

    /// 0 lost, 0 duplicated: one event, one proposal, one applied approval
    /// and one comment per ticket, and nothing dead-lettered.
    pub fn assert_exactly_once(&self, tickets: &[u64]) {
        let n = tickets.len();
        assert_eq!(self.created_events, n, "ticket.created events stored");
        let wrong: Vec<_> = self.proposals.iter().filter(|(_, c)| **c != 1).collect();
        assert!(
            wrong.is_empty(),
            "tickets without exactly one proposal: {wrong:?}"
        );
        let wrong: Vec<_> = self.comments.iter().filter(|(_, c)| **c != 1).collect();
        assert!(
            wrong.is_empty(),
            "tickets without exactly one zengate comment: {wrong:?}"
        );
        assert_eq!(self.items, n, "approval items");
        assert!(
            self.not_applied.is_empty(),
            "not applied: {:?}",
            self.not_applied
        );
        assert!(
            self.decided_twice.is_empty(),
            "not approved exactly once: {:?}",
            self.decided_twice
        );
        assert_eq!(self.dead_letters, 0, "dead letters");
    }
}

/// Waits until every ticket carries a comment by the API user and every
/// item is applied.
pub async fn all_applied(
    js: &jetstream::Context,
    sim: &zendesk_sim::SimHandle,
    tickets: &[u64],
    deadline: Duration,
) {
    let api_user = sim.api_user().id;
    eventually("every approval applied", deadline, || async {
        let commented = tickets
            .iter()
            .all(|t| sim.comments(*t).iter().any(|c| c.author_id == api_user));
        if !commented {
            return None;
        }
        let all = items(js).await;
        (all.len() >= tickets.len()
            && all
                .iter()
                .all(|i| is_state(i, approval::item::State::Applied)))
        .then_some(())
    })
    .await;
}
