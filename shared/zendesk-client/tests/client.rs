//! The client against the simulator: exact requests, refusals before any
//! request, retries, typed errors, ids above 2^53, pagination, idempotency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use zendesk_client::{
    ClientConfig, ClientError, CommentInput, Credentials, NewTicket, TicketUpdate, ZendeskClient,
};
use zendesk_sim::Fault;
use zengate_core::Secret;
use zengate_runtime::Env;

const ABOVE_2_53: u64 = 9_007_199_254_740_993;

fn fault(
    prefix: &str,
    method: Option<&str>,
    status: u16,
    retry_after: Option<u64>,
    times: u32,
) -> Fault {
    Fault {
        path_prefix: prefix.to_owned(),
        method: method.map(str::to_owned),
        status,
        retry_after,
        times,
        latency: None,
    }
}

#[tokio::test]
async fn get_ticket_sends_the_exact_url_method_and_authorization() {
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    assert_eq!(id, ABOVE_2_53);
    let client = client(&sim);
    assert_eq!(client.origin(), sim.base_url());

    let ticket = client.get_ticket(id).await.unwrap();
    assert_eq!(ticket.id, ABOVE_2_53, "id above 2^53 must be exact");
    assert_eq!(ticket.subject.as_deref(), Some("Printer on fire"));
    assert_eq!(ticket.status.as_deref(), Some("new"));
    assert_eq!(ticket.channel.as_deref(), Some("web"));
    assert_eq!(
        ticket.requester_id,
        Some(sim.ticket(id).unwrap().requester_id)
    );

    let requests = sim.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/api/v2/tickets/9007199254740993.json");
    assert_eq!(r.query, None);
    assert_eq!(r.header("authorization"), Some(expected_basic().as_str()));
    assert_eq!(r.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn oauth_sends_a_bearer_token() {
    let sim = sim().await;
    let mut config = config(&sim);
    config.credentials = Credentials::OAuth {
        token: Secret::new("oauth-abc"),
    };
    let err = ZendeskClient::new(config).unwrap().me().await.unwrap_err();
    // The simulator only knows Basic auth, so Zendesk's refusal comes back typed.
    assert!(
        matches!(err, ClientError::Api { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(
        sim.requests()[0].header("authorization"),
        Some("Bearer oauth-abc")
    );
}

#[tokio::test]
async fn hostile_subdomains_and_base_urls_are_refused_before_any_request() {
    let sim = sim().await;
    let long = "a".repeat(64);
    for subdomain in [
        "https://attacker.example",
        "a.b",
        long.as_str(),
        "",
        "acme/../x",
        "acme:8443",
    ] {
        let mut c = config(&sim);
        c.subdomain = subdomain.to_owned();
        let err = ZendeskClient::new(c).unwrap_err();
        assert!(
            matches!(err, ClientError::InvalidConfig(_)),
            "{subdomain:?}: {err:?}"
        );

        let env = Env::from_pairs([
            ("ZENDESK_SUBDOMAIN", subdomain),
            ("ZENDESK_EMAIL", EMAIL),
            ("ZENDESK_API_TOKEN", TOKEN),
        ]);
        let err = ClientConfig::from_env(&env).unwrap_err().to_string();
        assert!(err.starts_with("ZENDESK_SUBDOMAIN"), "{subdomain:?}: {err}");
    }
    for base in [
        "http://zendesk.example",
        "http://10.1.2.3:8090",
        "http://127.0.0.1.attacker.example",
        "https://user:pass@proxy.example",
        "file:///etc/passwd",
    ] {
        let mut c = config(&sim);
        c.base_url_override = Some(base.to_owned());
        let err = ZendeskClient::new(c).unwrap_err();
        assert!(
            matches!(err, ClientError::InvalidConfig(_)),
            "{base}: {err:?}"
        );
    }
    let client = client(&sim);
    assert_eq!(
        client.get_ticket(0).await.unwrap_err(),
        ClientError::InvalidId
    );
    assert_eq!(
        client.list_comments(0, 10).await.unwrap_err(),
        ClientError::InvalidId
    );
    let update = TicketUpdate {
        status: Some("open".into()),
        ..Default::default()
    };
    assert_eq!(
        client.update_ticket(0, &update).await.unwrap_err(),
        ClientError::InvalidId
    );
    let err = client
        .create_ticket(&new_ticket("x"), &"k".repeat(256))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidRequest(_)), "{err:?}");
    assert!(
        sim.requests().is_empty(),
        "nothing may reach the API: {:?}",
        sim.requests()
    );
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_waited_out_then_succeeds() {
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    sim.inject(fault("/api/v2/tickets/", Some("GET"), 429, Some(1), 1));
    let mut config = config(&sim);
    config.max_backoff = Duration::from_secs(2);
    let client = ZendeskClient::new(config).unwrap();

    let started = Instant::now();
    let ticket = client.get_ticket(id).await.unwrap();
    assert_eq!(ticket.id, id);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After must be honoured"
    );
    assert_eq!(sim.requests().len(), 2);
}

#[tokio::test]
async fn retry_after_beyond_the_maximum_backoff_fails_at_once() {
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    sim.inject(fault("/api/v2/tickets/", None, 429, Some(30), 1));
    let err = client(&sim).get_ticket(id).await.unwrap_err();
    assert_eq!(
        err,
        ClientError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    assert!(err.is_retryable());
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn service_unavailable_exhausts_the_attempts_with_a_typed_error() {
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    sim.inject(fault("/api/v2/", None, 503, None, 100));
    let mut config = config(&sim);
    config.max_attempts = 3;
    let err = ZendeskClient::new(config)
        .unwrap()
        .get_ticket(id)
        .await
        .unwrap_err();
    match &err {
        ClientError::Api {
            status: 503, error, ..
        } => assert_eq!(error, "ServiceUnavailable"),
        other => panic!("expected a 503 Api error, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(sim.requests().len(), 3);
}

#[tokio::test]
async fn not_found_is_typed_and_not_retried() {
    let sim = sim().await;
    let err = client(&sim).get_ticket(4242).await.unwrap_err();
    match &err {
        ClientError::NotFound { path, description } => {
            assert_eq!(path, "/api/v2/tickets/4242.json");
            assert_eq!(description.as_deref(), Some("Not found"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn me_returns_the_api_user_with_an_exact_large_id() {
    let sim = sim().await;
    let me = client(&sim).me().await.unwrap();
    let expected = sim.api_user();
    assert!(expected.id > (1u64 << 53));
    assert_eq!(me.id, expected.id);
    assert_eq!(me.email.as_deref(), Some(EMAIL));
    assert_eq!(me.role.as_deref(), Some("admin"));
    assert_eq!(sim.requests()[0].path, "/api/v2/users/me.json");
}

#[tokio::test]
async fn list_comments_follows_cursor_pages_and_returns_newest_last() {
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    for i in 0..249 {
        sim.add_enduser_comment(id, &format!("follow-up {i}"))
            .unwrap();
    }
    let all = sim.comments(id);
    assert_eq!(all.len(), 250);
    let client = client(&sim);

    let got = client.list_comments(id, 1000).await.unwrap();
    assert_eq!(got.len(), 250);
    let got_ids: Vec<u64> = got.iter().map(|c| c.id).collect();
    let want_ids: Vec<u64> = all.iter().map(|c| c.id).collect();
    assert_eq!(
        got_ids, want_ids,
        "every comment once, oldest first, ids exact"
    );
    assert!(got.iter().all(|c| c.id > (1u64 << 53) && c.public));
    assert_eq!(got[0].body, "It is on fire. Please help.");
    assert_eq!(got[249].body, "follow-up 248");
    let pages = sim.requests();
    assert_eq!(pages.len(), 3, "250 comments in pages of 100");
    assert!(
        pages
            .iter()
            .all(|r| r.path == format!("/api/v2/tickets/{id}/comments.json"))
    );
    assert!(
        !pages[0]
            .query
            .as_deref()
            .unwrap()
            .contains("page%5Bafter%5D")
    );
    assert!(
        pages[1]
            .query
            .as_deref()
            .unwrap()
            .contains("page%5Bafter%5D=")
    );
    assert!(
        pages[2]
            .query
            .as_deref()
            .unwrap()
            .contains("page%5Bafter%5D=")
    );

    sim.clear_requests();
    let recent = client.list_comments(id, 5).await.unwrap();
    let recent_ids: Vec<u64> = recent.iter().map(|c| c.id).collect();
    assert_eq!(
        recent_ids,
        want_ids[245..].to_vec(),
        "the 5 newest, newest last"
    );
    assert_eq!(sim.requests().len(), 1);
    assert!(client.list_comments(id, 0).await.unwrap().is_empty());
}

fn new_ticket(subject: &str) -> NewTicket {
    NewTicket {
        subject: subject.to_owned(),
        comment_body: "Visitor asked for a call back.".to_owned(),
        public: false,
        requester_name: "Vera Visitor".to_owned(),
        requester_email: "vera@example.test".to_owned(),
        tags: vec!["zengate".to_owned()],
    }
}

#[tokio::test]
async fn create_ticket_with_the_same_idempotency_key_yields_one_ticket() {
    let sim = sim().await;
    let client = client(&sim);
    let first = client
        .create_ticket(&new_ticket("Call back"), "approval-1")
        .await
        .unwrap();
    let second = client
        .create_ticket(&new_ticket("Call back"), "approval-1")
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(first.id, ABOVE_2_53);
    assert_eq!(first.tags, vec!["zengate".to_owned()]);
    assert_eq!(sim.tickets().len(), 1);
    let comments = sim.comments(first.id);
    assert_eq!(comments.len(), 1);
    assert!(!comments[0].public);

    let posts = sim.requests();
    assert_eq!(posts.len(), 2);
    for r in &posts {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/api/v2/tickets.json")
        );
        assert_eq!(r.header("idempotency-key"), Some("approval-1"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json().unwrap();
        assert_eq!(body["ticket"]["requester"]["email"], "vera@example.test");
        assert_eq!(body["ticket"]["comment"]["public"], false);
    }

    let err = client
        .create_ticket(&new_ticket("Different"), "approval-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Idempotency { .. }), "{err:?}");
    assert!(!err.is_retryable() && !err.outcome_unknown());
    assert_eq!(sim.tickets().len(), 1);
}

#[tokio::test]
async fn create_ticket_is_retried_after_a_server_error_because_it_carries_a_key() {
    let sim = sim().await;
    sim.inject(fault("/api/v2/tickets.json", Some("POST"), 500, None, 1));
    let ticket = client(&sim)
        .create_ticket(&new_ticket("Retry me"), "approval-2")
        .await
        .unwrap();
    assert_eq!(sim.requests().len(), 2);
    assert_eq!(sim.tickets().len(), 1);
    assert_eq!(sim.tickets()[0].id, ticket.id);
}

#[tokio::test]
async fn update_ticket_sends_an_explicit_public_flag() {
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    let client = client(&sim);
    let update = TicketUpdate {
        comment: Some(CommentInput {
            body: "Internal: checking with facilities.".into(),
            public: false,
        }),
        status: Some("PENDING".into()),
        priority: Some("high".into()),
        add_tags: vec!["fire".into()],
    };
    let ticket = client.update_ticket(id, &update).await.unwrap();
    assert_eq!(ticket.status.as_deref(), Some("pending"));
    assert_eq!(ticket.priority.as_deref(), Some("high"));
    assert_eq!(ticket.tags, vec!["fire".to_owned()]);

    let r = &sim.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("PUT", "/api/v2/tickets/9007199254740993.json")
    );
    assert_eq!(r.header("idempotency-key"), None);
    let body = r.json().unwrap();
    assert_eq!(
        body["ticket"]["comment"]["public"],
        serde_json::Value::Bool(false)
    );
    assert_eq!(body["ticket"]["additional_tags"][0], "fire");

    let comments = sim.comments(id);
    assert_eq!(comments.len(), 2);
    assert!(!comments[1].public);
    assert_eq!(comments[1].author_id, sim.api_user().id);

    let public = TicketUpdate {
        comment: Some(CommentInput {
            body: "We are on it.".into(),
            public: true,
        }),
        ..Default::default()
    };
    client.update_ticket(id, &public).await.unwrap();
    assert_eq!(
        sim.requests()[1].json().unwrap()["ticket"]["comment"]["public"],
        true
    );
    assert!(sim.comments(id)[2].public);
}

#[tokio::test]
async fn a_put_is_retried_only_when_zendesk_refused_it() {
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    let client = client(&sim);
    let note = TicketUpdate {
        comment: Some(CommentInput {
            body: "note".into(),
            public: false,
        }),
        ..Default::default()
    };
    // 500: the write may have happened; surfaced, not repeated.
    sim.inject(fault("/api/v2/tickets/", Some("PUT"), 500, None, 1));
    let err = client.update_ticket(id, &note).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 500, .. }),
        "{err:?}"
    );
    assert!(
        err.outcome_unknown(),
        "a 500 on a PUT leaves the write in doubt"
    );
    assert_eq!(sim.requests().len(), 1);

    // 429 and 503: refused before processing; retried.
    sim.clear_requests();
    sim.inject(fault("/api/v2/tickets/", Some("PUT"), 429, Some(0), 1));
    sim.inject(fault("/api/v2/tickets/", Some("PUT"), 503, None, 1));
    client.update_ticket(id, &note).await.unwrap();
    assert_eq!(sim.requests().len(), 3);
    assert_eq!(sim.comments(id).len(), 2, "exactly one note written");
}

#[tokio::test]
async fn timeouts_are_retried_for_reads_but_not_for_puts() {
    let sim = sim().await;
    let id = enduser_ticket(&sim);
    let mut config = config(&sim);
    config.timeout = Duration::from_millis(300);
    config.max_attempts = 2;
    let client = ZendeskClient::new(config).unwrap();
    let slow = |method: &str| Fault {
        latency: Some(Duration::from_millis(1500)),
        ..fault("/api/v2/tickets/", Some(method), 0, None, 5)
    };
    sim.inject(slow("GET"));
    assert_eq!(
        client.get_ticket(id).await.unwrap_err(),
        ClientError::Timeout
    );
    assert_eq!(sim.requests().len(), 2);

    sim.clear_requests();
    sim.inject(slow("PUT"));
    let update = TicketUpdate {
        status: Some("open".into()),
        ..Default::default()
    };
    let err = client.update_ticket(id, &update).await.unwrap_err();
    assert_eq!(err, ClientError::Timeout);
    assert!(err.is_retryable() && err.outcome_unknown());
    assert_eq!(
        sim.requests().len(),
        1,
        "a PUT that may have arrived is not repeated"
    );
}

#[tokio::test]
async fn connection_refused_is_a_retryable_transport_error() {
    let port = zengate_testkit::free_port();
    let mut c = ClientConfig::new(
        "acme",
        Credentials::ApiToken {
            email: EMAIL.into(),
            token: Secret::new(TOKEN),
        },
    );
    c.base_url_override = Some(format!("http://127.0.0.1:{port}"));
    c.max_attempts = 2;
    c.max_backoff = Duration::from_millis(20);
    let err = ZendeskClient::new(c)
        .unwrap()
        .get_ticket(1)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn credentials_never_appear_in_debug_or_errors() {
    let sim = sim().await;
    let good = client(&sim);
    let mut wrong = config(&sim);
    wrong.credentials = Credentials::ApiToken {
        email: EMAIL.into(),
        token: Secret::new("wrong-token-QQ77"),
    };
    let wrong_debug = format!("{wrong:?}");
    let wrong = ZendeskClient::new(wrong).unwrap();
    let err = wrong.get_ticket(1).await.unwrap_err();
    match &err {
        ClientError::Api {
            status: 401, error, ..
        } => assert_eq!(error, "Couldn't authenticate you"),
        other => panic!("expected 401, got {other:?}"),
    }
    let basic = expected_basic();
    let encoded = basic.trim_start_matches("Basic ");
    let texts = [
        format!("{good:?}"),
        format!("{wrong:?}"),
        format!("{:?}", config(&sim)),
        wrong_debug,
        format!("{err}"),
        format!("{err:?}"),
    ];
    for text in &texts {
        for secret in [TOKEN, "wrong-token-QQ77", encoded] {
            assert!(!text.contains(secret), "{text} leaks a credential");
        }
    }
}
