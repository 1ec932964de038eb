//! What a process costs, read from `/proc`: resident memory now and at its
//! peak, and the CPU time of all its threads. Benchmarks report a service's
//! footprint and CPU per request next to its throughput.

use std::sync::OnceLock;
use std::time::Duration;

/// One reading of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStats {
    /// `VmRSS`: resident set now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the largest resident set so far, in KiB.
    pub peak_rss_kib: u64,
    /// User plus system CPU time of every thread so far.
    pub cpu: Duration,
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &u64| *t > 0)
            .unwrap_or(100)
    })
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Reads `/proc/<pid>/status` and `/proc/<pid>/stat`; `None` when the
/// process is gone (or this is not Linux).
pub fn proc_stats(pid: u32) -> Option<ProcStats> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime
    // and stime are fields 14 and 15 (1-based, see proc(5)).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ProcStats {
        rss_kib: status_kib(&status, "VmRSS:")?,
        peak_rss_kib: status_kib(&status, "VmHWM:")?,
        cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64),
    })
}

/// User plus system CPU time process `pid` used so far; zero once it is gone.
pub fn cpu_of(pid: u32) -> Duration {
    proc_stats(pid).map_or(Duration::ZERO, |s| s.cpu)
}

/// Busy CPU time of the whole machine so far: the `cpu` line of `/proc/stat`
/// without idle, iowait and steal (time the hypervisor gave to others; guest
/// time is already inside user). A phase charged with it pays for everything
/// it made run: the load client, the servers under test, nats-server,
/// redis-server and the kernel. Zero where `/proc/stat` cannot be read.
pub fn machine_busy() -> Duration {
    // user nice system idle iowait irq softirq steal: the busy ones.
    machine_ticks(&[0, 1, 2, 5, 6])
}

/// Steal time of the whole machine so far: how long its virtual CPUs were
/// ready to run but the hypervisor ran something else. A phase with much of
/// it was slowed by neighbours, not by the code under test.
pub fn machine_steal() -> Duration {
    machine_ticks(&[7])
}

/// The sum of the `cpu` line's `fields` (0-based, after the label).
fn machine_ticks(fields: &[usize]) -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let sum: u64 = fields.iter().filter_map(|&i| ticks.get(i)).sum();
    Duration::from_secs_f64(sum as f64 / clock_ticks() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = proc_stats(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.peak_rss_kib >= s.rss_kib);
    }

    #[test]
    fn machine_time_advances_while_this_process_computes() {
        let before = machine_busy();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(100) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(machine_busy() > before, "{x}");
    }
}
