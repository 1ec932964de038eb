//! Redis as an outage looks from the ingress: a closed port (refused), a
//! listener that accepts and never answers (black hole), and a proxy that
//! delays every request to a real Redis (slow, its delay adjustable while it
//! runs). Shared by the ingress tests and its bench.
#![allow(dead_code, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A loopback port nothing listens on.
pub fn refused_url() -> String {
    format!("redis://127.0.0.1:{}", zengate_testkit::free_port())
}

/// A fault listener on loopback; stops accepting when dropped.
pub struct Fault {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    delay_ms: Arc<AtomicU64>,
}

impl Drop for Fault {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fault {
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Changes a slow proxy's delay for what clients send from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Accepts connections, reads nothing and never answers.
    pub async fn black_hole() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        Self {
            addr,
            task,
            delay_ms: Arc::default(),
        }
    }

    /// Forwards to `upstream`, sleeping `delay` before passing on each chunk
    /// the client sends.
    pub async fn slow(upstream: SocketAddr, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let delay_ms = Arc::new(AtomicU64::new(delay.as_millis() as u64));
        let shared = delay_ms.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let delay_ms = shared.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(n) = cr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let pause = delay_ms.load(Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                            if sw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Self {
            addr,
            task,
            delay_ms,
        }
    }
}
