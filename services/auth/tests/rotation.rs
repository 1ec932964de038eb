//! Rotating the shared secret without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{SECRET, TestApp, decode};
use zengate_testkit::eventually;

const NEW_SECRET: &str = "rotated-widget-secret-fedcba9876543210";

#[tokio::test]
async fn file_change_is_picked_up_by_polling() {
    let app = TestApp::start_with(|c| c.secret_poll = Duration::from_millis(100)).await;
    let token = app.add_user("Rot", "rot@example.com", None).await;
    let before = TestApp::jwt_of(app.widget(&token).await).await;
    assert!(decode(&before, SECRET).is_some());

    std::fs::write(&app.secret_file, format!("{NEW_SECRET}\n")).unwrap();
    let after = eventually("new secret in use", Duration::from_secs(10), || async {
        let jwt = TestApp::jwt_of(app.widget(&token).await).await;
        decode(&jwt, NEW_SECRET).is_some().then_some(jwt)
    })
    .await;
    assert!(
        decode(&after, SECRET).is_none(),
        "old secret no longer signs"
    );

    // A broken file keeps the current keys.
    std::fs::write(&app.secret_file, "").unwrap();
    assert!(app.keys.reload().is_err());
    let still = TestApp::jwt_of(app.chat(&token).await).await;
    assert!(decode(&still, NEW_SECRET).is_some());
}

#[tokio::test]
async fn sighup_reloads() {
    let app = TestApp::start().await; // polling every hour: only SIGHUP can reload
    let token = app.add_user("Hup", "hup@example.com", None).await;
    std::fs::write(&app.secret_file, NEW_SECRET).unwrap();
    let jwt = TestApp::jwt_of(app.widget(&token).await).await;
    assert!(decode(&jwt, SECRET).is_some(), "no reload yet");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let jwt = eventually("SIGHUP reload", Duration::from_secs(10), || async {
        let jwt = TestApp::jwt_of(app.widget(&token).await).await;
        decode(&jwt, NEW_SECRET).is_some().then_some(jwt)
    })
    .await;
    assert!(decode(&jwt, SECRET).is_none());
}

#[tokio::test]
async fn explicit_reload_swaps_keys_for_in_process_issuance() {
    let app = TestApp::start().await;
    std::fs::write(&app.secret_file, NEW_SECRET).unwrap();
    assert_eq!(app.keys.reload().unwrap(), auth::keys::Reload::Changed);
    assert_eq!(app.keys.reload().unwrap(), auth::keys::Reload::Unchanged);
    let user = auth::users::UserRecord {
        name: "R".into(),
        email: "r@example.com".into(),
        external_id: "r".into(),
        email_verified: false,
        created_at: None,
    };
    let issued = app
        .issuer
        .issue(auth::issue::Kind::Chat, &user, "000000000000", None)
        .unwrap();
    assert!(decode(&issued.jwt, NEW_SECRET).is_some());
    assert!(decode(&issued.jwt, SECRET).is_none());
}
