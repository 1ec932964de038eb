//! Token issuance over HTTP against real NATS JetStream and Redis: exact
//! headers and claims, refusals, limits, CORS, lookup backends, health.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use auth::issue::Kind;
use auth::users::{UserRecord, token_sha256};
use futures::future::join_all;
use serde_json::{Value, json};
use support::{MSG_KID, MSG_OLD_SECRET, MSG_SECRET, SECRET, TestApp, decode, now, raw_header};

#[tokio::test]
async fn widget_and_chat_tokens_have_exact_header_and_claims() {
    let app = TestApp::start().await;
    let token = app
        .add_user("Ada Lovelace", "ada@example.com", Some("user-ada"))
        .await;
    for (kind, res) in [
        ("widget", app.widget(&token).await),
        ("chat", app.chat(&token).await),
    ] {
        let jwt = TestApp::jwt_of(res).await;
        assert_eq!(raw_header(&jwt), r#"{"alg":"HS256","typ":"JWT"}"#, "{kind}");
        assert!(decode(&jwt, "some-other-secret").is_none());
        let (header, claims) = decode(&jwt, SECRET).expect("verifies with the shared secret");
        assert_eq!(header, json!({"alg":"HS256","typ":"JWT"}));
        let obj = claims.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["email", "exp", "external_id", "iat", "jti", "name"],
            "{kind}"
        );
        assert_eq!(claims["name"], "Ada Lovelace");
        assert_eq!(claims["email"], "ada@example.com");
        assert_eq!(claims["external_id"], "user-ada");
        let iat = claims["iat"].as_i64().unwrap();
        let exp = claims["exp"].as_i64().unwrap();
        assert!((iat - now()).abs() <= 2, "iat is now");
        assert_eq!(exp - iat, 300);
        assert!(exp - iat <= 420);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 32);
        assert!(jti.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(
        app.metric("zengate_auth_issued_total{kind=\"widget\"}")
            .await,
        1.0
    );
    assert_eq!(
        app.metric("zengate_auth_issued_total{kind=\"chat\"}").await,
        1.0
    );
    assert!(app.metric("zengate_auth_issue_seconds_count").await >= 2.0);
}

#[tokio::test]
async fn ttl_follows_configuration() {
    let app = TestApp::start_with(|c| c.token_ttl = Duration::from_secs(420)).await;
    let token = app.add_user("T", "t@example.com", None).await;
    let jwt = TestApp::jwt_of(app.widget(&token).await).await;
    let (_, claims) = decode(&jwt, SECRET).unwrap();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        420
    );
    // generated external ids are stable per user record
    assert!(claims["external_id"].as_str().unwrap().starts_with("zg-"));
}

#[tokio::test]
async fn jti_unique_in_process_and_over_http() {
    let app = TestApp::start().await;
    let user = UserRecord {
        name: "Many".into(),
        email: "many@example.com".into(),
        external_id: "many".into(),
        email_verified: false,
        created_at: None,
    };
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        let issued = app
            .issuer
            .issue(Kind::Widget, &user, "abcdef012345", None)
            .unwrap();
        let (_, claims) = decode(&issued.jwt, SECRET).unwrap();
        assert_eq!(claims["jti"].as_str().unwrap(), issued.jti);
        assert!(seen.insert(issued.jti), "duplicate jti");
    }
    let token = app.add_user("Web", "web@example.com", None).await;
    let jwts = join_all((0..300).map(|_| async {
        let res = app.chat(&token).await;
        TestApp::jwt_of(res).await
    }))
    .await;
    for jwt in jwts {
        let (_, claims) = decode(&jwt, SECRET).unwrap();
        assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen.len(), 10_300);
}

