//! The browser-facing hardening of the approval service, against the real
//! service (port 0, private NATS and Redis): security headers on every page,
//! the event stream opened only with single-use expiring tickets, the
//! failed-authentication limit per client address, and start-up refusal of
//! weak approver tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use approval::ApprovalConfig;
use reqwest::Response;
use serde_json::Value;
use support::{ALICE, Infra, Svc, reply_request, unique_ticket};
use zengate_runtime::Env;
use zengate_testkit::eventually;

fn header<'a>(res: &'a Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing on {}", res.url()))
        .to_str()
        .unwrap()
}

/// The headers every page must carry, and a CSP without inline script.
fn assert_page_headers(res: &Response) {
    assert_eq!(header(res, "x-frame-options"), "DENY");
    assert_eq!(header(res, "x-content-type-options"), "nosniff");
    assert_eq!(header(res, "referrer-policy"), "no-referrer");
    let csp = header(res, "content-security-policy");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(name))
            .map(str::to_owned)
    };
    // scripts: nothing, or this service only
    let scripts = directive("script-src")
        .or_else(|| directive("default-src"))
        .unwrap();
    for src in scripts.split_whitespace().skip(1) {
        assert!(["'self'", "'none'"].contains(&src), "{csp}");
    }
}

async fn ticket(svc: &Svc, token: &str) -> (u16, Value) {
    let res = svc
        .post("/v1/events/ticket", Some(token))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    if status == 200 {
        assert_eq!(header(&res, "cache-control"), "no-store");
    }
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn open_stream(svc: &Svc, query: &str) -> Response {
    svc.get(&format!("/v1/events?{query}"), None)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_carry_security_headers_and_no_inline_code() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;

    let res = svc.get("/", None).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_page_headers(&res);
    let csp = header(&res, "content-security-policy").to_owned();
    assert!(csp.contains("style-src 'self'"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("<script>"),
        "inline script left in the console"
    );
    assert!(!html.contains("<style"), "inline style left in the console");
    assert!(!html.contains(" on"), "inline event handler attribute");
    assert!(html.contains(r#"<script src="/assets/console.js" defer></script>"#));

    for (path, kind) in [
        ("/assets/console.js", "text/javascript"),
        ("/assets/console.css", "text/css"),
        ("/assets/page.css", "text/css"),
    ] {
        let res = svc.get(path, None).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(header(&res, "content-type").starts_with(kind), "{path}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert!(!res.text().await.unwrap().is_empty());
    }
    let js = svc.text("/assets/console.js").await;
    assert!(js.contains("/v1/events/ticket"));
    assert!(!js.contains("?token="));

    // Resume pages: the confirmation page and its error pages.
    let ticket_id = unique_ticket();
    let req = reply_request(&ticket_id, "resume page body");
    infra.publish_request(&req).await;
    let item = svc.wait_item(&req.approval_id, Some("pending")).await;
    let link = item["links"]["approve"].as_str().unwrap();
    let path_and_query = &link[link.find("/webhook/").unwrap()..];
    let res = svc.get(path_and_query, None).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_page_headers(&res);
    let csp = header(&res, "content-security-policy").to_owned();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"<link rel="stylesheet" href="/assets/page.css">"#));
    assert!(!html.contains("<style") && !html.contains("<script"));
    let res = svc
        .get(
            "/webhook/resume/nope?decision=approve&expires=1&signature=00",
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_page_headers(&res);

    // JSON answers carry them too, with a CSP that loads nothing.
    let res = svc.get("/v1/approvals", Some(ALICE)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-frame-options"), "DENY");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&res, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    svc.stop().await;
}

#[tokio::test]
async fn event_stream_takes_single_use_tickets_not_tokens() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;

    // The approver token in the URL is refused outright.
    let res = open_stream(&svc, &format!("token={ALICE}")).await;
    assert_eq!(res.status(), 401);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "token_in_url");
    // No ticket, or a made-up one.
    let res = open_stream(&svc, "").await;
    assert_eq!(res.status(), 401);
    let res = open_stream(&svc, &format!("ticket={}", "a".repeat(64))).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_ticket"
    );

    // A ticket needs the bearer token.
    assert_eq!(ticket(&svc, "not-a-token").await.0, 401);
    let (status, t) = ticket(&svc, ALICE).await;
    assert_eq!(status, 200);
    assert_eq!(t["expires_in"], 30);
    let t = t["ticket"].as_str().unwrap().to_owned();
    assert_eq!(t.len(), 64);

    // It opens the stream once, and the stream delivers changes.
    let mut stream = open_stream(&svc, &format!("ticket={t}")).await;
    assert_eq!(stream.status(), 200);
    assert!(header(&stream, "content-type").starts_with("text/event-stream"));
    let req = reply_request(&unique_ticket(), "streamed");
    infra.publish_request(&req).await;
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains(&req.approval_id) {
            let chunk = stream.chunk().await.unwrap().expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("an item event arrives");
    assert!(seen.contains("event: item"), "{seen}");

    let again = open_stream(&svc, &format!("ticket={t}")).await;
    assert_eq!(again.status(), 401, "a ticket works once");
    drop(stream);
    svc.stop().await;
}

#[tokio::test]
async fn stream_tickets_expire() {
    let infra = Infra::start().await;
    let svc = Svc::start_with(&infra, |c| c.stream_ticket_ttl = Duration::from_secs(1)).await;
    let (status, t) = ticket(&svc, ALICE).await;
    assert_eq!(status, 200);
    assert_eq!(t["expires_in"], 1);
    let t = t["ticket"].as_str().unwrap().to_owned();
    // Unused, it stops working once its time is up (Redis expiry; polled, not slept).
    eventually("the ticket expires", Duration::from_secs(5), || async {
        let client = redis::Client::open(infra.redis.url()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("zengate:approval:stream-ticket:*")
            .query_async(&mut conn)
            .await
            .ok()?;
        keys.is_empty().then_some(())
    })
    .await;
    let res = open_stream(&svc, &format!("ticket={t}")).await;
    assert_eq!(res.status(), 401);
    svc.stop().await;
}

async fn list_as(svc: &Svc, token: &str, forwarded_for: Option<&str>) -> Response {
    let mut req = svc.get("/v1/approvals", Some(token));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn failed_authentications_are_limited_per_client_address() {
    let infra = Infra::start().await;
    let svc = Svc::start_with(&infra, |c| {
        c.auth_failure_limit = 3;
        c.trusted_proxies =
            zengate_runtime::client_ip::TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap()]);
    })
    .await;
    let mallory = Some("198.51.100.7");
    for i in 0..3 {
        let res = list_as(&svc, &format!("wrong-token-{i}"), mallory).await;
        assert_eq!(res.status(), 401, "failure {i}");
    }
    // Limit reached: further failures are refused until the window ends...
    let res = list_as(&svc, "wrong-token-3", mallory).await;
    assert_eq!(res.status(), 429);
    let retry: u64 = header(&res, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "rate_limited");
    assert!(err["message"].is_string());
    // ... but a valid token still works: nobody can lock an approver out by
    // failing from the same address.
    assert_eq!(list_as(&svc, ALICE, mallory).await.status(), 200);
    // Tickets and the stream count and obey the same limit.
    assert_eq!(
        svc.post("/v1/events/ticket", Some("wrong-token-4"))
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
    let res = svc
        .get("/v1/events?ticket=x", None)
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);

    // Another client behind the same proxy is unaffected, so is the proxy.
    assert_eq!(
        list_as(&svc, ALICE, Some("198.51.100.8")).await.status(),
        200
    );
    assert_eq!(list_as(&svc, ALICE, None).await.status(), 200);
    // A spoofed leftmost hop does not escape the limit.
    assert_eq!(
        list_as(&svc, "wrong-token-5", Some("203.0.113.1, 198.51.100.7"))
            .await
            .status(),
        429
    );

    // Garbage in the header: the client is unknown and shares one bucket,
    // never the proxy's own.
    for i in 0..3 {
        let res = list_as(&svc, &format!("bad-{i}"), Some("1.2.3.4, not-an-ip")).await;
        assert_eq!(res.status(), 401);
    }
    assert_eq!(
        list_as(&svc, "bad-3", Some("garbage")).await.status(),
        429,
        "unknown clients share the `unknown` bucket"
    );
    assert_eq!(list_as(&svc, ALICE, None).await.status(), 200);
    let client = redis::Client::open(infra.redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("zengate:approval:auth-fail:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "zengate:approval:auth-fail:198.51.100.7",
            "zengate:approval:auth-fail:unknown"
        ]
    );
    svc.stop().await;
}

#[tokio::test]
async fn failure_limit_without_a_proxy_keys_on_the_peer_and_degrades_open() {
    let mut infra = Infra::start().await;
    let svc = Svc::start_with(&infra, |c| c.auth_failure_limit = 2).await;
    // Not a trusted proxy: the header is ignored, the peer is the client.
    for i in 0..2 {
        let res = list_as(&svc, &format!("wrong-{i}"), Some(&format!("10.0.0.{i}"))).await;
        assert_eq!(res.status(), 401);
    }
    assert_eq!(
        list_as(&svc, "wrong-2", Some("10.0.0.9")).await.status(),
        429
    );
    assert_eq!(list_as(&svc, ALICE, Some("10.0.0.9")).await.status(), 200);

    // Redis down: the limit is skipped rather than locking approvers out.
    infra.redis.stop().await;
    assert_eq!(list_as(&svc, ALICE, None).await.status(), 200);
    assert_eq!(list_as(&svc, "wrong-again", None).await.status(), 401);
    // ... but stream tickets live in Redis, so they are unavailable.
    assert_eq!(ticket(&svc, ALICE).await.0, 503);
    svc.stop().await;
}

#[tokio::test]
async fn weak_approver_tokens_are_refused_at_start_up() {
    let base = |tokens: &str| {
        Env::from_pairs([
            ("ZENDESK_ACCOUNT_ID", "42"),
            ("ZENDESK_JWT_SHARED_SECRET", "jwt-secret"),
            ("APPROVAL_RESUME_SECRET", "resume-secret-0123456789"),
            ("APPROVER_TOKENS", tokens),
            (
                "ZENGATE_RELEASE_SIGNING_SECRET",
                "release-key-0123456789abcdef0123456789",
            ),
        ])
    };
    let good = "a".repeat(40);
    for weak in [
        "short-token",
        "zengate-demo-approver-token",
        "change-me-approver-token",
        "dev-approver-token",
        "REPLACE_ME_WITH_A_RANDOM_TOKEN_OF_32_CHARACTERS_OR_MORE",
    ] {
        let e = ApprovalConfig::from_env(&base(&format!("alice:{good},dana:{weak}"))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("APPROVER_TOKENS"), "{msg}");
        assert!(msg.contains("approver dana"), "{msg}");
        assert!(!msg.contains(weak), "{msg} leaks the token");
    }
    assert!(ApprovalConfig::from_env(&base(&format!("alice:{good}"))).is_ok());
}
