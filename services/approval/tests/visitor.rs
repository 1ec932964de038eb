//! Visitor ticket requests authenticated by the auth service's HS256 JWTs
//! (minted for zengate: `aud: zengate-approval`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{ACCOUNT, Infra, JWT_SECRET, Svc};
use time::OffsetDateTime;
use zengate_core::events::ProposalSource;

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn claims(jti: &str) -> Value {
    json!({"name": "Vera Visitor", "email": "vera@example.com", "external_id": format!("ext-{jti}"),
           "iat": now(), "exp": now() + 420, "jti": jti, "aud": "zengate-approval"})
}

fn sign(claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

fn unsigned(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(serde_json::to_vec(claims).unwrap())
    )
}

async fn ask(svc: &Svc, token: Option<&str>, body: Value) -> (u16, Value, Option<String>) {
    let res = svc
        .post("/v1/ticket-requests", token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, res.json().await.unwrap_or(Value::Null), retry)
}

fn body() -> Value {
    json!({"subject": "My order never arrived", "body": "Order 1234 is late."})
}

#[tokio::test]
async fn refuses_bad_tokens() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let mut cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("alg none", Some(unsigned(&claims("j-none")))),
        ("wrong key", Some(sign(&claims("j-key"), "another-secret"))),
        ("garbage", Some("a.b.c".into())),
    ];

    let mut expired = claims("j-exp");
    expired["iat"] = json!(now() - 3600);
    expired["exp"] = json!(now() - 600);
    cases.push(("expired", Some(sign(&expired, JWT_SECRET))));
    for missing in ["name", "email", "iat", "exp", "jti"] {
        let mut c = claims(&format!("j-missing-{missing}"));
        c.as_object_mut().unwrap().remove(missing);
        cases.push((missing, Some(sign(&c, JWT_SECRET))));
    }
    let mut future = claims("j-future");
    future["iat"] = json!(now() + 3600);
    cases.push(("iat in the future", Some(sign(&future, JWT_SECRET))));
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims("j-512"),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    cases.push(("HS512", Some(hs512)));
    let mut long = claims("j-long");
    long["exp"] = json!(now() + 421);
    cases.push(("lives longer than 420 s", Some(sign(&long, JWT_SECRET))));
    let mut early = claims("j-nbf");
    early["nbf"] = json!(now() + 300);
    cases.push(("nbf in the future", Some(sign(&early, JWT_SECRET))));
    let mut other = claims("j-aud");
    other["aud"] = json!("zendesk");
    cases.push(("another audience", Some(sign(&other, JWT_SECRET))));
    let mut zendesk = claims("j-zendesk");
    zendesk.as_object_mut().unwrap().remove("aud");
    cases.push((
        "a token for Zendesk (no aud)",
        Some(sign(&zendesk, JWT_SECRET)),
    ));

    for (what, token) in &cases {
        let (status, err, _) = ask(&svc, token.as_deref(), body()).await;
        assert_eq!(status, 401, "{what}");
        assert!(err["error"].is_string(), "{what}: {err}");
    }
    let res = svc
        .get("/v1/approvals?state=pending", Some(support::ALICE))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    assert_eq!(infra.count("zengate.approval.requested.>").await, 0);
}

#[tokio::test]
async fn held_as_create_ticket_with_claimed_requester_once() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let token = sign(&claims("jti-good"), JWT_SECRET);
    let mut b = body();
    // a requester in the body is ignored
    b["requester"] = json!({"name": "Mallory", "email": "mallory@evil.test"});
    b["name"] = json!("Mallory");
    b["email"] = json!("mallory@evil.test");
    let (status, v, _) = ask(&svc, Some(&token), b.clone()).await;
    assert_eq!(status, 202, "{v}");
    let id = v["approval_id"].as_str().unwrap().to_owned();
    assert_eq!(
        id,
        ProposalSource::TicketRequest {
            request_id: "jti-good".into()
        }
        .approval_id()
    );
    let item = svc.wait_item(&id, Some("pending")).await;
    let action = &item["request"]["action"];
    assert_eq!(action["type"], "create_ticket");
    assert_eq!(action["subject"], "My order never arrived");
    assert_eq!(action["requester"]["name"], "Vera Visitor");
    assert_eq!(action["requester"]["email"], "vera@example.com");
    assert!(!item.to_string().contains("mallory"));

    // also on the bus for other consumers
    let subject = format!("zengate.approval.requested.{ACCOUNT}.new");
    infra.wait_count(&subject, 1).await;
    let published = infra.last(&subject).await;
    assert_eq!(published["approval_id"], id.as_str());

    // the same token again: replay
    let (status, v, _) = ask(&svc, Some(&token), b).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(infra.count(&subject).await, 1);

    // approving releases a create_ticket on `.new`
    let res = svc
        .post(&format!("/v1/approvals/{id}/approve"), Some(support::ALICE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let released = format!("zengate.approval.released.{ACCOUNT}.new");
    infra.wait_count(&released, 1).await;
    assert_eq!(
        infra.last(&released).await["action"]["requester"]["email"],
        "vera@example.com"
    );

    // empty body fields are refused
    let (status, _, _) = ask(
        &svc,
        Some(&sign(&claims("jti-empty"), JWT_SECRET)),
        json!({"subject": " ", "body": "x"}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn rate_limited_per_visitor() {
    let infra = Infra::start().await;
    let svc = Svc::start_with(&infra, |c| c.visitor_rate_limit = 2).await;
    let mut statuses = Vec::new();
    let mut retry = None;
    for i in 0..4 {
        let mut c = claims(&format!("jti-rate-{i}"));
        c["external_id"] = json!("same-visitor");
        let (status, _, r) = ask(&svc, Some(&sign(&c, JWT_SECRET)), body()).await;
        statuses.push(status);
        retry = retry.or(r);
    }
    assert_eq!(statuses, [202, 202, 429, 429]);
    let secs: u64 = retry.expect("Retry-After on 429").parse().unwrap();
    assert!(secs > 0 && secs <= 600);
    // another visitor is unaffected
    let (status, _, _) = ask(&svc, Some(&sign(&claims("jti-other"), JWT_SECRET)), body()).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn only_tokens_for_zengate_with_full_jti_replay_key() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    // Zendesk's claims exactly (no aud): refused with a message saying why.
    let mut zendesk = claims("jti-for-zendesk");
    zendesk.as_object_mut().unwrap().remove("aud");
    let (status, err, _) = ask(&svc, Some(&sign(&zendesk, JWT_SECRET)), body()).await;
    assert_eq!(status, 401);
    assert_eq!(err["error"], "invalid_token");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("zengate-approval"), "{msg}");
    assert!(msg.contains("audience=zengate"), "{msg}");

    // nbf a little ahead (clock skew within the leeway) and a lifetime of
    // exactly 420 s are fine.
    let jti = "jti-nbf-in-leeway";
    let mut c = claims(jti);
    c["nbf"] = json!(now() + 20);
    let (status, v, _) = ask(&svc, Some(&sign(&c, JWT_SECRET)), body()).await;
    assert_eq!(status, 202, "{v}");

    // The replay key is the full SHA-256 of the jti, expiring with the token.
    let client = redis::Client::open(infra.redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let full = format!(
        "zengate:approval:jti:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(jti.as_bytes()))
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(&full)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 420 + 60, "ttl {ttl}");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("zengate:approval:jti:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, [full]);
}
