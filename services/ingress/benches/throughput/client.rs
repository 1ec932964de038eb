//! The load client every HTTP target shares: raw HTTP/1.1 keep-alive
//! connections that write pre-built requests and read just enough of each
//! response (status, `Content-Length`), so the client's own CPU is small and
//! the same whichever server it drives.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Throughput and latency of one phase.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Responses by status; `0` counts connections lost before an answer.
    pub statuses: BTreeMap<u16, usize>,
}

impl Stats {
    pub fn from_latencies(total: usize, elapsed: Duration, mut lat: Vec<Duration>) -> Self {
        lat.sort();
        let pick = |q: f64| {
            lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Self {
            per_sec: total as f64 / elapsed.as_secs_f64(),
            p50: pick(0.50),
            p99: pick(0.99),
            statuses: BTreeMap::new(),
        }
    }

    /// Count of responses other than `200`.
    pub fn failures(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One keep-alive connection that sends a request and reads its response.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and returns the response status (`0` when the
    /// connection broke before a full response).
    pub async fn send(&mut self, request: &[u8]) -> u16 {
        match self.exchange(request).await {
            Ok((status, keep)) => {
                if !keep {
                    self.stream = None;
                }
                status
            }
            Err(status) => {
                self.stream = None;
                status
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<(u16, bool), u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await.map_err(|_| 0u16)?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut().ok_or(0u16)?;
        // A server may answer (and close) before reading the whole body: a
        // failed write still leaves its answer to be read.
        let wrote = stream.write_all(request).await.is_ok();
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let header_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            let n = stream.read(&mut chunk).await.map_err(|_| 0u16)?;
            if n == 0 {
                return Err(0);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..header_end]).map_err(|_| 0u16)?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(0u16)?;
        let mut length = 0usize;
        let mut keep = wrote;
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| status)?;
            } else if name.eq_ignore_ascii_case("connection")
                && value.trim().eq_ignore_ascii_case("close")
            {
                keep = false;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                // Not expected from these servers; do not reuse the connection.
                keep = false;
            }
        }
        let mut have = self.buf.len() - header_end;
        while have < length {
            let n = stream.read(&mut chunk).await.map_err(|_| status)?;
            if n == 0 {
                return Err(status);
            }
            have += n;
        }
        Ok((status, keep))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends every request once over `conns` connections, or as many as fit in
/// `cap` (a collapsing server must not stall the whole bench). Closed loop
/// when `rate` is `None` (each connection sends its next request as soon as
/// the previous one is answered); otherwise request `i` is due at `i / rate`
/// seconds and its latency counts from then (queueing included).
pub async fn run(
    addr: SocketAddr,
    requests: Arc<Vec<Bytes>>,
    conns: usize,
    rate: Option<f64>,
    cap: Duration,
) -> Stats {
    let total = requests.len();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers = (0..conns).map(|_| {
        let (requests, next) = (requests.clone(), next.clone());
        tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let mut lat = Vec::with_capacity(total / conns + 1);
            let mut statuses = BTreeMap::<u16, usize>::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                if start.elapsed() > cap {
                    break;
                }
                let due = match rate {
                    Some(r) => {
                        let due = start + Duration::from_secs_f64(i as f64 / r);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let status = conn.send(req).await;
                lat.push(due.elapsed());
                *statuses.entry(status).or_default() += 1;
            }
            (lat, statuses)
        })
    });
    let mut lat = Vec::with_capacity(total);
    let mut statuses = BTreeMap::new();
    for w in futures::future::join_all(workers).await {
        let (l, s) = w.expect("load worker");
        lat.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let mut stats = Stats::from_latencies(lat.len(), start.elapsed(), lat);
    stats.statuses = statuses;
    stats
}
