//! Test harness for the approval service: private NATS + Redis, services on
//! port 0 (several replicas can share one NATS), helpers to publish requests
//! and inspect what reached the bus.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod webdriver;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use approval::{Application, ApprovalConfig, ApproverTokens, OnTimeout};
use async_nats::jetstream;
use serde_json::Value;
use time::OffsetDateTime;
use zengate_core::Secret;
use zengate_core::events::{
    Action, ActionOutcome, ApprovalRequested, AuthorRole, Citation, ConversationEntry, DraftInfo,
    FieldChanges, ProposalContext, ProposalSource, V1, ZENGATE_STREAM, action_outcome_subject,
    approval_requested_subject,
};
use zengate_core::release::ReleaseKeys;
use zengate_testkit::{TestService, eventually};

pub const ACCOUNT: u64 = 42;
pub const ALICE: &str = "tok-alice-0123456789abcdef0123456789";
pub const BOB: &str = "tok-bob-0123456789abcdef0123456789ab";
pub const JWT_SECRET: &str = "visitor-jwt-shared-secret-for-tests";
pub const RESUME_SECRET: &str = "resume-secret-for-tests-0123456789";
pub const RELEASE_KEY: &str = "release-signing-key-for-tests-0123456789";

pub fn config(nats_url: &str, redis_url: &str) -> ApprovalConfig {
    ApprovalConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        nats: nats_url.into(),
        redis: redis_url.into(),
        http: Default::default(),
        account_id: ACCOUNT,
        jwt_secret: Secret::new(JWT_SECRET),
        approvers: ApproverTokens::parse(&Secret::new(format!("alice:{ALICE},bob:{BOB}"))).unwrap(),
        resume_secret: Secret::new(RESUME_SECRET),
        timeout: Duration::from_secs(3600),
        on_timeout: OnTimeout::Expire,
        sweep_interval: Duration::from_millis(200),
        public_url: "http://127.0.0.1:8082".to_owned(),
        visitor_rate_limit: 5,
        visitor_rate_window: Duration::from_secs(600),
        reconcile_after: Duration::from_secs(1),
        publish_timeout: Duration::from_secs(3),
        redis_timeout: Duration::from_millis(500),
        release_keys: ReleaseKeys::single(RELEASE_KEY),
        trusted_proxies: Default::default(),
        auth_failure_limit: 20,
        auth_failure_window: Duration::from_secs(60),
        stream_ticket_ttl: Duration::from_secs(30),
        retention: approval::retention::DEFAULT,
        recent_limit: 1000,
    }
}

/// The shared harness's NATS + Redis, with approval-specific helpers.
pub struct Infra(zengate_testkit::Infra);

impl std::ops::Deref for Infra {
    type Target = zengate_testkit::Infra;

    fn deref(&self) -> &zengate_testkit::Infra {
        &self.0
    }
}

impl std::ops::DerefMut for Infra {
    fn deref_mut(&mut self) -> &mut zengate_testkit::Infra {
        &mut self.0
    }
}

impl Infra {
    pub async fn start() -> Self {
        Self(zengate_testkit::Infra::start().await)
    }

    pub fn config(&self) -> ApprovalConfig {
        config(&self.nats.url(), &self.redis.url())
    }

