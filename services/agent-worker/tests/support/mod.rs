//! Shared set-up for worker tests: private NATS + Redis, the Zendesk
//! simulator, workers on port 0, events published straight into
//! `ZENDESK_EVENTS`, and a drafter that records what it saw.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_worker::drafter::{Draft, DraftError, Drafter, Proposal, TicketContext};
use agent_worker::{Application, Role, SharedDrafter, WorkerConfig};
use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::future::BoxFuture;
use zendesk_client::{ClientConfig, Credentials, ZendeskClient};
use zendesk_sim::{SimConfig, SimHandle, Simulator};
use zengate_core::Secret;
use zengate_core::events::{
    ApprovalReleased, FieldChanges, ZENDESK_STREAM, ZENGATE_STREAM, approval_released_subject,
};
use zengate_core::release::{self, ReleaseKeys};
use zengate_runtime::bus;
use zengate_testkit::{Infra, TestService};

pub const ACCOUNT: u64 = 42;
pub const EMAIL: &str = "bot@example.com";
pub const TOKEN: &str = "sim-api-token";
/// The release-signing key shared with the (simulated) approval service.
pub const RELEASE_KEY: &str = "test-release-signing-key-0123456789abcdef";

/// NATS, Redis (the shared [`Infra`], which it derefs to) and the
/// simulator for one test.
pub struct Harness {
    pub infra: Infra,
    pub sim: SimHandle,
    pub zendesk: ZendeskClient,
}

impl std::ops::Deref for Harness {
    type Target = Infra;

    fn deref(&self) -> &Infra {
        &self.infra
    }
}

impl Harness {
    pub async fn start() -> Self {
        let infra = Infra::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = Simulator::start(SimConfig::new(EMAIL, TOKEN, ACCOUNT), listener)
            .await
            .unwrap();
        bus::ensure_stream(&infra.js, bus::zendesk_stream_config(&Default::default()))
            .await
            .unwrap();
        bus::ensure_stream(&infra.js, bus::zengate_stream_config())
            .await
            .unwrap();
        let zendesk = ZendeskClient::new(client_config(&sim)).unwrap();
        Self {
            infra,
            sim,
            zendesk,
        }
    }

