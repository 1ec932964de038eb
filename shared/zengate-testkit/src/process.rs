//! zengate's own services as separate processes, for tests that kill them:
//! the binaries `cargo test --workspace` builds next to the test, started
//! with an explicit environment and a log file, awaited on `/readyz`,
//! SIGKILLed mid-work and started again; plus which process holds a TCP
//! connection (to kill the one whose request a simulator is holding) and
//! SIGSTOP/SIGCONT for freezing a server without losing its data.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::wait::eventually;

/// A workspace binary (`ingress`, `agent-worker`, `approval`, …) from the
/// target directory the running test was built into. `cargo test
/// --workspace` builds them; a narrower run needs `cargo build -p <crate>`
/// first, which the panic message says.
pub fn service_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build -p {name}`, or run the tests with \
         `cargo test --workspace`, which builds every binary)",
        bin.display()
    );
    bin
}

/// One service process. Killed on drop.
#[derive(Debug)]
pub struct ServiceProcess {
    name: String,
    bin: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

/// The allocator settings the container image sets for every service (see
/// the Dockerfile): service processes in tests and benches run with them, as
/// deployed. Settings given to a process win.
pub const IMAGE_ALLOCATOR_ENV: [(&str, &str); 1] = [("MIMALLOC_ARENA_EAGER_COMMIT", "0")];

impl ServiceProcess {
    /// Starts `bin` with exactly `env` (plus `PATH`), its output appended
    /// to `<log_dir>/<name>.log`. Does not wait for readiness.
    pub fn spawn(name: &str, bin: PathBuf, env: Vec<(String, String)>, log_dir: &Path) -> Self {
        let mut me = Self {
            name: name.to_owned(),
            bin,
            env,
            log: log_dir.join(format!("{name}.log")),
            child: None,
        };
        me.start();
        me
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the service log");
        let err = log.try_clone().expect("clone the log handle");
        let child = Command::new(&self.bin)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(IMAGE_ALLOCATOR_ENV)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The running process's id (`None` once killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// What the process wrote so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `GET http://<addr>/readyz` answers 200; panics with the
    /// log when the process exits or the deadline passes.
    pub async fn wait_ready(&mut self, addr: &str) {
        let what = format!("{} /readyz at {addr}", self.name);
        let name = self.name.clone();
        let log = self.log.clone();
        let mut child = self.child.take();
        eventually(&what, Duration::from_secs(60), || {
            if let Some(c) = child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "{name} exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            async move { http_ok(addr, "/readyz").await.then_some(()) }
        })
        .await;
        self.child = child;
    }

    /// SIGKILL: no drain, no cleanup, like a node failure.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the same binary with the same environment again.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        self.start();
    }

    /// True when this process has a TCP socket whose local port is `port`
    /// (e.g. the client side of a connection a server recorded).
    pub fn owns_local_port(&self, port: u16) -> bool {
        self.pid().is_some_and(|pid| owns_local_port(pid, port))
    }
}

/// Sends `signal` (`STOP`, `CONT`, …) to `pid` with the system's `kill`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Linux: whether process `pid` holds a TCP socket bound to local `port`
/// (`/proc/net/tcp{,6}` inodes against the process's open descriptors).
pub fn owns_local_port(pid: u32, port: u16) -> bool {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    (u16::from_str_radix(local_port, 16).ok()? == port)
                        .then(|| fields.get(9).map(|s| format!("socket:[{s}]")))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
}

/// `GET <path>` over plain HTTP/1.0 answered with 200.
pub(crate) async fn http_ok(addr: &str, path: &str) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut response)).await;
    matches!(read, Ok(Ok(_)))
        && (response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200"))
}
