//! The servers under test as child processes: the release `ingress` binary and
//! the bench's own minimal server (this binary re-run in its server role), so
//! neither shares a runtime with the load client, and their memory and CPU can
//! be read from `/proc`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use zengate_testkit::eventually;

use crate::events::{ACCOUNT, SECRET};

/// Environment variable that makes this binary run the minimal server.
pub const ROLE_VAR: &str = "ZG_BENCH_ROLE";

/// Both servers run with the image's allocator settings unless
/// `BENCH_PLAIN_MALLOC=1`.
fn image_malloc(cmd: &mut Command) {
    if std::env::var("BENCH_PLAIN_MALLOC").as_deref() != Ok("1") {
        cmd.envs(zengate_testkit::IMAGE_ALLOCATOR_ENV);
    }
}

/// A running server process, killed on drop.
pub struct Server {
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Server {
    /// The release ingress on port 0, with `redis_url` and `extra` settings.
    pub async fn ingress(nats_url: &str, redis_url: &str, extra: &[(String, String)]) -> Self {
        Self::ingress_from(env!("CARGO_BIN_EXE_ingress"), nats_url, redis_url, extra).await
    }

    /// [`Server::ingress`] from another build of the binary (`exe`).
    pub async fn ingress_from(
        exe: &str,
        nats_url: &str,
        redis_url: &str,
        extra: &[(String, String)],
    ) -> Self {
        let mut cmd = Command::new(exe);
        cmd.env_clear()
            .env("NATS_URL", nats_url)
            .env("REDIS_URL", redis_url)
            .env("ZENDESK_WEBHOOK_SIGNING_SECRET", SECRET)
            .env("ZENDESK_ACCOUNT_ID", ACCOUNT.to_string())
            .env("INGRESS_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info");
        image_malloc(&mut cmd);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        Self::spawn(cmd, "ingress listening").await
    }

    /// The minimal verify-and-publish server (see `minimal.rs`), publishing
    /// the design's subject and headers when `design`.
    pub async fn minimal(nats_url: &str, design: bool) -> Self {
        let exe = std::env::current_exe().expect("bench executable");
        let mut cmd = Command::new(exe);
        cmd.env(ROLE_VAR, "minimal").env("NATS_URL", nats_url);
        if design {
            cmd.env(crate::minimal::SHAPE_VAR, "design");
        }
        image_malloc(&mut cmd);
        Self::spawn(cmd, "minimal listening").await
    }

    async fn spawn(mut cmd: Command, ready: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn server");
        let path = log.clone();
        let addr = eventually("server listening", Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let addr = text
                .lines()
                .find(|l| l.contains(ready))
                .and_then(listening_addr);
            async move { addr }
        })
        .await;
        Self {
            addr,
            child,
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("server running")
    }

    /// `VmRSS` and `VmHWM` from `/proc/<pid>/status`.
    pub fn memory(&self) -> Memory {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        }
    }

    /// Resets `VmHWM` to the current RSS, so the next peak is measured alone.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// The server's log so far (for diagnosing a failed phase).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The shared nats-server and redis-server, whose CPU each phase is charged
/// with (set once in `main`).
static SHARED: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();

pub fn watch_shared(nats_pid: u32, redis_pid: u32) {
    let _ = SHARED.set((nats_pid, redis_pid));
}

/// CPU time used so far by the server under test (if any), nats-server,
/// redis-server and the whole machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub server: Option<Duration>,
    pub nats: Duration,
    pub redis: Duration,
    pub machine: Duration,
    /// Time the hypervisor kept the machine's CPUs from running.
    pub steal: Duration,
}

impl Cpu {
    pub fn now(server: Option<u32>) -> Self {
        let (nats, redis) = SHARED.get().copied().unwrap_or_default();
        Self {
            server: server.map(zengate_testkit::cpu_of),
            nats: zengate_testkit::cpu_of(nats),
            redis: zengate_testkit::cpu_of(redis),
            machine: zengate_testkit::machine_busy(),
            steal: zengate_testkit::machine_steal(),
        }
    }

    /// What was used since `start`, per event over `events`.
    pub fn per_event_since(&self, start: &Cpu, events: usize) -> Cpu {
        let n = events.max(1) as u32;
        let per = |now: Duration, then: Duration| now.saturating_sub(then) / n;
        Cpu {
            server: self.server.zip(start.server).map(|(a, b)| per(a, b)),
            nats: per(self.nats, start.nats),
            redis: per(self.redis, start.redis),
            machine: per(self.machine, start.machine),
            steal: per(self.steal, start.steal),
        }
    }
}

/// The `addr` field of a JSON log line, or the last token of a plain one.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        return v["fields"]["addr"].as_str().and_then(|a| a.parse().ok());
    }
    line.split_whitespace().last().and_then(|a| a.parse().ok())
}
