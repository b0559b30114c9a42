//! The SQLite connections and the one place that hands work to them.
//!
//! SQLite allows one writer at a time per database file, so the store keeps one writer
//! connection behind a mutex and a few read-only connections that read the WAL snapshot in
//! parallel. Every operation runs on tokio's blocking pool through [`Database::write`] or
//! [`Database::read`]; how work reaches the connections can change here without touching the
//! queries.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use anyhow::{Context, anyhow};
use rusqlite::{Connection, OpenFlags};
use twofold_core::store::StoreError;

/// Readers beyond this rarely help: reads are short and the blocking pool is shared.
pub(crate) const READER_COUNT: usize = 4;

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

const STATEMENT_CACHE_CAPACITY: usize = 32;

/// The pragmas every connection runs with, as read back from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPragmas {
    pub journal_mode: String,
    /// 2 is FULL: the WAL is synced at every commit.
    pub synchronous: i64,
    pub foreign_keys: i64,
    pub busy_timeout_ms: i64,
    pub read_only: bool,
}

/// The writer and the readers of one database.
#[derive(Clone)]
pub(crate) struct Database {
    inner: Arc<Connections>,
}

// Fields drop in order: the readers close first, so the writer is the last connection and its
// close checkpoints the WAL and removes it (a read-only connection cannot).
struct Connections {
    /// Empty for an in-memory database, whose data no second connection can see; reads then go
    /// to the writer.
    readers: Vec<Mutex<Connection>>,
    writer: Mutex<Connection>,
    next_reader: AtomicUsize,
}

impl Database {
    pub(crate) fn new(writer: Connection, readers: Vec<Connection>) -> Self {
        Database {
            inner: Arc::new(Connections {
                readers: readers.into_iter().map(Mutex::new).collect(),
                writer: Mutex::new(writer),
                next_reader: AtomicUsize::new(0),
            }),
        }
    }

    /// Runs `work` on the writer connection. `operation` names the call in errors.
    pub(crate) async fn write<T, F>(
        &self,
        operation: &'static str,
        work: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let outcome = tokio::task::spawn_blocking(move || work(&mut lock(&inner.writer)))
            .await
            .map_err(|error| {
                StoreError::Unexpected(anyhow!("the SQLite task of {operation} failed: {error}"))
            })?;
        outcome.map_err(|error| store_error(operation, error))
    }

    /// Runs `work` on a read-only connection (the writer for an in-memory database).
    pub(crate) async fn read<T, F>(&self, operation: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let outcome = tokio::task::spawn_blocking(move || inner.with_reader(work))
            .await
            .map_err(|error| {
                StoreError::Unexpected(anyhow!("the SQLite task of {operation} failed: {error}"))
            })?;
        outcome.map_err(|error| store_error(operation, error))
    }

    /// Reads the pragmas of every connection, the writer first.
    pub(crate) async fn pragmas(&self) -> anyhow::Result<Vec<ConnectionPragmas>> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut all = vec![read_pragmas(&lock(&inner.writer))?];
            for reader in &inner.readers {
                all.push(read_pragmas(&lock(reader))?);
            }
            Ok(all)
        })
        .await
        .context("the SQLite pragma task failed")?
    }
}

impl Connections {
    fn with_reader<T>(&self, work: impl FnOnce(&Connection) -> T) -> T {
        if self.readers.is_empty() {
            return work(&lock(&self.writer));
        }
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

/// A panic inside `work` cannot leave a transaction open (rusqlite rolls back when a
/// `Transaction` drops), so a poisoned connection is still sound and refusing it would only turn
/// one failed request into a dead store.
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
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(())
}

fn read_pragmas(connection: &Connection) -> anyhow::Result<ConnectionPragmas> {
    let text = |name: &str| -> anyhow::Result<String> {
        connection
            .pragma_query_value(None, name, |row| row.get(0))
            .with_context(|| format!("reading PRAGMA {name}"))
    };
    let number = |name: &str| -> anyhow::Result<i64> {
        connection
            .pragma_query_value(None, name, |row| row.get(0))
            .with_context(|| format!("reading PRAGMA {name}"))
    };
    Ok(ConnectionPragmas {
        journal_mode: text("journal_mode")?,
        synchronous: number("synchronous")?,
        foreign_keys: number("foreign_keys")?,
        busy_timeout_ms: number("busy_timeout")?,
        read_only: connection
            .is_readonly(rusqlite::MAIN_DB)
            .context("reading the read-only flag")?,
    })
}
