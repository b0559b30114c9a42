//! The SQLite connections and the one place that hands work to them.
//!
//! SQLite allows one writer at a time per database file, so the store keeps one writer
//! connection, owned by a thread of its own, and a few read-only connections that read the WAL
//! snapshot in parallel on tokio's blocking pool. Every operation goes through
//! [`Database::write`] or [`Database::read`]; how work reaches the connections can change here
//! without touching the queries.
//!
//! **Group commit.** Every commit is synced (`synchronous=FULL`), and a sync costs far more
//! than the statements it makes durable. So the writer thread takes every write waiting for it
//! (up to [`MAX_BATCH`]), runs them in one `BEGIN IMMEDIATE` transaction, each inside its own
//! savepoint, and commits once: one sync for the whole batch. A write that fails is rolled back
//! to its savepoint and leaves the others alone; no caller hears back before the commit that
//! makes its write durable has returned, and if that commit fails every write of the batch
//! fails. Writes that arrive while a batch commits form the next batch, so batches grow with
//! the load and a lone write waits for nobody.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;
use twofold_core::store::StoreError;

use super::checkpoint::{Checkpointer, WRITER_CHECKPOINT_PAGES};

/// Readers beyond this rarely help: reads are short and the blocking pool is shared.
pub(crate) const READER_COUNT: usize = 4;

/// The most writes one transaction takes: bounds how long the first of them waits.
pub(crate) const MAX_BATCH: usize = 256;

/// The writer's page cache: negative means KiB (32 MiB), held only as the database grows.
const WRITER_CACHE_KIB: i64 = -32_768;

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Above the number of distinct statements the store runs, so none is parsed twice.
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// The pragmas every connection runs with, as read back from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPragmas {
    pub journal_mode: String,
    /// 2 is FULL: the WAL is synced at every commit.
    pub synchronous: i64,
    pub foreign_keys: i64,
    pub busy_timeout_ms: i64,
    /// 1 is ON: deleted content is overwritten with zeros (see [`configure`]).
    pub secure_delete: i64,
    pub read_only: bool,
}

/// The writer and the readers of one database.
#[derive(Clone)]
pub(crate) struct Database {
    inner: Arc<Connections>,
}

// Fields drop in order: the readers close first, then the writer thread is told to stop and
// joined, so the writer is the last connection and its close checkpoints the WAL and removes
// it (a read-only connection cannot).
struct Connections {
    /// Empty for an in-memory database, whose data no second connection can see; reads then go
    /// to the writer.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// `None` for an in-memory database (no log to checkpoint). Dropping it stops the thread,
    /// before the writer closes.
    checkpointer: Option<Checkpointer>,
    writer: WriterThread,
}

/// One unit of work for the writer thread.
trait Job: Send {
    /// A read of an in-memory database: runs on the writer outside any transaction.
    fn is_read(&self) -> bool;
    /// Runs the work; false when it failed (its changes are then rolled back).
    fn run(&mut self, connection: &mut Connection) -> bool;
    /// Answers the caller once the batch is durable, or failed to be (`commit`).
    fn finish(self: Box<Self>, commit: Result<(), &rusqlite::Error>);
}

/// A caller's closure, its outcome once run, and where the answer goes.
struct Pending<T, F> {
    operation: &'static str,
    read: bool,
    work: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Pending<T, F>
where
    F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send,
    T: Send,
{
    fn is_read(&self) -> bool {
        self.read
    }

    fn run(&mut self, connection: &mut Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panic must not take the writer thread (and every later write) down with it; the
        // savepoint it was in is rolled back like any failed write.
        let operation = self.operation;
        let outcome = match catch_unwind(AssertUnwindSafe(|| work(connection))) {
            Ok(outcome) => outcome.map_err(|error| store_error(operation, error)),
            Err(_) => Err(StoreError::Unexpected(anyhow!(
                "SQLite: {operation}: the work panicked"
            ))),
        };
        let succeeded = outcome.is_ok();
        self.outcome = Some(outcome);
        succeeded
    }

    fn finish(self: Box<Self>, commit: Result<(), &rusqlite::Error>) {
        let operation = self.operation;
        let answer = match (self.outcome, commit) {
            (None, Err(error)) => Err(StoreError::Unexpected(anyhow!(
                "SQLite: {operation}: the batch could not start: {error}"
            ))),
            (None, Ok(())) => Err(StoreError::Unexpected(anyhow!(
                "SQLite: {operation}: the write was not run"
            ))),
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(_)), Err(error)) => Err(StoreError::Unexpected(anyhow!(
                "SQLite: {operation}: the commit failed: {error}"
            ))),
            (Some(Ok(value)), Ok(())) => Ok(value),
        };
        // The caller may have gone (its request was cancelled); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// The thread that owns the writer connection, and the queue to it.
struct WriterThread {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    handle: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl WriterThread {
    fn start(connection: Connection) -> anyhow::Result<WriterThread> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || run_writer(connection, &queue, &counter))
            .context("starting the SQLite writer thread")?;
        Ok(WriterThread {
            jobs: Some(jobs),
            handle: Some(handle),
            commits,
        })
    }

