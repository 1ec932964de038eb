//! The Redis user store behind `zengate users`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use auth::users::{
    NewUser, RedisUsers, Selector, TokenShape, USER_INDEX_KEY, USER_KEY_PREFIX, UserLookup,
    added_report, check_token, token_sha256,
};
use zengate_runtime::redis_store::RedisStore;
use zengate_testkit::RedisServer;

fn new_user(name: &str, email: &str, ext: Option<&str>) -> NewUser {
    NewUser {
        name: name.into(),
        email: email.into(),
        external_id: ext.map(str::to_owned),
        email_verified: false,
    }
}

#[tokio::test]
async fn add_list_remove() {
    let redis = RedisServer::start().await;
    let store = Arc::new(RedisStore::from_url(&redis.url(), Duration::from_secs(2)).unwrap());
    let users = RedisUsers::new(store.clone());

    let (token, record) = users
        .add(new_user("Ada", "ada@example.com", Some("ext-ada")))
        .await
        .unwrap();
    let token = token.expose().to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(check_token(Some(&token)), TokenShape::Ok);

    // only the SHA-256 is stored
    let keys: Vec<String> = store.query(redis::cmd("KEYS").arg("*")).await.unwrap();
    assert!(keys.iter().all(|k| !k.contains(&token)));
    assert!(keys.contains(&format!("{USER_KEY_PREFIX}{}", token_sha256(&token))));
    assert!(keys.contains(&USER_INDEX_KEY.to_owned()));
    let dump: Vec<Option<String>> = store
        .query(redis::cmd("MGET").arg(&keys[..1]))
        .await
        .unwrap_or_default();
    assert!(dump.iter().flatten().all(|v| !v.contains(&token)));

    // the report ends with the token alone on its line
    let report = added_report(&record, &token);
    assert_eq!(report.lines().last().unwrap(), token);
    assert_eq!(report.matches(&token).count(), 1);

    let found = users.lookup(&token_sha256(&token)).await.unwrap().unwrap();
    assert_eq!(found.external_id, "ext-ada");
    assert!(found.created_at.is_some());

    let (t2, _) = users
        .add(new_user("Bob", "bob@example.com", None))
        .await
        .unwrap();
    let (t3, _) = users
        .add(new_user("Bob again", "BOB@example.com", None))
        .await
        .unwrap();
    let listed = users.list().await.unwrap();
    assert_eq!(listed.len(), 3);
    let rendered = format!("{listed:?}");
    for t in [&token, t2.expose(), t3.expose()] {
        assert!(!rendered.contains(t), "list shows a token");
    }

    assert_eq!(
        users
            .remove(&Selector::Email("bob@example.com".into()))
            .await
            .unwrap(),
        2
    );
    assert!(
        users
            .lookup(&token_sha256(t2.expose()))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        users
            .remove(&Selector::ExternalId("ext-ada".into()))
            .await
            .unwrap(),
        1
    );
    assert!(users.list().await.unwrap().is_empty());
    assert_eq!(
        users
            .remove(&Selector::ExternalId("nobody".into()))
            .await
            .unwrap(),
        0
    );

    // invalid input refused
    assert!(
        users
            .add(new_user("", "x@example.com", None))
            .await
            .is_err()
    );
    assert!(
        users
            .add(new_user("X", "not-an-email", None))
            .await
            .is_err()
    );
    let long = "x".repeat(256);
    assert!(
        users
            .add(new_user("X", "x@example.com", Some(&long)))
            .await
            .is_err()
    );
}
