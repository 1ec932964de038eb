//! `spawn_app` for ingress tests: private NATS + Redis, the app on port 0.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod redis_faults;

use std::time::Duration;

use ingress::{Application, IngressConfig};
use redis_faults::Fault;
use zengate_core::Secret;
use zengate_core::events::ZENDESK_STREAM;
use zengate_runtime::bus::ZendeskStreamSettings;
use zengate_testkit::{Infra, TestService, eventually};

pub const SECRET: &str = "c2lnbmluZy1zZWNyZXQtZm9yLXRlc3Rz";

pub fn config(nats_url: &str, redis_url: &str) -> IngressConfig {
    IngressConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        nats: nats_url.into(),
        redis: redis_url.into(),
        http: Default::default(),
        secrets: vec![Secret::new(SECRET)],
        account_id: 42,
        webhook_id: None,
        body_limit: 64 * 1024,
        signature_max_age: None,
        dedup_horizon: Duration::from_secs(3600),
        publish_timeout: Duration::from_secs(3),
        redis_timeout: ingress::config::DEFAULT_REDIS_TIMEOUT,
        redis_probe_interval: Duration::from_millis(100),
        max_inflight_bytes: ingress::config::DEFAULT_MAX_INFLIGHT_BYTES,
        dedup_clock_skew: ingress::config::DEFAULT_DEDUP_CLOCK_SKEW,
        stream: ZendeskStreamSettings::default(),
    }
}

/// When the test events happened: long before any duplicate window, so each
/// one is looked up in Redis.
pub const LONG_AGO: &str = "2025-01-08T10:12:07.672717030Z";

/// A JSON envelope of any type.
pub fn event(account: u64, id: &str, ty: &str, subject: &str, detail: &str) -> Vec<u8> {
    event_at(account, id, ty, subject, detail, LONG_AGO)
}

/// A JSON envelope of any type that happened at `time`.
pub fn event_at(
    account: u64,
    id: &str,
    ty: &str,
    subject: &str,
    detail: &str,
    time: &str,
) -> Vec<u8> {
    format!(
        r#"{{"account_id":{account},"id":"{id}","type":"{ty}","subject":"{subject}","time":"{time}","zendesk_event_version":"2022-11-06","detail":{detail},"event":{{}}}}"#
    )
    .into_bytes()
}