    fn submit(&self, job: Box<dyn Job>) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| StoreError::Unexpected(anyhow!("the SQLite writer thread has stopped")))
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has answered every write already queued.
        drop(self.jobs.take());
        if let Some(handle) = self.handle.take()
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

fn run_writer(
    mut connection: Connection,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    commits: &AtomicU64,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (reads, writes): (Vec<_>, Vec<_>) = batch.into_iter().partition(|job| job.is_read());
        for mut read in reads {
            read.run(&mut connection);
            read.finish(Ok(()));
        }
        if !writes.is_empty() && run_batch(&mut connection, writes) {
            commits.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs `writes` in one transaction, each in its own savepoint, and commits once; true when
/// the commit succeeded.
fn run_batch(connection: &mut Connection, mut writes: Vec<Box<dyn Job>>) -> bool {
    if !connection.is_autocommit() {
        // A failed rollback left a transaction open; every later batch would fail on it.
        tracing::error!("the SQLite writer was left inside a transaction; rolling it back");
        let _ = connection.execute_batch("ROLLBACK");
    }
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        for write in writes {
            write.finish(Err(&error));
        }
        return false;
    }
    for write in &mut writes {
        if run_cached(connection, "SAVEPOINT batched_write").is_err() {
            continue;
        }
        let end = if write.run(connection) {
            run_cached(connection, "RELEASE batched_write")
        } else {
            run_cached(connection, "ROLLBACK TO batched_write")
                .and_then(|()| run_cached(connection, "RELEASE batched_write"))
        };
        if let Err(error) = end {
            // The transaction is in an unknown state: give up the whole batch.
            let _ = connection.execute_batch("ROLLBACK");
            for write in writes {
                write.finish(Err(&error));
            }
            return false;
        }
    }
    let commit = connection.execute_batch("COMMIT");
    if commit.is_err() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    let committed = commit.is_ok();
    let commit = commit.as_ref().map(|_| ());
    for write in writes {
        write.finish(commit);
    }
    committed
}

/// Runs one statement through the statement cache (the batch's own statements run for every
/// write, so parsing them each time would show).
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(drop)
}

impl Database {
    /// The database over these connections; `path` (a file database) starts the checkpointer.
    pub(crate) fn new(
        writer: Connection,
        readers: Vec<Connection>,
        path: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let checkpointer = match path {
            Some(path) => {
                writer
                    .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
                    .context("setting wal_autocheckpoint")?;
                writer
                    .busy_handler(Some(poll_for_lock))
                    .context("setting the busy handler")?;
                // The writer's page cache survives its own commits (a reader's does not), so a
                // larger one keeps the indexes every write walks in memory.
                writer
                    .pragma_update(None, "cache_size", WRITER_CACHE_KIB)
                    .context("setting cache_size")?;
                Some(Checkpointer::start(path)?)
            }
            None => None,
        };
        Ok(Database {
            inner: Arc::new(Connections {
                readers: readers.into_iter().map(Mutex::new).collect(),
                next_reader: AtomicUsize::new(0),
                checkpointer,
                writer: WriterThread::start(writer)?,
            }),
        })
    }

    /// Asks the checkpointer to truncate the log soon (after erasing content); nothing for an
    /// in-memory database.
    pub(crate) fn request_truncating_checkpoint(&self) {
        if let Some(checkpointer) = &self.inner.checkpointer {
            checkpointer.request_truncate();
        }
    }

    /// Runs `work` on the writer connection, inside a savepoint of the current batch's
    /// transaction; answers once that transaction has committed. `operation` names the call in
    /// errors. `work` must not begin or commit a transaction itself; it may nest savepoints
    /// (`Connection::savepoint`).
    pub(crate) async fn write<T, F>(
        &self,
        operation: &'static str,
        work: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.on_writer(operation, false, work).await
    }

