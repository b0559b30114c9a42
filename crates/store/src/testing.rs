//! Throw-away databases for tests, here and in the crates that build on the store.
//!
//! [`TestDatabase::sqlite`] is a file in a temporary directory; [`TestDatabase::postgres`]
//! creates `twofold_test_<random hex>` on the server at `TWOFOLD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Both are removed on drop, also when the test
//! panics. An unreachable PostgreSQL fails the test; `TWOFOLD_TEST_POSTGRES=skip` skips it.
//!
//! These are fixtures: when setting up fails they panic, as a failing assertion would.
#![allow(clippy::panic)]

use std::path::PathBuf;

use anyhow::Context;
use tempfile::TempDir;
use tokio_postgres::NoTls;
use twofold_core::store::Stores;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// An empty database of one backend, removed when dropped.
pub struct TestDatabase {
    url: String,
    kind: Kind,
}

enum Kind {
    Sqlite { path: PathBuf, _directory: TempDir },
    Postgres { _guard: DropDatabaseOnDrop },
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let directory = tempfile::tempdir()
            .unwrap_or_else(|error| panic!("creating a temporary directory: {error}"));
        // A missing subdirectory, so every test also proves that opening creates parents.
        let path = directory.path().join("data").join("twofold.db");
        TestDatabase {
            url: format!("sqlite://{}", path.display()),
            kind: Kind::Sqlite {
                path,
                _directory: directory,
            },
        }
    }

    /// `None` only when `TWOFOLD_TEST_POSTGRES=skip`.
    pub async fn postgres() -> Option<TestDatabase> {
        if std::env::var("TWOFOLD_TEST_POSTGRES").is_ok_and(|value| value == "skip") {
            eprintln!("TWOFOLD_TEST_POSTGRES=skip: not running the PostgreSQL case");
            return None;
        }
        let admin_url = std::env::var("TWOFOLD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = format!("twofold_test_{}", uuid::Uuid::new_v4().simple());
        // The URL is not echoed: it may hold a password.
        let admin = connect(&admin_url).await.unwrap_or_else(|error| {
            panic!(
                "PostgreSQL is unreachable at TWOFOLD_TEST_POSTGRES_URL (default {DEFAULT_ADMIN_URL}): \
                 {error:#}\nStart it, point TWOFOLD_TEST_POSTGRES_URL at it, or set TWOFOLD_TEST_POSTGRES=skip"
            )
        });
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|error| panic!("creating the test database {name}: {error:#}"));
        let guard = DropDatabaseOnDrop {
            admin_url: admin_url.clone(),
            name: name.clone(),
        };
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|error| panic!("TWOFOLD_TEST_POSTGRES_URL is not a URL: {error}"));
        url.set_path(&format!("/{name}"));
        Some(TestDatabase {
            url: url.into(),
            kind: Kind::Postgres { _guard: guard },
        })
    }

    /// The URL to hand to [`crate::open`].
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.kind, Kind::Sqlite { .. })
    }

    /// Opens (and on first use migrates) the database; each call is a further instance.
    pub async fn open(&self) -> Stores {
        crate::open(&self.url)
            .await
            .unwrap_or_else(|error| panic!("opening the test database: {error:#}"))
    }

    /// Runs SQL past the store, for states the traits cannot produce (a newer schema, a corrupt
    /// row, a user deleted by hand). Write SQL that both dialects accept. On SQLite foreign keys
    /// are enforced, as on the store's connections and always on PostgreSQL, so a deleted user's
    /// rows cascade the same way on both.
    pub async fn execute_raw(&self, sql: &str) {
        if let Err(error) = self.try_execute_raw(sql).await {
            panic!("running {sql:?}: {error:#}");
        }
    }

    /// [`TestDatabase::execute_raw`] for SQL the database may refuse (a trigger, a
    /// constraint): its error instead of a panic.
    pub async fn try_execute_raw(&self, sql: &str) -> anyhow::Result<()> {
        match &self.kind {
            Kind::Sqlite { path, .. } => raw_sqlite(path)
                .and_then(|connection| connection.execute_batch(sql))
                .context("SQLite"),
            Kind::Postgres { .. } => match connect(&self.url).await {
                Ok(client) => client.batch_execute(sql).await.context("PostgreSQL"),
                Err(error) => Err(error),
            },
        }
    }

    /// Runs a query past the store and returns the first column of its one row, a BIGINT (a
    /// `COUNT(*)`; cast narrower PostgreSQL types). Write SQL that both dialects accept.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let outcome = match &self.kind {
            Kind::Sqlite { path, .. } => raw_sqlite(path)
                .and_then(|connection| connection.query_row(sql, [], |row| row.get(0)))
                .context("SQLite"),
            Kind::Postgres { .. } => match connect(&self.url).await {
                Ok(client) => client
                    .query_one(sql, &[])
                    .await
                    .and_then(|row| row.try_get(0))
                    .context("PostgreSQL"),
                Err(error) => Err(error),
            },
        };
        outcome.unwrap_or_else(|error| panic!("running {sql:?}: {error:#}"))
    }
}

fn raw_sqlite(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting")?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("test PostgreSQL connection: {error}");
        }
    });
    Ok(client)
}

/// Drops its PostgreSQL database. The drop runs on a thread of its own with its own runtime:
/// `Drop` cannot await, and the test's runtime may be unwinding or shutting down.
struct DropDatabaseOnDrop {
    admin_url: String,
    name: String,
}

impl Drop for DropDatabaseOnDrop {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let admin = connect(&admin_url).await?;
                // FORCE ends the store's pooled connections, which may outlive the test.
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
        // Report, never panic: a panic while the test unwinds would abort and hide its message.
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test database {}: {error:#}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}
