//! `TestApp` for auth tests: private NATS + Redis, the service on port 0, a
//! secret file it can rotate, and an independent JWT decoder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use auth::config::{AuthConfig, LookupConfig};
use auth::keys::{KeySources, SecretSource};
use auth::users::{NewUser, RedisUsers};
use auth::{Application, issue::Issuer, keys::KeyStore};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use zengate_core::Secret;
use zengate_runtime::redis_store::RedisStore;
use zengate_testkit::{Infra, TestService};

pub const SECRET: &str = "widget-shared-secret-0123456789abcdef";
pub const MSG_KID: &str = "app_64f0c1d2";
pub const MSG_SECRET: &str = "messaging-secret-active-xyz";
pub const MSG_OLD_KID: &str = "app_old";
pub const MSG_OLD_SECRET: &str = "messaging-secret-old-abc";

/// The auth service on port 0 over private NATS and Redis, with a secret
/// file it can rotate; derefs to the running [`TestService`].
pub struct TestApp {
    pub infra: Infra,
    pub svc: TestService,
    pub config: AuthConfig,
    pub issuer: Arc<Issuer>,
    pub keys: Arc<KeyStore>,
    pub users: RedisUsers,
    pub secret_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestApp {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.svc
    }
}

pub fn config(nats_url: &str, redis_url: &str, secret_file: &str) -> AuthConfig {
    AuthConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        nats: nats_url.into(),
        redis: redis_url.into(),
        http: Default::default(),
        redis_timeout: Duration::from_millis(250),
        keys: KeySources {
            widget: SecretSource::File {
                var: "ZENDESK_JWT_SHARED_SECRET_FILE".into(),
                path: secret_file.to_owned(),
            },
            messaging: None,
            messaging_keys: None,
        },
        token_ttl: Duration::from_secs(300),
        secret_poll: Duration::from_secs(3600),
        allowed_origins: vec![],
        lookup: LookupConfig::Redis,
        audit_buffer: 20_000,
        publish_timeout: Duration::from_secs(1),
        rate_limit_per_token: 1_000_000,
        rate_limit_per_ip: 1_000_000,
        trusted_proxies: vec![],
    }
}

/// Adds Messaging keys: the active pair and one older known key.
pub fn with_messaging(c: &mut AuthConfig) {
    c.keys.messaging = Some((
        MSG_KID.to_owned(),
        SecretSource::Inline(Secret::new(MSG_SECRET)),
    ));
    c.keys.messaging_keys = Some(SecretSource::Inline(Secret::new(format!(
        "{MSG_OLD_KID}:{MSG_OLD_SECRET}"
    ))));
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut AuthConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("jwt-secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let infra = Infra::start().await;
        let mut config = config(
            &infra.nats.url(),
            &infra.redis.url(),
            secret_file.to_string_lossy().as_ref(),
        );
        tweak(&mut config);
        let app = Application::build(config.clone())
            .await
            .expect("auth builds");
        let issuer = app.issuer();
        let keys = app.keys();
        let svc = TestService::spawn(app.local_addr().unwrap(), |s| app.run(s));
        let store =
            Arc::new(RedisStore::from_url(&infra.redis.url(), Duration::from_secs(2)).unwrap());
        Self {
            infra,
            svc,
            config,
            issuer,
            keys,
            users: RedisUsers::new(store),
            secret_file,
            _dir: dir,
        }
    }

    /// Stores a user and returns its new user_token.
    pub async fn add_user(&self, name: &str, email: &str, external_id: Option<&str>) -> String {
        // Retried: the connection may still be re-establishing after a Redis restart.
        let user = NewUser {
            name: name.into(),
            email: email.into(),
            external_id: external_id.map(str::to_owned),
            email_verified: false,
        };
        let (token, _) = zengate_testkit::eventually("user stored", Duration::from_secs(5), || {
            let user = user.clone();
            async move { self.users.add(user).await.ok() }
        })
        .await;
        token.expose().to_owned()
    }

    pub async fn widget(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/webhook/zendesk-jwt?user_token={token}")))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap()
    }

    pub async fn chat(&self, token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/webhook/chat-token"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The JWT of a 200 answer.
    pub async fn jwt_of(res: reqwest::Response) -> String {
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        v["jwt"].as_str().unwrap().to_owned()
    }

    /// Every audit message in the ZENGATE stream, with its subject.
    pub async fn audits(&self) -> Vec<(String, Value)> {
        let Ok(mut s) = self.infra.js.get_stream("ZENGATE").await else {
            return vec![];
        };
        let Ok(info) = s.info().await else {
            return vec![];
        };
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let mut out = Vec::new();
        if info.state.messages == 0 {
            return out;
        }
        for seq in first..=last {
            if let Ok(m) = s.get_raw_message(seq).await {
                out.push((
                    m.subject.to_string(),
                    serde_json::from_slice(&m.payload).unwrap(),
                ));
            }
        }
        out
    }

    pub async fn audit_count(&self) -> u64 {
        let Ok(mut s) = self.infra.js.get_stream("ZENGATE").await else {
            return 0;
        };
        s.info().await.map(|i| i.state.messages).unwrap_or(0)
    }

    pub async fn stop(self) {
        self.svc.stop().await;
    }
}

/// Splits, verifies the HS256 signature with `secret` itself, and decodes the
/// header and claims; `None` when the signature does not verify.
pub fn decode(jwt: &str, secret: &str) -> Option<(Value, Value)> {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWT has three parts");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    mac.verify_slice(&sig).ok()?;
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    Some((header, claims))
}

/// The raw header JSON text (exact bytes matter to Zendesk).
pub fn raw_header(jwt: &str) -> String {
    String::from_utf8(
        URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
