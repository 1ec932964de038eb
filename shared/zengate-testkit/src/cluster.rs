//! A private three-node JetStream cluster: three `nats-server -js`
//! processes on free loopback ports, routed to each other, each with its own
//! temporary store. Tests kill and restart single nodes (data kept) and ask
//! which node leads a stream, to exercise replicated streams under node loss.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::wait::{eventually, free_port};

/// The cluster's name in every node's configuration.
const CLUSTER_NAME: &str = "zgtest";

#[derive(Debug)]
struct Node {
    name: String,
    client_port: u16,
    monitor_port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

/// A running three-node cluster. Every node is killed on drop.
#[derive(Debug)]
pub struct NatsCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Starts three routed nodes and waits until each answers `/healthz`
    /// and the cluster has a meta leader (JetStream account info answers).
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("zg-nats-cluster-")
            .tempdir()
            .expect("temp dir");
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = route_ports
            .iter()
            .enumerate()
            .map(|(i, route_port)| {
                let name = format!("n{i}");
                let client_port = free_port();
                let monitor_port = free_port();
                let store = dir.path().join(&name);
                let conf = dir.path().join(format!("{name}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "server_name: {name}\n\
                         listen: 127.0.0.1:{client_port}\n\
                         http: 127.0.0.1:{monitor_port}\n\
                         jetstream {{ store_dir: \"{}\" }}\n\
                         cluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{route_port}\n  routes: [{routes}]\n}}\n",
                        store.display()
                    ),
                )
                .expect("write node config");
                Node {
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    client_port,
                    monitor_port,
                    conf,
                    child: None,
                }
            })
            .collect();
        let mut me = Self {
            dir,
            bin: crate::nats_server_binary(),
            nodes,
        };
        for i in 0..me.nodes.len() {
            me.spawn(i);
        }
        for i in 0..me.nodes.len() {
            me.wait_healthy(i).await;
        }
        crate::nats::jetstream_answers(
            &me.url(0),
            "a JetStream meta leader",
            Duration::from_secs(30),
        )
        .await;
        me
    }

    /// Number of nodes (three).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Client URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// Every node's client URL, comma-separated (a `NATS_URL` seed list).
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The server name of node `i` (`n0`, `n1`, `n2`).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    /// The cluster's temporary directory (node stores and logs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&node.conf)
            .arg("-l")
            .arg(&node.log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nats-server");
        node.child = Some(child);
    }

    /// Waits until node `i` answers `/healthz` with 200: listening, in the
    /// cluster, and its JetStream assets caught up.
    pub async fn wait_healthy(&self, i: usize) {
        let monitor = format!("127.0.0.1:{}", self.nodes[i].monitor_port);
        let what = format!("cluster node {} /healthz", self.nodes[i].name);
        eventually(&what, Duration::from_secs(30), || {
            let monitor = monitor.clone();
            async move { crate::nats::healthz(&monitor).await.then_some(()) }
        })
        .await;
    }

    /// Kills node `i` (like a crash; its store is kept).
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts node `i` again with the same ports and store, and waits until
    /// it is healthy (caught up with the cluster).
    pub async fn restart(&mut self, i: usize) {
        self.kill(i).await;
        self.spawn(i);
        self.wait_healthy(i).await;
    }

    /// Index of the node leading `stream` now, asked of the live nodes
    /// through `$JS.API.STREAM.INFO` (`None` while there is no leader).
    pub async fn stream_leader(&self, stream: &str) -> Option<usize> {
        let leader = self.stream_info(stream).await?.cluster?.leader?;
        self.nodes.iter().position(|n| n.name == leader)
    }

    /// True when `stream` has a leader and every one of its replicas is
    /// current (caught up), e.g. after a node came back.
    pub async fn stream_caught_up(&self, stream: &str, replicas: usize) -> bool {
        let Some(cluster) = self.stream_info(stream).await.and_then(|i| i.cluster) else {
            return false;
        };
        cluster.leader.is_some()
            && cluster.replicas.len() + 1 == replicas
            && cluster.replicas.iter().all(|r| r.current && !r.offline)
    }

    async fn stream_info(&self, stream: &str) -> Option<async_nats::jetstream::stream::Info> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_none() {
                continue;
            }
            let Ok(client) = async_nats::ConnectOptions::new()
                .connection_timeout(Duration::from_millis(500))
                .connect(self.url(i))
                .await
            else {
                continue;
            };
            let js = async_nats::jetstream::ContextBuilder::new()
                .timeout(Duration::from_secs(2))
                .build(client);
            if let Ok(mut s) = js.get_stream(stream).await
                && let Ok(info) = s.info().await
            {
                return Some(info.clone());
            }
        }
        None
    }
}
