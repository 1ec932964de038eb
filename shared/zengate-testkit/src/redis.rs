//! A private `redis-server` (no persistence) on a free loopback port,
//! optionally with extra configuration (passwords, ACL users) or TLS only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::wait::{eventually, free_port};

/// The line redis-server logs once it accepts clients.
const READY_LINE: &str = "Ready to accept connections";

/// PEM files for a TLS-only server ([`RedisServer::start_tls`]).
#[derive(Debug, Clone)]
pub struct RedisTls {
    /// The server's certificate (its names must cover `127.0.0.1`).
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The CA that client certificates must chain to.
    pub ca_file: PathBuf,
    /// `tls-auth-clients yes`: refuse clients without a certificate.
    pub auth_clients: bool,
}

/// A running (or stopped) private Redis server. Killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
    /// Extra `redis-server` arguments, e.g. `["--requirepass", "pw"]`.
    args: Vec<String>,
    tls: Option<RedisTls>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::launch(Vec::new(), None).await
    }

    /// Starts with extra command-line configuration, e.g.
    /// `&["--requirepass", "pw"]`, or an ACL user with one argument per rule:
    /// `&["--user", "app", "on", ">pw", "~*", "+@all"]`.
    pub async fn start_with_args(args: &[&str]) -> Self {
        Self::launch(args.iter().map(|a| (*a).to_owned()).collect(), None).await
    }

    /// Starts a TLS-only server (no plaintext port) plus `args`;
    /// [`RedisServer::url`] is then `rediss://127.0.0.1:PORT`.
    pub async fn start_tls(tls: RedisTls, args: &[&str]) -> Self {
        Self::launch(args.iter().map(|a| (*a).to_owned()).collect(), Some(tls)).await
    }

    async fn launch(args: Vec<String>, tls: Option<RedisTls>) -> Self {
        let mut me = Self {
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("zg-redis-")
                .tempdir()
                .expect("temp dir"),
            bin: crate::redis_server_binary(),
            child: None,
            args,
            tls,
        };
        me.spawn().await;
        me
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's private directory (also holds its log when started with
    /// arguments or TLS).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The server log (empty for a plain [`RedisServer::start`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn plain(&self) -> bool {
        self.args.is_empty() && self.tls.is_none()
    }

    async fn spawn(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--bind", "127.0.0.1", "--port"]);
        match &self.tls {
            None => {
                cmd.arg(self.port.to_string());
            }
            Some(tls) => {
                cmd.arg("0")
                    .arg("--tls-port")
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(&tls.cert_file)
                    .arg("--tls-key-file")
                    .arg(&tls.key_file)
                    .arg("--tls-ca-cert-file")
                    .arg(&tls.ca_file)
                    .arg("--tls-auth-clients")
                    .arg(if tls.auth_clients { "yes" } else { "no" });
            }
        }
        cmd.arg("--dir").arg(self.dir.path()).args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]);
        if !self.plain() {
            cmd.arg("--logfile").arg(self.log_path());
        }
        let child = cmd
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        if self.plain() {
            self.wait_for_pong().await;
        } else {
            self.wait_for_ready_line().await;
        }
    }

    async fn wait_for_pong(&self) {
        let port = self.port;
        eventually(
            "redis-server PING",
            Duration::from_secs(10),
            || async move {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()?;
                s.write_all(b"PING\r\n").await.ok()?;
                let mut buf = [0u8; 7];
                s.read_exact(&mut buf).await.ok()?;
                (&buf == b"+PONG\r\n").then_some(())
            },
        )
        .await;
    }

    /// A server that wants a password or TLS cannot be PINGed in plain
    /// text; its log says when it is ready (counted, so a restart waits for
    /// its own line). A server that exits instead fails fast with its log.
    async fn wait_for_ready_line(&mut self) {
        let before = self.log().matches(READY_LINE).count();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pause = Duration::from_millis(5);
        loop {
            if self.log().matches(READY_LINE).count() > before {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "redis-server exited ({status}) with args {:?}:\n{}",
                    self.args,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for redis-server to be ready:\n{}",
                self.log()
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The server's process id while it runs (benches read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Kills the server; it keeps nothing.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and every
    /// command hangs, data is kept, until [`RedisServer::resume`].
    pub fn pause(&self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            crate::process::signal(pid, "STOP");
        }
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            crate::process::signal(pid, "CONT");
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }
}