    /// Worker settings for this harness: fast retries, short fetch waits.
    pub fn config(&self) -> WorkerConfig {
        WorkerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            nats: self.nats.url().into(),
            redis: self.redis.url().into(),
            http: Default::default(),
            account_id: ACCOUNT,
            zendesk: client_config(&self.sim),
            partitions: 16,
            filter_subjects: vec!["zendesk.*.ticket.*.*".to_owned()],
            ack_wait: Duration::from_secs(10),
            max_deliver: 3,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_millis(200),
            fetch_wait: Duration::from_millis(500),
            rules_file: None,
            role: Role::All,
            skip_staff_comments: true,
            comments_limit: 10,
            record_ttl: Duration::from_secs(3600),
            executor_concurrency: 2,
            redis_timeout: Duration::from_millis(500),
            nats_timeout: Duration::from_secs(5),
            release_keys: Some(ReleaseKeys::single(RELEASE_KEY)),
            drafter: Default::default(),
        }
    }

    /// Records `released` as an approved item in the `approvals` bucket, as
    /// the approval service does before it releases (state `released`).
    pub async fn record_approval(&self, released: &ApprovalReleased, state: &str) {
        let kv = bus::ensure_kv(
            &self.js,
            jetstream::kv::Config {
                bucket: release::APPROVALS_BUCKET.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let item = serde_json::json!({
            "id": released.approval_id,
            "state": state,
            "request": { "account_id": released.account_id },
            "final_action": released.action,
        });
        kv.put(
            &released.approval_id,
            serde_json::to_vec(&item).unwrap().into(),
        )
        .await
        .unwrap();
    }

    /// Publishes a release on its subject with message id
    /// `<approval>:<copy>` and the given signature header (if any).
    pub async fn publish_release_as(
        &self,
        subject: &str,
        released: &ApprovalReleased,
        copy: &str,
        signature: Option<&str>,
    ) {
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}:{copy}", released.approval_id).as_str(),
        );
        if let Some(sig) = signature {
            headers.insert(release::SIGNATURE_HEADER, sig);
        }
        self.js
            .publish_with_headers(
                subject.to_owned(),
                headers,
                serde_json::to_vec(released).unwrap().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// What the approval service does on approval: record the item, then
    /// publish the signed release (`copy` distinguishes re-publications).
    pub async fn release(&self, released: &ApprovalReleased, copy: &str) {
        self.record_approval(released, "released").await;
        let subject = approval_released_subject(&released.account_id, released.action.ticket_id());
        let signature = release::sign(&Secret::new(RELEASE_KEY), released);
        self.publish_release_as(&subject, released, copy, Some(&signature))
            .await;
    }

    pub fn ticket(&self, subject: &str) -> u64 {
        self.sim
            .create_enduser_ticket(
                subject,
                "My printer is on fire",
                "Ada Lovelace",
                "ada@example.com",
            )
            .id
    }

    /// Publishes a provider event as the ingress would (subject, Nats-Msg-Id).
    pub async fn publish_event(&self, body: Vec<u8>) {
        let env = zengate_core::Envelope::parse(&body).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", env.head.msg_id().as_str());
        self.js
            .publish_with_headers(env.head.nats_subject(), headers, body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    pub async fn proposals(&self) -> Vec<zengate_core::events::ApprovalRequested> {
        self.read_all(ZENGATE_STREAM, "zengate.approval.requested.>")
            .await
            .iter()
            .map(|m| serde_json::from_slice(&m.payload).unwrap())
            .collect()
    }

    /// Waits until `filter` holds at least `n` messages on ZENGATE.
    pub async fn wait_for(&self, filter: &str, n: usize, deadline: Duration) {
        self.wait_count(ZENGATE_STREAM, filter, n, deadline).await;
    }

    pub async fn work_stream_empty(&self) -> bool {
        let mut s = self.js.get_stream("ZENGATE_WORK").await.unwrap();
        s.info().await.unwrap().state.messages == 0
    }

    pub async fn source_events(&self) -> u64 {
        let mut s = self.js.get_stream(ZENDESK_STREAM).await.unwrap();
        s.info().await.unwrap().state.messages
    }
}

pub fn client_config(sim: &SimHandle) -> ClientConfig {
    let mut c = ClientConfig::new(
        "acme",
        Credentials::ApiToken {
            email: EMAIL.to_owned(),
            token: Secret::new(TOKEN),
        },
    );
    c.base_url_override = Some(sim.base_url());
    c.timeout = Duration::from_secs(5);
    c.max_backoff = Duration::from_secs(2);
    c
}

/// A Zendesk envelope for `ticket`; `comment` = (author id, is_staff, body).
pub fn ticket_event(
    event_id: &str,
    ticket: u64,
    action: &str,
    comment: Option<(u64, bool, &str)>,
) -> Vec<u8> {
    let event = match comment {
        Some((author, staff, body)) => format!(
            r#"{{"comment":{{"id":"{}","body":{},"is_public":true,"author":{{"id":"{author}","is_staff":{staff},"name":"Ada Lovelace"}}}}}}"#,
            fastrand_id(),
            serde_json::to_string(body).unwrap()
        ),
        None => "{}".to_owned(),
    };
    format!(
        r#"{{"account_id":{ACCOUNT},"id":"{event_id}","type":"zen:event-type:ticket.{action}","subject":"zen:ticket:{ticket}","time":"2025-01-08T10:12:07.672717030Z","zendesk_event_version":"2022-11-06","detail":{{"id":"{ticket}","subject":"Printer on fire"}},"event":{event}}}"#
    )
    .into_bytes()
}

fn fastrand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1000);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running worker instance; derefs to the [`TestService`].
pub struct Worker(TestService);

impl std::ops::Deref for Worker {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.0
    }
}

impl Worker {
    pub async fn start(config: WorkerConfig, drafter: SharedDrafter) -> Self {
        let app = Application::build_with_drafter(config, drafter)
            .await
            .expect("worker builds");
        Self(TestService::spawn(app.local_addr().unwrap(), |s| {
            app.run(s)
        }))
    }

    /// Graceful stop: drains and returns.
    pub async fn stop(self) {
        self.0.stop().await;
    }

    /// Like a crash: in-flight messages are neither acked nor nak'ed.
    pub fn kill(self) {
        self.0.kill();
    }
}

/// What the recording drafter saw.
#[derive(Debug, Default)]
pub struct Journal {
    /// Per ticket: event ids in the order their handling started.
    pub order: HashMap<u64, Vec<String>>,
    /// Tickets being drafted right now.
    pub in_flight: HashSet<u64>,
    /// Violations of "one event per ticket at a time".
    pub overlaps: Vec<String>,
    pub calls: usize,
}

/// Decides per event id whether the drafter fails.
pub type FailRule = Box<dyn Fn(&str) -> Option<DraftError> + Send + Sync>;

/// Records every call, checks that no ticket is drafted twice at once, and
/// proposes an internal note. `fail` decides per event id whether to fail.
pub struct RecordingDrafter {
    pub journal: Arc<Mutex<Journal>>,
    pub delay: Duration,
    pub fail: FailRule,
}

impl RecordingDrafter {
    pub fn new(delay: Duration) -> (Arc<Self>, Arc<Mutex<Journal>>) {
        let journal = Arc::new(Mutex::new(Journal::default()));
        (
            Arc::new(Self {
                journal: journal.clone(),
                delay,
                fail: Box::new(|_| None),
            }),
            journal,
        )
    }

    pub fn failing(
        fail: impl Fn(&str) -> Option<DraftError> + Send + Sync + 'static,
    ) -> (Arc<Self>, Arc<Mutex<Journal>>) {
        let journal = Arc::new(Mutex::new(Journal::default()));
        (
            Arc::new(Self {
                journal: journal.clone(),
                delay: Duration::ZERO,
                fail: Box::new(fail),
            }),
            journal,
        )
    }
}

impl Drafter for RecordingDrafter {
    fn name(&self) -> &str {
        "recording"
    }

    fn draft<'a>(
        &'a self,
        ctx: &'a TicketContext,
    ) -> BoxFuture<'a, Result<Option<Proposal>, DraftError>> {
        Box::pin(async move {
            let ticket = ctx.ticket.id;
            let event = ctx.event.event_id.clone();
            {
                let mut j = self.journal.lock().unwrap();
                j.calls += 1;
                if !j.in_flight.insert(ticket) {
                    j.overlaps.push(format!("{ticket}: {event}"));
                }
                j.order.entry(ticket).or_default().push(event.clone());
            }
            // Removed on drop too, so a worker aborted mid-draft (a crash)
            // does not leave the ticket marked busy.
            let _busy = Busy {
                journal: self.journal.clone(),
                ticket,
            };
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            } else {
                tokio::task::yield_now().await;
            }
            if let Some(e) = (self.fail)(&event) {
                return Err(e);
            }
            Ok(Some(Proposal {
                draft: Draft::InternalNote {
                    body: format!("seen {event}"),
                    fields: FieldChanges::default(),
                },
                reasons: vec!["test".to_owned()],
                info: None,
            }))
        })
    }
}

struct Busy {
    journal: Arc<Mutex<Journal>>,
    ticket: u64,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut j) = self.journal.lock() {
            j.in_flight.remove(&self.ticket);
        }
    }
}

/// Checks that each ticket's events started in publish order (`t<k>-<n>`
/// ids, `n` increasing); a redelivery may repeat the latest id.
pub fn assert_ordered(journal: &Journal) {
    for (ticket, ids) in &journal.order {
        let mut last: Option<u64> = None;
        for id in ids {
            let n: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
            if let Some(prev) = last {
                assert!(
                    n == prev || n == prev + 1,
                    "ticket {ticket}: {id} after #{prev} in {ids:?}"
                );
            }
            last = Some(n);
        }
    }
}
