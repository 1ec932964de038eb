//! Auth against a Redis that requires a password, configured only through
//! the environment (`REDIS_PASSWORD_FILE`), as in a Kubernetes deployment:
//! ready with the right password, not ready with a wrong one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth::Application;
use auth::config::AuthConfig;
use serde_json::Value;
use zengate_runtime::Env;
use zengate_testkit::{NatsServer, RedisServer, TestService};

/// Starts auth from `env` and returns the `/readyz` status and body.
async fn readyz(env: &Env) -> (u16, Value) {
    let config = AuthConfig::from_env(env).expect("auth config");
    let app = Application::build(config).await.expect("auth builds");
    let svc = TestService::spawn(app.local_addr().unwrap(), |s| app.run(s));
    let res = svc.get("/readyz", None).send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.json().await.unwrap();
    svc.stop().await;
    (status, body)
}

fn redis_check(body: &Value) -> &Value {
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "redis")
        .expect("a redis check")
}

#[tokio::test]
async fn ready_only_with_the_right_redis_password() {
    zengate_testkit::init_telemetry();
    let dir = tempfile::tempdir().unwrap();
    let jwt_secret = dir.path().join("jwt-secret");
    std::fs::write(&jwt_secret, "widget-shared-secret-0123456789abcdef\n").unwrap();
    let nats = NatsServer::start().await;
    let redis = RedisServer::start_with_args(&["--requirepass", "auth-redis-pass"]).await;

    for (password, want) in [("auth-redis-pass", 200), ("not-the-password", 503)] {
        let password_file = dir.path().join("redis-password");
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        let env = Env::from_pairs([
            ("AUTH_ADDR", "127.0.0.1:0".to_owned()),
            ("NATS_URL", nats.url()),
            ("REDIS_URL", redis.url()),
            (
                "REDIS_PASSWORD_FILE",
                password_file.to_string_lossy().into_owned(),
            ),
            (
                "ZENDESK_JWT_SHARED_SECRET_FILE",
                jwt_secret.to_string_lossy().into_owned(),
            ),
        ]);
        let (status, body) = readyz(&env).await;
        assert_eq!(status, want, "password {password}: {body}");
        let check = redis_check(&body).to_string();
        assert!(
            !check.contains(password),
            "readyz quotes the password: {check}"
        );
    }
}
