//! The SQLite backend: one file in WAL mode, one writer connection and a few readers.
//!
//! Every commit is synced (`synchronous=FULL`), foreign keys are enforced, deleted content is
//! overwritten with zeros (`secure_delete`), and a statement waits up to five seconds for
//! another process's write lock before it fails.

mod audit;
mod backup;
mod checkpoint;
mod codes;
mod connection;
mod deliveries;
mod enrollment;
mod factors;
mod messages;
mod migrations;
mod policy;
mod sealed;
mod sessions;
mod throttle;
mod users;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use twofold_core::store::{HealthCheck, SchemaVersion, StoreError, Stores};

pub use self::backup::backup;
pub use self::connection::ConnectionPragmas;
use self::connection::{Database, READER_COUNT, open_reader, open_writer};
use crate::migration::latest_version;

/// Where a SQLite database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    File(PathBuf),
    /// A private in-memory database, gone with the process: for tests only.
    Memory,
}

impl fmt::Display for SqliteLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqliteLocation::File(path) => write!(f, "{}", path.display()),
            SqliteLocation::Memory => f.write_str(":memory:"),
        }
    }
}

/// A migrated SQLite database, implementing every store trait.
#[derive(Clone)]
pub struct SqliteStore {
    database: Database,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating the file and its parent directories if need be) and migrates.
    pub async fn open(location: SqliteLocation) -> anyhow::Result<SqliteStore> {
        tokio::task::spawn_blocking(move || open_blocking(&location))
            .await
            .context("the SQLite open task failed")?
    }

    /// The stores of this database, sharing its connections.
    pub fn stores(&self) -> Stores {
        let store = Arc::new(self.clone());
        Stores {
            users: store.clone(),
            sessions: store.clone(),
            factors: store.clone(),
            throttle: store.clone(),
            codes: store.clone(),
            deliveries: store.clone(),
            policy: store.clone(),
            audit: store.clone(),
            messages: store.clone(),
            health: store,
        }
    }

    /// The pragmas each connection runs with, the writer first: lets tests and start-up checks
    /// confirm the durability settings took effect.
    pub async fn pragmas(&self) -> anyhow::Result<Vec<ConnectionPragmas>> {
        self.database.pragmas().await
    }

    /// How many transactions this store's writer has committed since it opened. Concurrent
    /// writes share a commit (group commit), so under load this grows slower than the writes.
    pub fn commits(&self) -> u64 {
        self.database.commits()
    }
}

fn open_blocking(location: &SqliteLocation) -> anyhow::Result<SqliteStore> {
    let database = match location {
        SqliteLocation::File(path) => {
            create_parent_directory(path)?;
            let mut writer = open_writer(Some(path))?;
            migrations::run(&mut writer)?;
            // Readers open after the migrations so they never see a half-built schema.
            let readers = (0..READER_COUNT)
                .map(|_| open_reader(path))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Database::new(writer, readers, Some(path))?
        }
        SqliteLocation::Memory => {
            let mut writer = open_writer(None)?;
            migrations::run(&mut writer)?;
            Database::new(writer, Vec::new(), None)?
        }
    };
    Ok(SqliteStore { database })
}

fn create_parent_directory(path: &Path) -> anyhow::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the directory {}", parent.display())),
        _ => Ok(()),
    }
}

#[async_trait]
impl HealthCheck for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.database
            .lookup("ping", |connection| {
                connection
                    .prepare_cached("SELECT 1")?
                    .query_row([], |row| row.get::<_, i64>(0))
            })
            .await
            .map(drop)
    }

    async fn schema_version(&self) -> Result<SchemaVersion, StoreError> {
        let applied = self
            .database
            .read("schema_version", |connection| {
                connection
                    .prepare_cached("SELECT MAX(version) FROM schema_migrations")?
                    .query_row([], |row| row.get::<_, Option<i32>>(0))
            })
            .await?;
        Ok(SchemaVersion {
            applied,
            expected: latest_version(migrations::MIGRATIONS),
        })
    }
}