    async fn on_writer<T, F>(
        &self,
        operation: &'static str,
        read: bool,
        work: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.inner.writer.submit(Box::new(Pending {
            operation,
            read,
            work: Some(work),
            outcome: None,
            reply,
        }))?;
        answer.await.map_err(|_| {
            StoreError::Unexpected(anyhow!("SQLite: {operation}: the writer thread stopped"))
        })?
    }

    /// Runs `work` on a read-only connection (the writer for an in-memory database).
    pub(crate) async fn read<T, F>(&self, operation: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        if self.inner.readers.is_empty() {
            return self
                .on_writer(operation, true, move |connection| work(connection))
                .await;
        }
        let inner = Arc::clone(&self.inner);
        let outcome = tokio::task::spawn_blocking(move || inner.with_reader(work))
            .await
            .map_err(|error| {
                StoreError::Unexpected(anyhow!("the SQLite task of {operation} failed: {error}"))
            })?;
        outcome.map_err(|error| store_error(operation, error))
    }

    /// Runs a short keyed read (a few rows found by key through an index) on an idle reader
    /// right here, on the calling task's thread: for such a read, handing it to the blocking
    /// pool and back costs more than the read itself. When every reader is busy, and for an
    /// in-memory database, it goes the way of [`Database::read`]. Never for scans or pages.
    /// Inline, the read never waits for a lock (busy timeout zero): a busy answer, as during
    /// another process's log recovery, sends it to the blocking pool, where it may wait.
    pub(crate) async fn lookup<T, F>(
        &self,
        operation: &'static str,
        work: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Clone + Send + 'static,
        T: Send + 'static,
    {
        let inline = work.clone();
        let attempt = self.inner.with_idle_reader(move |connection| {
            let _ = connection.busy_timeout(Duration::ZERO);
            let outcome = catch_unwind(AssertUnwindSafe(|| inline(connection)));
            let _ = connection.busy_timeout(BUSY_TIMEOUT);
            outcome
        });
        match attempt {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error)))
                if error.sqlite_error_code() != Some(rusqlite::ErrorCode::DatabaseBusy) =>
            {
                Err(store_error(operation, error))
            }
            Ok(Err(_)) => Err(StoreError::Unexpected(anyhow!(
                "SQLite: {operation}: the read panicked"
            ))),
            // Busy, or no idle reader: the blocking pool.
            _ => self.read(operation, work).await,
        }
    }

    /// How many transactions the writer has committed: with group commit, fewer than writes.
    pub(crate) fn commits(&self) -> u64 {
        self.inner.writer.commits.load(Ordering::Relaxed)
    }

    /// Reads the pragmas of every connection, the writer first.
    pub(crate) async fn pragmas(&self) -> anyhow::Result<Vec<ConnectionPragmas>> {
        let writer = self
            .on_writer("pragmas", true, |connection| read_pragmas(connection))
            .await?;
        let inner = Arc::clone(&self.inner);
        let readers = tokio::task::spawn_blocking(move || {
            inner
                .readers
                .iter()
                .map(|reader| read_pragmas(&lock(reader)))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
        .context("the SQLite pragma task failed")??;
        Ok(std::iter::once(writer).chain(readers).collect())
    }
}

impl Connections {
    /// Runs `work` on the first idle reader, or gives it back when none is idle.
    fn with_idle_reader<T, F: FnOnce(&Connection) -> T>(&self, work: F) -> Result<T, F> {
        let count = self.readers.len();
        if count == 0 {
            return Err(work);
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % count;
        for offset in 0..count {
            match self.readers[(start + offset) % count].try_lock() {
                Ok(guard) => return Ok(work(&guard)),
                Err(TryLockError::Poisoned(poisoned)) => return Ok(work(&poisoned.into_inner())),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        Err(work)
    }

    fn with_reader<T>(&self, work: impl FnOnce(&Connection) -> T) -> T {
        // Start at a rotating index so load spreads, take the first idle reader, and wait on
        // the starting one only when all are busy.
        let count = self.readers.len();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed) % count;
        for offset in 0..count {
            let guard = match self.readers[(start + offset) % count].try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            return work(&guard);
        }
        work(&lock(&self.readers[start]))
    }
}

/// A panic inside `work` cannot leave a transaction open on a reader (rusqlite rolls back when
/// a `Transaction` drops), so a poisoned connection is still sound and refusing it would only
/// turn one failed request into a dead store.
fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Classifies a SQLite error: a taken email is the caller's conflict, the rest is unexpected.
fn store_error(operation: &'static str, error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, Some(message)) = &error
        && failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        && message.contains("users.email")
    {
        return StoreError::Conflict;
    }
    StoreError::Unexpected(anyhow::Error::new(error).context(format!("SQLite: {operation}")))
}

/// The writer waits for another process's write lock by polling every millisecond (up to the
/// busy timeout) rather than with SQLite's default sleeps of up to 100 ms: a writer that
/// commits batch after batch frees the lock only briefly between them.
fn poll_for_lock(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_millis(1));
    u128::try_from(attempt).unwrap_or(0) < BUSY_TIMEOUT.as_millis()
}

/// Opens the writer connection, creating the file; `path` is `None` for an in-memory database.
pub(crate) fn open_writer(path: Option<&Path>) -> anyhow::Result<Connection> {
    let connection = match path {
        Some(path) => {
            Connection::open(path).with_context(|| format!("opening {}", path.display()))?
        }
        None => Connection::open_in_memory().context("opening an in-memory database")?,
    };
    // The busy timeout comes first: switching to WAL needs a lock another process may hold.
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .context("setting busy_timeout")?;
    if path.is_some() {
        let mode = switch_to_wal(&connection).context("setting journal_mode=WAL")?;
        if !mode.eq_ignore_ascii_case("wal") {
            anyhow::bail!("the database refused WAL mode (it reports journal_mode={mode})");
        }
    }
    configure(&connection)?;
    Ok(connection)
}

/// Sets `journal_mode=WAL` and returns the mode the database reports.
///
/// Switching a new file to WAL needs an exclusive lock, and when several connections try it at
/// the same moment SQLite may refuse all but one with "busy" at once, without waiting through
/// the busy timeout (it does so where waiting could deadlock). Several processes, or tests,
/// opening one new file together would then fail to start, so a busy answer is retried here
/// for as long as the busy timeout would have waited. Once the file is in WAL mode the switch
/// is a no-op.
fn switch_to_wal(connection: &Connection) -> rusqlite::Result<String> {
    const RETRY_PAUSE: Duration = Duration::from_millis(10);
    let attempts = BUSY_TIMEOUT.as_millis() / RETRY_PAUSE.as_millis();
    let mut attempt = 0;
    loop {
        match connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(error)
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && attempt < attempts =>
            {
                attempt += 1;
                std::thread::sleep(RETRY_PAUSE);
            }
            outcome => return outcome,
        }
    }
}

/// Opens a read-only connection to a database the writer has already set up.
pub(crate) fn open_reader(path: &Path) -> anyhow::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)
        .with_context(|| format!("opening {} read-only", path.display()))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .context("setting busy_timeout")?;
    configure(&connection)?;
    Ok(connection)
}