/// A ticket event for `ticket` that happened at `time`.
pub fn ticket_event_at(id: &str, ticket: u64, time: &str) -> Vec<u8> {
    event_at(
        42,
        id,
        "zen:event-type:ticket.created",
        &format!("zen:ticket:{ticket}"),
        &format!(r#"{{"id":"{ticket}"}}"#),
        time,
    )
}

/// A ticket event for `ticket` with `action` (`created`, `comment_added`…).
pub fn ticket_event(account: u64, id: &str, ticket: u64, action: &str) -> Vec<u8> {
    event(
        account,
        id,
        &format!("zen:event-type:ticket.{action}"),
        &format!("zen:ticket:{ticket}"),
        &format!(r#"{{"id":"{ticket}","subject":"Printer on fire"}}"#),
    )
}

/// A valid ticket event of exactly `len` bytes (padded inside `detail`).
pub fn padded_ticket_event(id: &str, len: usize) -> Vec<u8> {
    let text = String::from_utf8(ticket_event(42, id, 5, "created")).unwrap();
    let with_pad = text.replacen(r#""detail":{"#, r#""detail":{"pad":"","#, 1);
    let missing = len - with_pad.len();
    with_pad
        .replacen(
            r#""pad":"""#,
            &format!(r#""pad":"{}""#, "x".repeat(missing)),
            1,
        )
        .into_bytes()
}

/// The ingress on port 0 over private NATS and Redis; derefs to the
/// running [`TestService`] (`addr`, `http`, `metric`, `shutdown`).
pub struct TestApp {
    pub infra: Infra,
    pub svc: TestService,
    pub config: IngressConfig,
}

impl std::ops::Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.svc
    }
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl Fn(&mut IngressConfig)) -> Self {
        Self::start_inner(tweak, None).await.0
    }

    /// An ingress that reaches its Redis through a proxy delaying every
    /// request by `delay` (adjustable through the returned proxy).
    pub async fn start_behind_slow_proxy(delay: Duration) -> (Self, Fault) {
        let (app, proxy) = Self::start_inner(|_| {}, Some(delay)).await;
        (app, proxy.expect("proxy started"))
    }

    async fn start_inner(
        tweak: impl Fn(&mut IngressConfig),
        slow_redis: Option<Duration>,
    ) -> (Self, Option<Fault>) {
        let infra = Infra::start().await;
        let mut config = config(&infra.nats.url(), &infra.redis.url());
        let mut proxy = None;
        if let Some(delay) = slow_redis {
            let upstream = format!("127.0.0.1:{}", infra.redis.port()).parse().unwrap();
            let p = Fault::slow(upstream, delay).await;
            config.redis = p.url().as_str().into();
            proxy = Some(p);
        }
        tweak(&mut config);
        let app = Application::build(config.clone())
            .await
            .expect("ingress builds");
        let svc = TestService::spawn(app.local_addr().unwrap(), |s| app.run(s));
        (Self { infra, svc, config }, proxy)
    }

    /// Waits until `/metrics` shows `want` for `series`.
    pub async fn wait_metric(&self, series: &str, want: f64) {
        eventually(
            &format!("{series} = {want}"),
            Duration::from_secs(10),
            || async { (self.metric(series).await == want).then_some(()) },
        )
        .await;
    }

    /// The webhook URL.
    pub fn url(&self) -> String {
        format!("{}{}", self.base(), ingress::WEBHOOK_PATH)
    }

    pub fn sign(&self, ts: &str, body: &[u8]) -> String {
        zengate_core::signature::sign(&Secret::new(SECRET), ts, body)
    }

    /// A delivery with every header, the given signature (or none) and timestamp.
    pub fn delivery(&self, body: &[u8], sig: Option<&str>, ts: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(self.url())
            .header("content-type", "application/json")
            .header("x-zendesk-account-id", "42")
            .header("x-zendesk-webhook-id", "01TESTHOOK")
            .header("x-zendesk-webhook-invocation-id", uuid_like())
            .header("x-zendesk-webhook-signature-timestamp", ts)
            .body(body.to_vec());
        if let Some(sig) = sig {
            req = req.header("x-zendesk-webhook-signature", sig);
        }
        req
    }

    pub fn signed(&self, body: &[u8]) -> reqwest::RequestBuilder {
        self.signed_at(body, "2025-01-08T10:12:08Z")
    }

    pub fn signed_at(&self, body: &[u8], ts: &str) -> reqwest::RequestBuilder {
        let sig = self.sign(ts, body);
        self.delivery(body, Some(&sig), ts)
    }

    pub fn delivery_for_account(&self, body: &[u8], account: &str) -> reqwest::RequestBuilder {
        self.signed_without(body, "x-zendesk-account-id", Some(account))
    }

    /// A signed delivery with header `name` removed, or replaced by `value`.
    pub fn signed_without(
        &self,
        body: &[u8],
        name: &str,
        value: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let ts = "2025-01-08T10:12:08Z";
        let sig = self.sign(ts, body);
        let mut headers = reqwest::header::HeaderMap::new();
        let all = [
            ("content-type", "application/json".to_owned()),
            ("x-zendesk-account-id", "42".to_owned()),
            ("x-zendesk-webhook-id", "01TESTHOOK".to_owned()),
            ("x-zendesk-webhook-invocation-id", uuid_like()),
            ("x-zendesk-webhook-signature-timestamp", ts.to_owned()),
            ("x-zendesk-webhook-signature", sig),
        ];
        for (k, v) in all {
            let v = if k == name {
                value.map(str::to_owned)
            } else {
                Some(v)
            };
            if let Some(v) = v {
                headers.insert(k, v.parse().unwrap());
            }
        }
        self.http
            .post(self.url())
            .headers(headers)
            .body(body.to_vec())
    }

    pub async fn stream_messages(&self) -> u64 {
        self.infra.stream_messages(ZENDESK_STREAM).await
    }

    pub async fn last_message(&self) -> async_nats::jetstream::message::StreamMessage {
        let mut s = self.infra.js.get_stream(ZENDESK_STREAM).await.unwrap();
        let last = s.info().await.unwrap().state.last_sequence;
        s.get_raw_message(last).await.unwrap()
    }

    async fn redis_conn(&self) -> Option<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.infra.redis.url())
            .ok()?
            .get_multiplexed_async_connection()
            .await
            .ok()
    }

    /// Whether `msg_id` is in one of the ingress's day sets in Redis.
    pub async fn remembered(&self, msg_id: &str) -> bool {
        let Some(mut c) = self.redis_conn().await else {
            return false;
        };
        let days: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", ingress::dedup::DAY_PREFIX))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        for day in days {
            let member: bool = redis::cmd("SISMEMBER")
                .arg(&day)
                .arg(msg_id)
                .query_async(&mut c)
                .await
                .unwrap_or(false);
            if member {
                return true;
            }
        }
        false
    }

    /// Records `msg_id` as an earlier version did: one key per id.
    pub async fn remember_as_before(&self, msg_id: &str) {
        let mut c = self.redis_conn().await.expect("redis reachable");
        let _: () = redis::cmd("SET")
            .arg(format!("{}{msg_id}", ingress::dedup::KEY_PREFIX))
            .arg(1)
            .arg("EX")
            .arg(3600)
            .query_async(&mut c)
            .await
            .expect("SET");
    }

    /// How many `command`s Redis has executed (`INFO commandstats`), read from
    /// Redis itself.
    pub async fn redis_calls(&self, command: &str) -> u64 {
        let mut c = self.redis_conn().await.expect("redis reachable");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut c)
            .await
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The Redis write happens just after the response; wait for it.
    pub async fn wait_remembered(&self, msg_id: &str) {
        eventually(
            "event id recorded in redis",
            Duration::from_secs(5),
            || async { self.remembered(msg_id).await.then_some(()) },
        )
        .await;
    }

    pub async fn wait_stopped(self) {
        self.svc.stopped().await;
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "inv-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