async fn error_of(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap();
    assert!(v["message"].is_string(), "{v}");
    (status, v["error"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_refused() {
    let app = TestApp::start().await;
    // missing
    let res = app
        .http
        .post(app.url("/webhook/zendesk-jwt"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await, (400, "missing_user_token".into()));
    let res = app.widget("").await;
    assert_eq!(error_of(res).await, (400, "missing_user_token".into()));
    let res = app
        .http
        .get(app.url("/webhook/chat-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await, (400, "missing_user_token".into()));
    // malformed: too short, too long, bad charset, wrong scheme
    for bad in [
        "short",
        &"a".repeat(129),
        "abcdefgh%2Eijklmnopq",
        "abcd%20efghijklmnopq",
    ] {
        let res = app.widget(bad).await;
        assert_eq!(
            error_of(res).await,
            (400, "malformed_user_token".into()),
            "{bad}"
        );
    }
    let res = app
        .http
        .get(app.url("/webhook/chat-token"))
        .header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await, (400, "malformed_user_token".into()));
    // unknown
    let res = app.widget("unknown-but-well-formed-token").await;
    assert_eq!(error_of(res).await, (401, "unknown_user_token".into()));
    let res = app.chat("unknown-but-well-formed-token").await;
    assert_eq!(error_of(res).await, (401, "unknown_user_token".into()));

    assert_eq!(
        app.metric("zengate_auth_refusals_total{reason=\"missing_user_token\"}")
            .await,
        3.0
    );
    assert_eq!(
        app.metric("zengate_auth_refusals_total{reason=\"malformed_user_token\"}")
            .await,
        5.0
    );
    assert_eq!(
        app.metric("zengate_auth_refusals_total{reason=\"unknown_user_token\"}")
            .await,
        2.0
    );
    assert_eq!(app.audit_count().await, 0, "no audit for refusals");
}

#[tokio::test]
async fn malformed_tokens_are_refused_without_a_lookup() {
    let mut app = TestApp::start().await;
    // With Redis down a lookup would answer 503: a 400 proves none happened.
    app.infra.redis.stop().await;
    let res = app.widget("bad.token").await;
    assert_eq!(error_of(res).await, (400, "malformed_user_token".into()));
    let res = app.widget("well-formed-token-123").await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(error_of(res).await, (503, "lookup_unavailable".into()));
    assert_eq!(
        app.metric("zengate_auth_rate_limit_skipped_total").await,
        1.0
    );
}

#[tokio::test]
async fn rate_limits_per_token_and_per_ip() {
    let app = TestApp::start_with(|c| {
        c.rate_limit_per_token = 3;
        c.rate_limit_per_ip = 5;
    })
    .await;
    let a = app.add_user("A", "a@example.com", None).await;
    let b = app.add_user("B", "b@example.com", None).await;
    for _ in 0..3 {
        assert_eq!(app.widget(&a).await.status(), 200);
    }
    let res = app.chat(&a).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(error_of(res).await, (429, "rate_limited".into()));
    // another token still works until the per-IP limit: 5th request ok, 6th not
    assert_eq!(app.widget(&b).await.status(), 200);
    let res = app.widget(&b).await;
    assert_eq!(error_of(res).await, (429, "rate_limited".into()));
    assert_eq!(
        app.metric("zengate_auth_refusals_total{reason=\"rate_limited_token\"}")
            .await,
        1.0
    );
    assert_eq!(
        app.metric("zengate_auth_refusals_total{reason=\"rate_limited_ip\"}")
            .await,
        1.0
    );
}

/// Both counters are created with their window as expiry in the same
/// transaction that counts: a counter left without one would refuse its
/// token or address for good once it reached the limit.
#[tokio::test]
async fn rate_limit_counters_always_expire_with_their_window() {
    let app = TestApp::start_with(|c| {
        c.rate_limit_per_token = 10;
        c.rate_limit_per_ip = 10;
    })
    .await;
    let token = app.add_user("T", "t@example.com", None).await;
    for _ in 0..2 {
        assert_eq!(app.chat(&token).await.status(), 200);
    }
    let client = redis::Client::open(app.infra.redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("zengate:auth:rl:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let token_key = format!("zengate:auth:rl:token:{}", token_sha256(&token));
    assert!(keys.contains(&token_key), "{keys:?}");
    assert_eq!(
        keys.len(),
        2,
        "one counter per token and one per address: {keys:?}"
    );
    for key in keys {
        let (count, ttl): (u64, i64) = redis::pipe()
            .cmd("GET")
            .arg(&key)
            .cmd("TTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(count, 2, "{key}");
        assert!((1..=60).contains(&ttl), "{key} expires in {ttl} s");
    }
}

async fn ip_of(app: &TestApp) -> String {
    let audit = zengate_testkit::eventually("audit", Duration::from_secs(10), || async {
        app.audits().await.first().map(|(_, v)| v.clone())
    })
    .await;
    audit["client_ip"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn forwarded_for_only_from_trusted_proxies() {
    let app =
        TestApp::start_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let token = app.add_user("P", "p@example.com", None).await;
    let res = app
        .http
        .get(app.url("/webhook/chat-token"))
        .bearer_auth(&token)
        .header("x-forwarded-for", "198.51.100.7, 203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let untrusted = TestApp::start().await;
    let t2 = untrusted.add_user("Q", "q@example.com", None).await;
    let res = untrusted
        .http
        .get(untrusted.url("/webhook/chat-token"))
        .bearer_auth(&t2)
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(ip_of(&app).await, "203.0.113.5");
    assert_eq!(ip_of(&untrusted).await, "127.0.0.1");
}

#[tokio::test]
async fn messaging_tokens_carry_kid_and_zendesk_claims() {
    let app = TestApp::start_with(support::with_messaging).await;
    let token = app
        .add_user("Grace Hopper", "grace@example.com", Some("ext-grace"))
        .await;
    let post = app
        .http
        .post(app.url(&format!("/webhook/messaging-jwt?user_token={token}")))
        .send()
        .await
        .unwrap();
    let get = app
        .http
        .get(app.url("/webhook/messaging-token"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    for res in [post, get] {
        let jwt = TestApp::jwt_of(res).await;
        assert_eq!(
            raw_header(&jwt),
            format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{MSG_KID}"}}"#)
        );
        assert!(decode(&jwt, SECRET).is_none(), "not the widget secret");
        assert!(decode(&jwt, MSG_OLD_SECRET).is_none(), "not an older key");
        let (_, claims) = decode(&jwt, MSG_SECRET).expect("active messaging key");
        let exp = claims["exp"].as_i64().unwrap();
        assert!((exp - now() - 300).abs() <= 2);
        assert_eq!(
            claims,
            json!({
                "scope": "user",
                "external_id": "ext-grace",
                "name": "Grace Hopper",
                "email": "grace@example.com",
                "email_verified": false,
                "exp": exp,
            })
        );
    }
    assert_eq!(
        app.metric("zengate_auth_issued_total{kind=\"messaging\"}")
            .await,
        2.0
    );
    let keys = app.keys.current();
    assert_eq!(keys.messaging_kids(), [MSG_KID, support::MSG_OLD_KID]);
}

#[tokio::test]
async fn messaging_is_404_when_not_configured() {
    let app = TestApp::start().await;
    let token = app.add_user("N", "n@example.com", None).await;
    let res = app
        .http
        .post(app.url(&format!("/webhook/messaging-jwt?user_token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(res).await,
        (404, "messaging_not_configured".into())
    );
    let res = app
        .http
        .get(app.url("/webhook/messaging-token"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(res).await,
        (404, "messaging_not_configured".into())
    );
}

#[tokio::test]
async fn cors_only_for_allowed_origins() {
    let app =
        TestApp::start_with(|c| c.allowed_origins = vec!["https://shop.example".into()]).await;
    let token = app.add_user("C", "c@example.com", None).await;
    let pre = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/webhook/chat-token"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = pre("https://shop.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let denied = pre("https://evil.example").await.unwrap();
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
    let res = app
        .http
        .get(app.url("/webhook/chat-token"))
        .bearer_auth(&token)
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let res = app
        .http
        .get(app.url("/webhook/chat-token"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));

    // no origins configured: no cross-origin access at all
    let closed = TestApp::start().await;
    let res = closed
        .http
        .request(reqwest::Method::OPTIONS, closed.url("/webhook/chat-token"))
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn health_ready_metrics_and_demo() {
    let mut app = TestApp::start().await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let names: Vec<&str> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nats", "stream:ZENGATE", "redis"]);
    let text = app.text("/metrics").await;
    for series in [
        "zengate_auth_audit_buffered",
        "zengate_auth_audit_dropped_total",
        "zengate_auth_issue_seconds",
    ] {
        assert!(text.contains(series), "{series} missing");
    }
    let demo = app.http.get(app.url("/demo")).send().await.unwrap();
    assert_eq!(demo.status(), 200);
    let html = demo.text().await.unwrap();
    assert!(html.contains("jwtFn: function(callback)"));
    assert!(html.contains("fetch('/webhook/chat-token'"));
    // the only script tag is the page's own file: the widget script loads
    // only on request, and nothing runs inline
    for tag in html.split("<script").skip(1) {
        let open = &tag[..tag.find('>').unwrap()];
        assert_eq!(open, r#" src="/demo.js""#, "unexpected script tag");
    }
    assert!(html.contains("&lt;script id=\"ze-snippet\""));
    // Redis is required for readiness.
    app.infra.redis.stop().await;
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
}

/// The operator's directory, simulated: knows one hash, fails on another,
/// hangs on a third.
async fn directory(known: String, failing: String, slow: String) -> SocketAddr {
    use axum::Json;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/lookup",
        axum::routing::post(move |headers: axum::http::HeaderMap, Json(body): Json<Value>| {
            let (known, failing, slow) = (known.clone(), failing.clone(), slow.clone());
            async move {
                assert_eq!(headers["authorization"], "Bearer directory-key");
                let hash = body["user_token_sha256"].as_str().unwrap().to_owned();
                assert_eq!(body.as_object().unwrap().len(), 1);
                if hash == known {
                    Json(json!({"name": "Dir User", "email": "dir@example.com", "external_id": "dir-1"}))
                        .into_response()
                } else if hash == failing {
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                } else if hash == slow {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    StatusCode::NOT_FOUND.into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn http_callback_lookup_backend() {
    let known = "directory-known-token-1";
    let failing = "directory-failing-token";
    let slow = "directory-slow-token-00";
    let dir = directory(
        token_sha256(known),
        token_sha256(failing),
        token_sha256(slow),
    )
    .await;
    let app = TestApp::start_with(|c| {
        c.lookup = auth::config::LookupConfig::Http {
            url: format!("http://{dir}/lookup"),
            timeout: Duration::from_millis(300),
            authorization: Some(zengate_core::Secret::new("Bearer directory-key")),
        }
    })
    .await;
    let jwt = TestApp::jwt_of(app.widget(known).await).await;
    let (_, claims) = decode(&jwt, SECRET).unwrap();
    assert_eq!(claims["name"], "Dir User");
    assert_eq!(claims["external_id"], "dir-1");
    let res = app.widget("directory-unknown-token").await;
    assert_eq!(error_of(res).await, (401, "unknown_user_token".into()));
    let res = app.widget(failing).await;
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(error_of(res).await, (503, "lookup_unavailable".into()));
    let started = std::time::Instant::now();
    let res = app.widget(slow).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timeout applies"
    );
    assert_eq!(error_of(res).await, (503, "lookup_unavailable".into()));
}

/// `/openapi.json` documents exactly the routes the router serves, with the
/// statuses the handlers answer and the Bearer scheme of the browser endpoints.
#[tokio::test]
async fn openapi_documents_every_route() {
    let app = TestApp::start_with(support::with_messaging).await;
    let res = app
        .http
        .get(app.url(zengate_runtime::openapi::PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(doc["info"]["title"], "zengate auth");

    // Every route the router serves (besides the document itself).
    let served = [
        ("post", "/webhook/zendesk-jwt"),
        ("get", "/webhook/chat-token"),
        ("post", "/webhook/messaging-jwt"),
        ("get", "/webhook/messaging-token"),
        ("get", "/demo"),
        ("get", "/demo.js"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: HashSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let expected: HashSet<(String, String)> = served
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    // Each documented operation is really served: neither 404 nor 405.
    for (method, path) in served {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert!(
            ![404, 405].contains(&res.status().as_u16()),
            "{method} {path}: {}",
            res.status()
        );
    }
    let res = app
        .http
        .get(app.url("/webhook/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Token endpoints describe every refusal; browser ones need the Bearer scheme.
    for (method, path) in &served[..4] {
        let op = &paths[*path][*method];
        let statuses: Vec<&str> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for s in ["200", "400", "401", "408", "422", "429", "500", "503"] {
            assert!(statuses.contains(&s), "{method} {path} lacks {s}");
        }
        assert_eq!(
            statuses.contains(&"404"),
            path.contains("messaging"),
            "{path}"
        );
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/JwtBody"
        );
        let bearer = *method == "get";
        assert_eq!(op["security"] == json!([{"bearer": []}]), bearer, "{path}");
        assert_eq!(
            op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "user_token")),
            !bearer,
            "{path}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    app.stop().await;
}