/// The per-connection settings (WAL mode is a property of the file and set once by the writer).
fn configure(connection: &Connection) -> anyhow::Result<()> {
    // FULL syncs the WAL at every commit: an acknowledged write survives power loss, which the
    // store traits promise. NORMAL would only survive a process crash.
    connection
        .pragma_update(None, "synchronous", "FULL")
        .context("setting synchronous=FULL")?;
    connection
        .pragma_update(None, "foreign_keys", "ON")
        .context("setting foreign_keys=ON")?;
    // Erased message content (and every other deleted row) is overwritten with zeros in its
    // page, so a checkpoint leaves none of it in the database file's free space. Only the
    // writer deletes; the readers carry it so that every connection reports alike.
    connection
        .pragma_update(None, "secure_delete", "ON")
        .context("setting secure_delete=ON")?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(())
}

fn read_pragmas(connection: &Connection) -> rusqlite::Result<ConnectionPragmas> {
    Ok(ConnectionPragmas {
        journal_mode: connection.pragma_query_value(None, "journal_mode", |row| row.get(0))?,
        synchronous: connection.pragma_query_value(None, "synchronous", |row| row.get(0))?,
        foreign_keys: connection.pragma_query_value(None, "foreign_keys", |row| row.get(0))?,
        busy_timeout_ms: connection.pragma_query_value(None, "busy_timeout", |row| row.get(0))?,
        secure_delete: connection.pragma_query_value(None, "secure_delete", |row| row.get(0))?,
        read_only: connection.is_readonly(rusqlite::MAIN_DB)?,
    })
}

#[cfg(test)]
mod tests;
