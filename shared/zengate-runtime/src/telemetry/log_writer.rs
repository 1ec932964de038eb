//! Where log lines go: stdout, written by one thread in batches.

use std::io::{BufWriter, Write};
use std::time::Duration;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Log lines queued for the writer thread before a logging request waits:
/// lines are never dropped, and a burst far beyond what stdout absorbs slows
/// the requests that log instead of growing memory.
const QUEUED_LINES: usize = 16 * 1024;

/// Stdout written by one thread in batches: a request formats its line and
/// queues it, and the writer sends whatever has queued in one write, so a
/// busy service makes a write call per batch instead of one per line.
pub(super) fn log_writer() -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("zengate-log")
        .finish(Batched {
            out: BufWriter::with_capacity(BATCH_BYTES, std::io::stdout()),
        })
}

/// Pause of the log thread after each batch: lines logged meanwhile wait in
/// the queue rather than waking the thread one by one (a wake-up per line
/// cost more than formatting it). Also the longest a line waits.
const BATCH_PAUSE: Duration = Duration::from_millis(10);

/// Bytes gathered before a write, when a batch is larger.
const BATCH_BYTES: usize = 64 * 1024;

/// Stdout as the log thread sees it. The thread flushes after draining the
/// queue; a flush writes the batch, then pauses for [`BATCH_PAUSE`].
struct Batched {
    out: BufWriter<std::io::Stdout>,
}

impl Write for Batched {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        std::thread::sleep(BATCH_PAUSE);
        Ok(())
    }
}
