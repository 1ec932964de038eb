//! Secrets, user_tokens and JWTs never reach the logs, even at TRACE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::TestApp;
use zengate_testkit::LogCapture;

#[tokio::test]
async fn logs_hold_no_secret_token_or_jwt() {
    let logs = LogCapture::install(zengate_runtime::telemetry::log_filter("trace").unwrap());

    let mut app = TestApp::start_with(|c| {
        support::with_messaging(c);
        c.rate_limit_per_token = 2;
    })
    .await;
    let token = app.add_user("Log", "log@example.com", None).await;
    let mut jwts = vec![
        TestApp::jwt_of(app.widget(&token).await).await,
        TestApp::jwt_of(app.chat(&token).await).await,
    ];
    assert_eq!(app.chat(&token).await.status(), 429);
    assert_eq!(app.widget("unknown-token-abcdefgh").await.status(), 401);
    assert_eq!(app.widget("bad token").await.status(), 400);
    // a rotation and an outage log too
    std::fs::write(&app.secret_file, "the-next-secret-value-42").unwrap();
    app.keys.reload_logged("test");
    app.infra.redis.stop().await;
    assert_eq!(app.widget(&token).await.status(), 503);
    app.infra.redis.restart().await;
    let t2 = app.add_user("Log2", "log2@example.com", None).await;
    jwts.push(
        TestApp::jwt_of(
            app.http
                .post(app.url(&format!("/webhook/messaging-jwt?user_token={t2}")))
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    app.stop().await;

    let text = logs.text();
    assert!(text.contains("jwt issued"), "issuances are logged");
    assert!(text.contains(&zengate_core::events::short_hash(&token)));
    for needle in [
        support::SECRET,
        "the-next-secret-value-42",
        support::MSG_SECRET,
        support::MSG_OLD_SECRET,
        token.as_str(),
        t2.as_str(),
        "unknown-token-abcdefgh",
    ] {
        assert!(!text.contains(needle), "log contains {needle}");
    }
    for jwt in &jwts {
        // not the JWT, nor its signature
        assert!(!text.contains(jwt.as_str()));
        assert!(!text.contains(jwt.rsplit('.').next().unwrap()));
    }
}
