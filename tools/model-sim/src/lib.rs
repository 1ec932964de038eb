//! A dev-only language model server for tests and the local stack. It speaks
//! the OpenAI Chat Completions (`POST /v1/chat/completions`) and Anthropic
//! Messages (`POST /v1/messages`) wire formats and answers from a script: a
//! queue of replies (tool calls, final text, HTTP errors with `Retry-After`,
//! garbage, delays). It records every request so tests can assert request
//! shapes, and checks that tool calls are answered in the next request and
//! that the request follows the documented schema (see [`shape`]). It can
//! also act like an OpenAI reasoning model that refuses some parameters
//! ([`ModelSimHandle::refuse_params`]).
//!
//! Tests start it in-process ([`ModelSim::start`]); other processes push
//! replies with `POST /__sim/script` and read `GET /__sim/requests`.

mod script;
pub mod shape;
mod wire;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use script::{Api, RecordedCall, Reply, ScriptedCall};
pub use wire::{COMPLETION_TOKENS, PROMPT_TOKENS};

#[derive(Debug, thiserror::Error)]
pub enum ModelSimError {
    #[error("cannot bind the model simulator: {0}")]
    Bind(#[from] std::io::Error),
}

#[derive(Debug)]
struct Inner {
    started: std::time::Instant,
    script: VecDeque<Reply>,
    /// Answered when the script is empty; `None` answers 500 and records an
    /// expectation failure.
    default_reply: Option<Reply>,
    calls: Vec<RecordedCall>,
    /// Tool call ids the next request must answer.
    pending: Vec<String>,
    failures: Vec<String>,
    next_call: u64,
    /// Required API key (`Authorization: Bearer`, Azure's `api-key` or
    /// Anthropic's `x-api-key`), if any.
    api_key: Option<String>,
    /// Chat Completions parameters answered with a 400
    /// `unsupported_parameter`, as OpenAI's reasoning models do.
    refused_params: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

fn with<T>(shared: &Shared, f: impl FnOnce(&mut Inner) -> T) -> T {
    f(&mut shared.lock().unwrap_or_else(PoisonError::into_inner))
}

/// What the stack's simulator answers once its script is used up: a valid
/// drafter answer handing the ticket to a person.
pub fn review_note() -> Reply {
    Reply::json(&json!({
        "action": "internal_note",
        "body": "Drafted by the model simulator: please review this ticket.",
        "reasons": ["model-sim default reply"],
        "confidence": 0.5,
    }))
}

/// Starts simulators.
#[derive(Debug)]
pub struct ModelSim;

impl ModelSim {
    /// Serves on `listener` until [`ModelSimHandle::shutdown`] or drop.
    pub async fn start(listener: TcpListener) -> Result<ModelSimHandle, ModelSimError> {
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(Inner {
            started: std::time::Instant::now(),
            script: VecDeque::new(),
            default_reply: None,
            calls: Vec::new(),
            pending: Vec::new(),
            failures: Vec::new(),
            next_call: 0,
            api_key: None,
            refused_params: Vec::new(),
        }));
        let router = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .route("/__sim/script", post(push_script))
            .route("/__sim/requests", get(list_calls))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "model simulator failed");
                }
            }
        });
        tracing::info!(%addr, "model simulator listening");
        Ok(ModelSimHandle {
            shared,
            addr,
            stop,
            server,
        })
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct ModelSimHandle {
    shared: Shared,
    addr: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<()>,
}

impl ModelSimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/v1`: the value for `DRAFTER_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Appends replies to the script.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        with(&self.shared, |s| s.script.extend(replies));
    }

    /// What to answer once the script is used up.
    pub fn set_default_reply(&self, reply: Option<Reply>) {
        with(&self.shared, |s| s.default_reply = reply);
    }

    /// Refuse requests without this key (401).
    pub fn require_api_key(&self, key: &str) {
        with(&self.shared, |s| s.api_key = Some(key.to_owned()));
    }

    /// Answer Chat Completions requests carrying any of `params` (e.g.
    /// `max_tokens`, `temperature`) with OpenAI's 400 `unsupported_parameter`.
    pub fn refuse_params(&self, params: &[&str]) {
        with(&self.shared, |s| {
            s.refused_params = params.iter().map(|p| (*p).to_owned()).collect();
        });
    }

    /// Every model request received, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        with(&self.shared, |s| s.calls.clone())
    }

    /// Replies not used yet.
    pub fn remaining(&self) -> usize {
        with(&self.shared, |s| s.script.len())
    }

    /// Violated expectations: an unanswered tool call, a request with no
    /// scripted reply, a malformed request.
    pub fn failures(&self) -> Vec<String> {
        with(&self.shared, |s| s.failures.clone())
    }

    pub async fn shutdown(mut self) {
        self.stop.cancel();
        let _ = (&mut self.server).await;
    }
}

