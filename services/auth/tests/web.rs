//! Browser-facing hardening of the auth service against the real service:
//! the demo page's CSP (Zendesk's widget hosts, no inline script) and
//! security headers, visitor tokens minted for zengate (`aud`), and the
//! client address when a trusted proxy forwards garbage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{SECRET, TestApp, decode};

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_str()
        .unwrap()
}

fn directive(csp: &str, name: &str) -> Vec<String> {
    csp.split(';')
        .map(str::trim)
        .find(|d| d.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("{name} missing in {csp}"))
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn demo_page_csp_allows_the_widget_and_no_inline_script() {
    let app = TestApp::start().await;
    let res = app.http.get(app.url("/demo")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-frame-options"), "DENY");
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(header(&res, "referrer-policy"), "no-referrer");
    let csp = header(&res, "content-security-policy").to_owned();
    let scripts = directive(&csp, "script-src");
    assert!(!scripts.iter().any(|s| s.contains("unsafe")), "{csp}");
    // what the snippet loads (Zendesk's documented hosts), and nothing else
    assert_eq!(
        scripts,
        [
            "'self'",
            "https://static.zdassets.com",
            "https://ekr.zdassets.com",
            "https://ekr.zendesk.com",
            "https://*.zendesk.com",
            "https://*.zopim.com"
        ]
    );
    let default = directive(&csp, "default-src");
    for host in [
        "wss://*.zendesk.com",
        "wss://*.zopim.com",
        "https://static.zdassets.com",
    ] {
        assert!(default.contains(&host.to_owned()), "{host}: {csp}");
    }
    assert_eq!(directive(&csp, "frame-ancestors"), ["'none'"]);
    assert_eq!(directive(&csp, "object-src"), ["'none'"]);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>"), "inline script on the demo page");

    let js = app.http.get(app.url("/demo.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(header(&js, "content-type").starts_with("text/javascript"));
    assert_eq!(header(&js, "x-content-type-options"), "nosniff");
    let js = js.text().await.unwrap();
    assert!(js.contains("https://static.zdassets.com/ekr/snippet.js?key="));
    assert!(js.contains("jwtFn"));

    // JSON answers: framing and sniffing forbidden, nothing may load.
    let res = app.chat("unknown-but-well-formed-token").await;
    assert_eq!(res.status(), 401);
    assert_eq!(header(&res, "x-frame-options"), "DENY");
    assert_eq!(
        header(&res, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    app.stop().await;
}

#[tokio::test]
async fn chat_token_for_zengate_carries_the_approval_audience() {
    let app = TestApp::start().await;
    let token = app
        .add_user("Vera Visitor", "vera@example.com", Some("vera-1"))
        .await;
    let get = |q: &'static str| {
        app.http
            .get(app.url(&format!("/webhook/chat-token{q}")))
            .bearer_auth(&token)
            .send()
    };
    let jwt = TestApp::jwt_of(get("?audience=zengate").await.unwrap()).await;
    let (header, claims) = decode(&jwt, SECRET).unwrap();
    assert_eq!(header, serde_json::json!({"alg":"HS256","typ":"JWT"}));
    let mut keys: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["aud", "email", "exp", "external_id", "iat", "jti", "name"]
    );
    assert_eq!(claims["aud"], auth::APPROVAL_AUDIENCE);
    assert_eq!(claims["aud"], "zengate-approval");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(lifetime <= 420, "{lifetime}");

    // Zendesk's token keeps exactly Zendesk's claims.
    let jwt = TestApp::jwt_of(get("").await.unwrap()).await;
    let (_, claims) = decode(&jwt, SECRET).unwrap();
    assert!(claims.get("aud").is_none(), "{claims}");

    // Any other audience is refused before a lookup.
    for q in [
        "?audience=zendesk",
        "?audience=",
        "?audience=zengate&audience=zengate",
    ] {
        let res = get(q).await.unwrap();
        assert_eq!(res.status(), 400, "{q}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"], "invalid_audience", "{q}");
    }
    assert_eq!(
        app.metric("zengate_auth_issued_total{kind=\"approval\"}")
            .await,
        1.0
    );
    // Audited under its own kind.
    let kinds = zengate_testkit::eventually("two audits", Duration::from_secs(10), || async {
        let a = app.audits().await;
        (a.len() >= 2).then(|| {
            a.iter()
                .map(|(_, v)| v["kind"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
    })
    .await;
    assert!(kinds.contains(&"approval".to_owned()), "{kinds:?}");
    app.stop().await;
}

#[tokio::test]
async fn garbage_forwarded_for_is_an_unknown_client_not_the_proxy() {
    let app =
        TestApp::start_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let token = app.add_user("G", "g@example.com", None).await;
    let res = app
        .http
        .get(app.url("/webhook/chat-token"))
        .bearer_auth(&token)
        .header("x-forwarded-for", "198.51.100.7, not-an-address")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let audit = zengate_testkit::eventually("audit", Duration::from_secs(10), || async {
        app.audits().await.first().map(|(_, v)| v.clone())
    })
    .await;
    assert_eq!(audit["client_ip"], "unknown");
    app.stop().await;
}
