//! Checkpoints off the writer's path.
//!
//! In WAL mode SQLite copies the log back into the database file at a checkpoint, and by
//! default the connection whose commit crosses 1,000 log pages does it, inside that commit:
//! under a steady stream of writes the writer thread would stop every few dozen batches to
//! copy pages and sync the database file, and every write queued behind it would wait. So the
//! writer's automatic checkpoints are pushed out to a safety limit ([`WRITER_CHECKPOINT_PAGES`])
//! and a thread with a connection of its own runs a PASSIVE checkpoint every
//! [`CHECKPOINT_INTERVAL`]: it copies what no reader still needs, never blocks the writer or a
//! reader, and lets the next write start the log again from the beginning. Durability does not
//! depend on checkpoints: a commit is synced to the log before it is answered.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use rusqlite::Connection;

/// How often the checkpointer runs.
pub(crate) const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// The writer still checkpoints by itself past this many log pages (~40 MB): a bound on the
/// log if the checkpointer cannot keep up or its checkpoints keep failing.
pub(crate) const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// The checkpointing thread; dropping it stops the thread and waits for it.
pub(crate) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
    truncate: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Opens a connection of its own to `path` and starts checkpointing.
    pub(crate) fn start(path: &Path) -> anyhow::Result<Checkpointer> {
        let connection = super::connection::open_writer(Some(path))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let truncate = Arc::new(AtomicBool::new(false));
        let requested = Arc::clone(&truncate);
        let handle = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || run(&connection, &stopped, &requested))
            .context("starting the SQLite checkpoint thread")?;
        Ok(Checkpointer {
            stop: Some(stop),
            handle: Some(handle),
            truncate,
        })
    }

    /// Asks for the next checkpoint to copy the whole log and truncate it to zero bytes
    /// (retried each interval until no reader holds an old snapshot): erased content must not
    /// linger in log frames that `secure_delete` does not reach.
    pub(crate) fn request_truncate(&self) {
        self.truncate.store(true, Ordering::Release);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn run(connection: &Connection, stopped: &mpsc::Receiver<()>, truncate: &AtomicBool) {
    let mut failures: u64 = 0;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_INTERVAL) {
        let truncating = truncate.swap(false, Ordering::AcqRel);
        let statement = if truncating {
            "PRAGMA wal_checkpoint(TRUNCATE)"
        } else {
            "PRAGMA wal_checkpoint(PASSIVE)"
        };
        let outcome = connection.query_row(statement, [], |row| row.get::<_, i64>(0));
        // The first column is 1 when a TRUNCATE could not finish (a reader or writer was busy).
        if truncating && !matches!(outcome, Ok(0)) {
            truncate.store(true, Ordering::Release);
        }
        match outcome {
            Ok(_) => failures = 0,
            Err(error) => {
                // Said once, then once a minute while it lasts (disk full, read-only file).
                if failures.is_multiple_of(120) {
                    tracing::warn!(%error, failures, "SQLite checkpoints fail; the writer checkpoints past its limit");
                }
                failures += 1;
            }
        }
    }
}