impl Drop for ModelSimHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn openai(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&shared, Api::OpenAi, &headers, &body).await
}

async fn anthropic(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    answer(&shared, Api::Anthropic, &headers, &body).await
}

fn authorized(api: Api, headers: &HeaderMap, key: &str) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match api {
        Api::OpenAi => {
            get("authorization") == Some(&format!("Bearer {key}")) || get("api-key") == Some(key)
        }
        Api::Anthropic => get("x-api-key") == Some(key) && get("anthropic-version").is_some(),
    }
}

async fn answer(shared: &Shared, api: Api, headers: &HeaderMap, body: &[u8]) -> Response {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let at_ms = with(shared, |s| s.started.elapsed().as_millis() as u64);
    let call = RecordedCall {
        api,
        at_ms,
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: parsed.clone(),
    };
    let answered: Vec<String> = call
        .tool_results()
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    let step = with(shared, |s| {
        s.calls.push(call);
        if let Some(key) = &s.api_key
            && !authorized(api, headers, key)
        {
            return Err(StatusCode::UNAUTHORIZED);
        }
        if let Some(problem) = shape::problem(api, &parsed) {
            s.failures.push(format!("malformed request: {problem}"));
            return Err(StatusCode::BAD_REQUEST);
        }
        if api == Api::OpenAi
            && let Some(param) = s
                .refused_params
                .iter()
                .find(|p| parsed.get(p.as_str()).is_some())
        {
            let param = param.clone();
            s.failures.push(format!("unsupported parameter: {param}"));
            return Ok(Err(param));
        }
        for id in std::mem::take(&mut s.pending) {
            if !answered.contains(&id) {
                s.failures.push(format!("tool call {id} was not answered"));
            }
        }
        match s.script.pop_front().or_else(|| s.default_reply.clone()) {
            Some(reply) => Ok(Ok(reply)),
            None => {
                s.failures
                    .push("a request arrived with no scripted reply".to_owned());
                Err(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    });
    let mut reply = match step {
        Ok(Ok(r)) => r,
        Ok(Err(param)) => return wire::unsupported_parameter(&param),
        Err(status) => return wire::failure(api, status.as_u16(), None),
    };
    while let Reply::Delay { delay, then } = reply {
        tokio::time::sleep(delay).await;
        reply = *then;
    }
    let model = parsed["model"].as_str().unwrap_or("sim").to_owned();
    match &reply {
        Reply::Status {
            status,
            retry_after,
        } => wire::failure(api, *status, *retry_after),
        Reply::Garbage => (StatusCode::OK, "<html>upstream hiccup</html>").into_response(),
        _ => {
            let ids: Vec<String> = match &reply {
                Reply::ToolCalls { calls } => with(shared, |s| {
                    let ids: Vec<String> = calls
                        .iter()
                        .map(|_| {
                            s.next_call += 1;
                            match api {
                                Api::OpenAi => format!("call_{}", s.next_call),
                                Api::Anthropic => format!("toolu_{}", s.next_call),
                            }
                        })
                        .collect();
                    s.pending = ids.clone();
                    ids
                }),
                _ => Vec::new(),
            };
            axum::Json(wire::success(api, &model, &reply, &ids)).into_response()
        }
    }
}

async fn push_script(
    State(shared): State<Shared>,
    axum::Json(replies): axum::Json<Vec<Reply>>,
) -> Response {
    let n = replies.len();
    with(&shared, |s| s.script.extend(replies));
    (StatusCode::CREATED, axum::Json(json!({"queued": n}))).into_response()
}

async fn list_calls(State(shared): State<Shared>) -> Response {
    let (calls, failures) = with(&shared, |s| (s.calls.clone(), s.failures.clone()));
    axum::Json(json!({"requests": calls, "failures": failures})).into_response()
}