    /// Publishes a request on `zengate.approval.requested.…`.
    pub async fn publish_request(&self, req: &ApprovalRequested) {
        let subject = approval_requested_subject(&req.account_id, req.action.ticket_id());
        self.js
            .publish(subject, serde_json::to_vec(req).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Publishes the worker's outcome of `id` on `zengate.action.applied|failed.…`
    /// (these tests stand in for the worker).
    pub async fn publish_outcome(&self, id: &str, ticket: &str, error: Option<&str>) {
        let outcome = ActionOutcome {
            v: V1,
            approval_id: id.to_owned(),
            account_id: ACCOUNT.to_string(),
            ticket_id: Some(ticket.to_owned()),
            action_type: "reply".into(),
            applied: error.is_none(),
            error: error.map(str::to_owned),
            result_id: error.is_none().then(|| "9001".to_owned()),
            at: OffsetDateTime::now_utc(),
        };
        self.js
            .publish(
                action_outcome_subject(error.is_none(), &ACCOUNT.to_string(), Some(ticket)),
                serde_json::to_vec(&outcome).unwrap().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Messages stored in `ZENGATE` on subjects matching `filter`.
    pub async fn count(&self, filter: &str) -> usize {
        self.0.count(ZENGATE_STREAM, filter).await
    }

    /// Body of the last message on `subject`.
    pub async fn last(&self, subject: &str) -> Value {
        serde_json::from_slice(&self.last_message(subject).await.payload).unwrap()
    }

    /// The last message on `subject`, headers included.
    pub async fn last_message(&self, subject: &str) -> jetstream::message::StreamMessage {
        self.0.last_message(ZENGATE_STREAM, subject).await
    }

    pub async fn wait_count(&self, filter: &str, n: usize) {
        self.0
            .wait_count(ZENGATE_STREAM, filter, n, Duration::from_secs(10))
            .await;
    }
}

/// One running approval service; derefs to the [`TestService`].
pub struct Svc(TestService);

impl std::ops::Deref for Svc {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.0
    }
}

impl Svc {
    pub async fn start(infra: &Infra) -> Self {
        Self::start_with(infra, |_| {}).await
    }

    pub async fn start_with(infra: &Infra, tweak: impl Fn(&mut ApprovalConfig)) -> Self {
        let mut config = infra.config();
        tweak(&mut config);
        Self::start_config(config).await
    }

    pub async fn start_config(config: ApprovalConfig) -> Self {
        let app = Application::build(config).await.expect("approval builds");
        Self(TestService::spawn(app.local_addr().unwrap(), |s| {
            app.run(s)
        }))
    }

    pub async fn stop(self) {
        self.0.stop().await;
    }

    /// `POST /v1/approvals/{id}/{verb}` (approve, reject, retry) without a
    /// body; the status.
    pub async fn act(&self, id: &str, verb: &str, token: &str) -> u16 {
        self.post(&format!("/v1/approvals/{id}/{verb}"), Some(token))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn item(&self, id: &str) -> Option<Value> {
        let res = self
            .get(&format!("/v1/approvals/{id}"), Some(ALICE))
            .send()
            .await
            .ok()?;
        if res.status() != 200 {
            return None;
        }
        res.json().await.ok()
    }

    /// Waits until the item exists (and, when given, is in `state`).
    pub async fn wait_item(&self, id: &str, state: Option<&str>) -> Value {
        eventually(
            &format!("item {id} in state {state:?}"),
            Duration::from_secs(10),
            || async {
                let item = self.item(id).await?;
                match state {
                    Some(s) if item["state"] != s => None,
                    _ => Some(item),
                }
            },
        )
        .await
    }

    /// Waits until the list index shows the item in `state`.
    pub async fn wait_listed(&self, id: &str, state: &str) {
        eventually(
            &format!("item {id} listed as {state}"),
            Duration::from_secs(10),
            || async {
                let res = self
                    .get(
                        &format!("/v1/approvals?state={state}&limit=500"),
                        Some(ALICE),
                    )
                    .send()
                    .await
                    .ok()?;
                let v: Value = res.json().await.ok()?;
                v["items"]
                    .as_array()?
                    .iter()
                    .any(|i| i["id"] == id)
                    .then_some(())
            },
        )
        .await;
    }
}

static N: AtomicU64 = AtomicU64::new(1);

/// A unique ticket id for this process.
pub fn unique_ticket() -> String {
    format!(
        "{}{:06}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A reply proposal for `ticket`.
pub fn reply_request(ticket: &str, body: &str) -> ApprovalRequested {
    let source = ProposalSource::ZendeskEvent {
        msg_id: format!("{ACCOUNT}:evt-{ticket}"),
        subject: format!("zendesk.{ACCOUNT}.ticket.{ticket}.comment_added"),
    };
    ApprovalRequested {
        v: V1,
        approval_id: source.approval_id(),
        account_id: ACCOUNT.to_string(),
        source,
        action: Action::Reply {
            ticket_id: ticket.to_owned(),
            body: body.to_owned(),
            fields: FieldChanges::default(),
        },
        reasons: vec!["customer asked about the printer".into()],
        proposed_by: "drafter:test".into(),
        requested_at: OffsetDateTime::now_utc(),
        context: ProposalContext {
            ticket_subject: Some(format!("Printer on fire #{ticket}")),
            requester: Some("Ada <ada@example.com>".into()),
            last_comment: Some("help".into()),
            ..ProposalContext::default()
        },
    }
}

/// A reply proposal carrying the whole picture a model-backed drafter gives:
/// a conversation (customer and staff, one internal note), ticket fields, the
/// agent UI link and the draft's provenance with cited articles.
pub fn rich_request(ticket: &str, body: &str) -> ApprovalRequested {
    let mut req = reply_request(ticket, body);
    let entry = |author: &str, role, minutes: i64, public, body: &str| ConversationEntry {
        author: author.into(),
        role,
        at: Some(
            (OffsetDateTime::now_utc() - time::Duration::minutes(minutes))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        ),
        public,
        body: body.into(),
    };
    req.context = ProposalContext {
        ticket_subject: Some(format!("Printer on fire #{ticket}")),
        requester: Some("Ada Lovelace <ada@example.com>".into()),
        last_comment: Some("It is still smoking.".into()),
        status: Some("open".into()),
        priority: Some("urgent".into()),
        tags: vec!["hardware".into(), "vip".into()],
        ticket_url: Some(format!("https://acme.zendesk.com/agent/tickets/{ticket}")),
        conversation: vec![
            entry(
                "Ada Lovelace",
                AuthorRole::Customer,
                42,
                true,
                "My printer caught fire <script>alert(1)</script>",
            ),
            entry(
                "Grace Hopper",
                AuthorRole::Staff,
                30,
                true,
                "Please unplug it and send us the serial number.",
            ),
            entry(
                "Grace Hopper",
                AuthorRole::Staff,
                29,
                false,
                "Check the recall list before answering.",
            ),
            entry(
                "Ada Lovelace",
                AuthorRole::Customer,
                5,
                true,
                "It is still smoking. Serial PX-1.",
            ),
        ],
        draft: Some(DraftInfo {
            drafter: "openai".into(),
            model: Some("gpt-4o-mini".into()),
            confidence_pct: Some(82),
            citations: vec![
                Citation {
                    article_id: "501".into(),
                    title: "Printer recall PX series".into(),
                    url: Some("https://acme.zendesk.com/hc/articles/501".into()),
                },
                Citation {
                    article_id: "502".into(),
                    title: "Unsafe link".into(),
                    url: Some("javascript:alert(2)".into()),
                },
            ],
            needs_human: true,
        }),
    };
    req.reasons = vec![
        "customer reports a burning device".into(),
        "PX-1 is on the recall list".into(),
    ];
    req
}

pub fn released_subject(ticket: &str) -> String {
    format!("zengate.approval.released.{ACCOUNT}.{ticket}")
}

pub fn decided_subject(ticket: &str) -> String {
    format!("zengate.approval.decided.{ACCOUNT}.{ticket}")
}
