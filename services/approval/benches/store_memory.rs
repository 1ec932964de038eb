//! Approval store memory benchmark (not a test): resident memory of the
//! approval service (the release binary, its own process) with an empty
//! bucket, then with 20 000 (`STORE_MEMORY_ITEMS`) settled items in the bucket, once indexing every
//! item in memory (`APPROVAL_RECENT_LIMIT` above the item count, which is
//! what the service did before the limit existed) and once with the default
//! limit (open items + the newest 1000 settled ones).
//!
//! `cargo build --release -p approval && cargo bench -p approval --bench store_memory`
//! (`APPROVAL_BIN` overrides the binary's path).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use approval::item::{DecisionRecord, HistoryEntry, Item, ResumeLinks, State};
use futures::StreamExt;
use support::{ALICE, Infra, JWT_SECRET, RELEASE_KEY, RESUME_SECRET, rich_request};
use time::OffsetDateTime;
use tokio::process::{Child, Command};
use zengate_core::events::{ActionOutcome, Decision, V1};
use zengate_testkit::{eventually, free_port};

/// Settled items in the bucket (`STORE_MEMORY_ITEMS` overrides).
fn item_count() -> usize {
    std::env::var("STORE_MEMORY_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn binary() -> PathBuf {
    std::env::var_os("APPROVAL_BIN").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/release/approval"
            ))
        },
        PathBuf::from,
    )
}

/// A settled (applied) item as the service stores it.
fn applied_item(n: usize) -> Item {
    let req = rich_request(
        &format!("7{n:07}"),
        &format!("Answer number {n}: the replacement ships today."),
    );
    let now = OffsetDateTime::now_utc();
    let links = ResumeLinks {
        approve: format!(
            "http://127.0.0.1:8082/webhook/resume/{}?decision=approve&expires=1&signature={}",
            req.approval_id,
            "a".repeat(64)
        ),
        reject: format!(
            "http://127.0.0.1:8082/webhook/resume/{}?decision=reject&expires=1&signature={}",
            req.approval_id,
            "b".repeat(64)
        ),
    };
    let mut item = Item::new(req, now, now + time::Duration::hours(24), links);
    item.state = State::Applied;
    item.final_action = Some(item.request.action.clone());
    item.release_seal = Some("c".repeat(88));
    item.decision = Some(DecisionRecord {
        decision: Decision::Approved,
        by: "alice".into(),
        at: now,
        reason: None,
        edits: None,
        published: true,
    });
    for what in ["approved", "released", "applied"] {
        item.history.push(HistoryEntry {
            at: now,
            by: "alice".into(),
            what: what.into(),
            reason: None,
            edits: None,
        });
    }
    item.outcome = Some(ActionOutcome {
        v: V1,
        approval_id: item.id.clone(),
        account_id: "42".into(),
        ticket_id: item.ticket_id().map(str::to_owned),
        action_type: "reply".into(),
        applied: true,
        error: None,
        result_id: Some("9001".into()),
        at: now,
    });
    item
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts the binary, waits until it indexed `expect` items, returns (RSS, peak) in KiB.
async fn measure(infra: &Infra, recent_limit: usize, expect: usize) -> (u64, u64) {
    let port = free_port();
    let mut child: Child = Command::new(binary())
        .env_clear()
        .envs(zengate_testkit::IMAGE_ALLOCATOR_ENV)
        .env("NATS_URL", infra.nats.url())
        .env("REDIS_URL", infra.redis.url())
        .env("APPROVAL_ADDR", format!("127.0.0.1:{port}"))
        .env("ZENDESK_ACCOUNT_ID", "42")
        .env("ZENDESK_JWT_SHARED_SECRET", JWT_SECRET)
        .env("APPROVER_TOKENS", format!("alice:{ALICE}"))
        .env("APPROVAL_RESUME_SECRET", RESUME_SECRET)
        .env("ZENGATE_RELEASE_SIGNING_SECRET", RELEASE_KEY)
        .env("APPROVAL_RECENT_LIMIT", recent_limit.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo build --release -p approval)",
                binary().display()
            )
        });
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/metrics");
    eventually(
        "the service indexed the bucket",
        Duration::from_secs(120),
        || async {
            let text = http.get(&url).send().await.ok()?.text().await.ok()?;
            let ready = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .ok()?
                .status()
                == 200;
            (ready
                && zengate_testkit::metric_value(&text, "zengate_approval_indexed") as usize
                    == expect)
                .then_some(())
        },
    )
    .await;
    // Let the allocator settle after the initial replay.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kib(child.id().unwrap());
    child.kill().await.unwrap();
    rss
}

#[tokio::main]
async fn main() {
    let infra = Infra::start().await;
    // Creates the bucket, measures the empty service.
    let empty = measure(&infra, 1000, 0).await;
    let kv = infra.js.get_key_value("approvals").await.unwrap();
    let mut bytes = 0usize;
    let count = item_count();
    let items: Vec<Item> = (0..count).map(applied_item).collect();
    for i in &items {
        bytes += i.to_bytes().unwrap().len();
    }
    futures::stream::iter(items)
        .for_each_concurrent(64, |item| {
            let kv = kv.clone();
            async move {
                kv.put(&item.id, item.to_bytes().unwrap()).await.unwrap();
            }
        })
        .await;
    println!(
        "{count} applied items in the bucket, {} bytes of JSON on average",
        bytes / count
    );
    let all = measure(&infra, count * 10, count).await;
    let bounded = measure(&infra, 1000, 1000).await;
    let per_item = |rss: u64| (rss.saturating_sub(empty.0) as f64 * 1024.0) / count as f64;
    println!(
        "empty bucket:                 RSS {} KiB (peak {} KiB)",
        empty.0, empty.1
    );
    println!(
        "every item in memory:         RSS {} KiB (peak {} KiB), {:.0} bytes per item",
        all.0,
        all.1,
        per_item(all.0)
    );
    println!(
        "open + 1000 recent in memory: RSS {} KiB (peak {} KiB), {:.0} bytes per bucket item",
        bounded.0,
        bounded.1,
        per_item(bounded.0)
    );
}
