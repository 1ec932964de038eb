//! A private `nats-server -js` with file storage in a temporary directory,
//! optionally with a configuration file (authorization, TLS, operator mode).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::wait::{eventually, free_port};

/// A running (or stopped) private NATS server. Killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
    /// Set by [`NatsServer::start_with_config`]: the config file, the
    /// monitoring port used to see it ready, and the server's environment.
    configured: Option<Configured>,
}

#[derive(Debug)]
struct Configured {
    file: PathBuf,
    /// The file had its own `store_dir` (now pointing at the temp dir);
    /// nats-server refuses `-sd` on top of one.
    store_in_file: bool,
    monitor_port: u16,
    env: Vec<(String, String)>,
}

impl NatsServer {
    /// Starts a server and waits until JetStream answers.
    pub async fn start() -> Self {
        let mut me = Self {
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("zg-nats-")
                .tempdir()
                .expect("temp dir"),
            bin: crate::nats_server_binary(),
            child: None,
            configured: None,
        };
        me.spawn().await;
        me
    }

    /// Starts a server from `conf` (nats-server config syntax, files named
    /// by absolute path) written to `nats.conf` in its temp dir. The listen
    /// address, client port and monitoring port are set on the command
    /// line (which overrides the file), and the JetStream store dir is the
    /// temp dir's (a `store_dir` line in `conf` is rewritten to it), so a
    /// production config can be used as is. Waits for `/healthz` (JetStream
    /// included), so it works whatever authentication `conf` requires.
    pub async fn start_with_config(conf: &str) -> Self {
        Self::start_with_config_env(conf, &[]).await
    }

    /// [`NatsServer::start_with_config`] with extra environment variables on
    /// the server process (for `$VAR` references in `conf`).
    pub async fn start_with_config_env(conf: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("zg-nats-")
            .tempdir()
            .expect("temp dir");
        let file = dir.path().join("nats.conf");
        let store = dir.path().join("js");
        let mut store_in_file = false;
        let conf: Vec<String> = conf
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("store_dir") {
                    store_in_file = true;
                    format!("store_dir: \"{}\"", store.display())
                } else {
                    line.to_owned()
                }
            })
            .collect();
        std::fs::write(&file, conf.join("\n")).expect("write nats.conf");
        let mut me = Self {
            port: free_port(),
            dir,
            bin: crate::nats_server_binary(),
            child: None,
            configured: Some(Configured {
                file,
                store_in_file,
                monitor_port: free_port(),
                env: env
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            }),
        };
        me.spawn().await;
        me
    }

    /// The server's temporary directory (certificates, creds for tests).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// What a configured server logged so far (empty for [`NatsServer::start`]).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    async fn spawn(&mut self) {
        if self.configured.is_some() {
            return self.spawn_configured().await;
        }
        let store = self.dir.path().join("js");
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        jetstream_answers(
            &self.url(),
            "nats-server with JetStream",
            Duration::from_secs(20),
        )
        .await;
    }

    async fn spawn_configured(&mut self) {
        let Some(c) = &self.configured else { return };
        let mut command = Command::new(&self.bin);
        command
            .arg("-c")
            .arg(&c.file)
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-m")
            .arg(c.monitor_port.to_string())
            .arg("-js");
        if !c.store_in_file {
            command.arg("-sd").arg(self.dir.path().join("js"));
        }
        let child = command
            .arg("-l")
            .arg(self.dir.path().join("nats.log"))
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        let monitor = format!("127.0.0.1:{}", c.monitor_port);
        eventually(
            "configured nats-server /healthz",
            Duration::from_secs(20),
            || {
                let monitor = monitor.clone();
                async move { healthz(&monitor).await.then_some(()) }
            },
        )
        .await;
    }

    /// The server's process id while it runs (benches read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Kills the server (like a crash). Data on disk is kept.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }
}

/// Waits until JetStream at `url` answers an account-info request (on a
/// cluster that needs a meta leader); panics naming `what` after `deadline`.
pub(crate) async fn jetstream_answers(url: &str, what: &str, deadline: Duration) {
    eventually(what, deadline, || async move {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_millis(500))
            .connect(url)
            .await
            .ok()?;
        let js = async_nats::jetstream::new(client);
        js.query_account().await.ok().map(|_| ())
    })
    .await;
}

/// True when the monitoring endpoint answers `/healthz` with 200 (the
/// server is listening and JetStream is ready).
pub(crate) async fn healthz(addr: &str) -> bool {
    crate::process::http_ok(addr, "/healthz").await
}
