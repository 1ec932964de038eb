//! The simulator as other processes use it: replies pushed with
//! `POST /__sim/script`, model calls on both wire formats, and what was
//! received read back from `GET /__sim/requests`; in-process on a free port
//! and as the `model-sim` binary with its default review note.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use model_sim::{ModelSim, ModelSimHandle};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn start() -> ModelSimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ModelSim::start(listener).await.unwrap()
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    let resp = http.post(url).json(&body).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `GET /__sim/requests`: `{requests, failures}`.
async fn requests(http: &reqwest::Client, base: &str) -> Value {
    let resp = http.get(format!("{base}/__sim/requests")).send().await;
    resp.unwrap().json().await.unwrap()
}

fn chat(messages: Value) -> Value {
    json!({"model": "sim-model", "messages": messages, "max_completion_tokens": 64})
}

#[tokio::test]
async fn a_script_pushed_over_http_is_answered_in_order_and_recorded() {
    let sim = start().await;
    let http = http();
    let base = format!("http://{}", sim.addr());
    let (status, queued) = post(
        &http,
        format!("{base}/__sim/script"),
        json!([
            {"kind": "tool_calls", "calls": [{"name": "get_ticket", "arguments": {}}]},
            {"kind": "status", "status": 429, "retry_after": 2},
            {"kind": "text", "text": "{\"done\":true}"},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(queued, json!({"queued": 3}));
    assert_eq!(sim.remaining(), 3);

    let chat_url = format!("{}/chat/completions", sim.base_url());
    let user = json!({"role": "user", "content": "ticket"});
    let (status, first) = post(&http, chat_url.clone(), chat(json!([user]))).await;
    assert_eq!(status, StatusCode::OK);
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_ticket");
    assert_eq!(call["function"]["arguments"], "{}");
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    let id = call["id"].as_str().unwrap().to_owned();

    let answered = chat(json!([
        user,
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": id, "content": "{\"id\":1}"},
    ]));
    let resp = http.post(&chat_url).json(&answered).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "2");
    let (status, done) = post(&http, chat_url.clone(), answered.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["choices"][0]["message"]["content"], "{\"done\":true}");
    assert_eq!(done["usage"]["prompt_tokens"], model_sim::PROMPT_TOKENS);
    // The script is used up and there is no default reply.
    let (status, _) = post(&http, chat_url.clone(), chat(json!([user]))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // A request breaking the documented schema is refused and recorded.
    let mut both = chat(json!([user]));
    both["max_tokens"] = json!(64);
    let (status, _) = post(&http, chat_url, both).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let log = requests(&http, &base).await;
    let requests = log["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[1]["body"], answered);
    assert!(
        requests[1]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "content-type" && h[1] == "application/json")
    );
    assert_eq!(
        log["failures"],
        json!([
            "a request arrived with no scripted reply",
            "malformed request: max_tokens and max_completion_tokens are both set",
        ])
    );
    assert_eq!(sim.calls().len(), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_malformed_script_is_refused_and_queues_nothing() {
    let sim = start().await;
    let http = http();
    let (status, _) = post(
        &http,
        format!("http://{}/__sim/script", sim.addr()),
        json!([{"kind": "text", "text": "ok"}, {"kind": "explode"}]),
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(sim.remaining(), 0);
    sim.shutdown().await;
}

/// The `model-sim` process answering an Anthropic Messages call with its
/// default review note, then a pushed script.
#[tokio::test]
async fn the_binary_serves_the_review_note_and_takes_scripts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_model-sim"))
        .env("MODEL_SIM_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = http();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{base}/__sim/requests")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "model-sim exited early"
        );
        assert!(Instant::now() < deadline, "model-sim did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages = |text: &str| {
        json!({
            "model": "sim",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
        })
    };
    let (status, note) = post(&http, format!("{base}/v1/messages"), messages("hi")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(note["stop_reason"], "end_turn");
    let text: Value = serde_json::from_str(note["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["action"], "internal_note");

    let (status, _) = post(
        &http,
        format!("{base}/__sim/script"),
        json!([{"kind": "status", "status": 529}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, overloaded) = post(&http, format!("{base}/v1/messages"), messages("again")).await;
    assert_eq!(status.as_u16(), 529);
    assert_eq!(overloaded["type"], "error");
    let log = requests(&http, &base).await;
    assert_eq!(log["requests"].as_array().unwrap().len(), 2);
    assert_eq!(log["requests"][1]["api"], "anthropic");
    assert_eq!(log["failures"], json!([]));
    child.kill().await.unwrap();
}
