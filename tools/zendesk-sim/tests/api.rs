//! The simulated API's own contract: authentication, Zendesk's error shapes,
//! idempotency, explicit `public`, and the `/__sim` control routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::*;

async fn send(req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn basic_auth_is_required_and_checked() {
    let sim = sim(None).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v2/users/me.json", sim.base_url());

    let (status, _, body) = send(http.get(&url)).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"error": "Couldn't authenticate you"}));

    let (status, _, _) = send(
        http.get(&url)
            .header("authorization", basic(EMAIL, "wrong")),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = send(
        http.get(&url)
            .header("authorization", basic("other@acme.test", TOKEN)),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = send(
        http.get(&url)
            .header("authorization", format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(status, 401);

    let (status, _, body) = send(http.get(&url).header("authorization", basic(EMAIL, TOKEN))).await;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["id"], json!(sim.api_user().id));
    assert_eq!(body["user"]["email"], EMAIL);

    // Every API request is recorded, refused ones included, with its headers.
    let recorded = sim.requests();
    assert_eq!(recorded.len(), 5);
    assert_eq!(recorded[0].header("authorization"), None);
    assert_eq!(
        recorded[4].header("authorization"),
        Some(basic(EMAIL, TOKEN).as_str())
    );
}

#[tokio::test]
async fn zendesk_shapes_for_errors_idempotency_and_public() {
    let sim = sim(None).await;
    let http = reqwest::Client::new();
    let auth = basic(EMAIL, TOKEN);
    let base = sim.base_url();

    let (status, _, body) = send(
        http.get(format!("{base}/api/v2/tickets/123.json"))
            .header("authorization", &auth),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "RecordNotFound");

    let create = json!({"ticket": {"subject": "s", "comment": {"body": "b", "public": false},
        "requester": {"name": "R", "email": "r@example.test"}, "priority": "HIGH"}});
    let post = || {
        http.post(format!("{base}/api/v2/tickets.json"))
            .header("authorization", &auth)
            .header("idempotency-key", "k-1")
    };
    let (status, headers, first) = send(post().json(&create)).await;
    assert_eq!(status, 201);
    assert_eq!(headers["x-idempotency-lookup"], "miss");
    assert_eq!(
        first["ticket"]["id"],
        json!(zendesk_sim::DEFAULT_FIRST_TICKET_ID)
    );
    assert_eq!(first["ticket"]["priority"], "high");
    let (status, headers, replay) = send(post().json(&create)).await;
    assert_eq!(status, 201);
    assert_eq!(headers["x-idempotency-lookup"], "hit");
    assert_eq!(replay, first);
    let mut changed = create.clone();
    changed["ticket"]["subject"] = json!("other");
    let (status, _, body) = send(post().json(&changed)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "IdempotentRequestError");
    assert_eq!(sim.tickets().len(), 1);

    let id = sim.tickets()[0].id;
    let put = |body: Value| {
        http.put(format!("{base}/api/v2/tickets/{id}.json"))
            .header("authorization", &auth)
            .json(&body)
    };
    let (status, _, body) = send(put(json!({"ticket": {"comment": {"body": "no flag"}}}))).await;
    assert_eq!(status, 400, "a comment without explicit public is refused");
    assert_eq!(body["error"], "InvalidValue");
    let (status, _, body) = send(put(json!({"ticket": {"status": "bogus"}}))).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"], "RecordInvalid");
    assert_eq!(sim.comments(id).len(), 1);
    let (status, _, body) = send(put(
        json!({"ticket": {"comment": {"body": "ok", "public": true}, "additional_tags": ["a"]}}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["ticket"]["tags"], json!(["a"]));
    assert_eq!(body["ticket"]["status"], "open");
    assert_eq!(sim.comments(id).len(), 2);
}

#[tokio::test]
async fn control_routes_drive_and_inspect_the_simulator() {
    let sim = sim(None).await;
    let http = reqwest::Client::new();
    let base = sim.base_url();

    let (status, _, body) = send(http.post(format!("{base}/__sim/tickets")).json(&json!({
        "subject": "From the CLI", "body": "hello", "requester_name": "Ada",
        "requester_email": "ada@example.test"
    })))
    .await;
    assert_eq!(status, 201);
    let id = body["ticket"]["id"].as_u64().unwrap();
    assert_eq!(id, zendesk_sim::DEFAULT_FIRST_TICKET_ID);

    let (status, _, _) = send(
        http.post(format!("{base}/__sim/tickets/{id}/comments"))
            .json(&json!({"body": "follow-up"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _, _) = send(
        http.post(format!("{base}/__sim/tickets/1/comments"))
            .json(&json!({"body": "nobody"})),
    )
    .await;
    assert_eq!(status, 404);

    let (status, _, body) =
        send(http.get(format!("{base}/__sim/tickets/{id}/comments?page[size]=1"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["comments"][0]["body"], "hello");
    assert_eq!(body["meta"]["has_more"], true);
    let cursor = body["meta"]["after_cursor"].as_str().unwrap();
    let (_, _, body) = send(http.get(format!(
        "{base}/__sim/tickets/{id}/comments?page[size]=1&page[after]={cursor}"
    )))
    .await;
    assert_eq!(body["comments"][0]["body"], "follow-up");
    assert_eq!(body["meta"]["has_more"], false);
    assert_eq!(body["links"]["next"], Value::Null);

    let (status, _, _) = send(http.post(format!("{base}/__sim/faults")).json(&json!({
        "path_prefix": "/api/v2/tickets/", "status": 429, "retry_after": 7, "times": 1
    })))
    .await;
    assert_eq!(status, 201);
    let resp = http
        .get(format!("{base}/api/v2/tickets/{id}.json"))
        .header("authorization", basic(EMAIL, TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let resp = http
        .get(format!("{base}/api/v2/tickets/{id}.json"))
        .header("authorization", basic(EMAIL, TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the fault applied once");

    let (_, _, body) = send(http.get(format!("{base}/__sim/requests"))).await;
    let requests = body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "only API requests are recorded");
    assert_eq!(requests[0]["method"], "GET");
    assert_eq!(requests[0]["path"], format!("/api/v2/tickets/{id}.json"));
}
