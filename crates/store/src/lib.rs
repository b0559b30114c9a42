//! SQLite and PostgreSQL implementations of the store traits in `twofold_core::store`, with
//! their versioned migrations.
//!
//! [`open`] picks the backend from the database URL, applies pending migrations and hands back
//! the [`Stores`] the rest of the process shares. Both backends pass one conformance suite
//! (`tests/it`), so the domain cannot tell them apart.

pub mod postgres;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

mod audit_rows;
mod delivery_rows;
mod message_rows;
mod migration;
mod overview_rows;
mod rows;
mod sealed_rows;
mod user_rows;

use std::path::PathBuf;

use anyhow::{Context, bail};
use twofold_core::store::Stores;

use crate::sqlite::SqliteLocation;

/// Where the data lives, parsed from a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(SqliteLocation),
    /// The URL as given: `tokio_postgres::Config` parses it, so every option it knows works.
    Postgres(String),
}

impl DatabaseUrl {
    /// Accepts `sqlite://PATH` (`sqlite:///abs/path`, `sqlite://./rel`, `sqlite://rel`),
    /// `sqlite::memory:` and `postgres://…` / `postgresql://…`.
    pub fn parse(database_url: &str) -> anyhow::Result<Self> {
        let url = database_url.trim();
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(DatabaseUrl::Sqlite(SqliteLocation::Memory));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                bail!("the SQLite URL {url:?} names no file; write sqlite://PATH");
            }
            return Ok(DatabaseUrl::Sqlite(SqliteLocation::File(PathBuf::from(
                path,
            ))));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        // Only the scheme: the rest may hold a password.
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        bail!("unsupported database URL scheme {scheme:?}: use sqlite://PATH or postgres://…")
    }
}

/// Opens the database named by `database_url`, applies pending migrations, and returns its
/// stores. Refuses a database whose schema is newer than this build knows.
pub async fn open(database_url: &str) -> anyhow::Result<Stores> {
    match DatabaseUrl::parse(database_url)? {
        DatabaseUrl::Sqlite(location) => {
            let store = sqlite::SqliteStore::open(location.clone())
                .await
                .with_context(|| format!("opening the SQLite database {location}"))?;
            Ok(store.stores())
        }
        DatabaseUrl::Postgres(url) => {
            let store = postgres::PostgresStore::connect(&url)
                .await
                .context("opening the PostgreSQL database")?;
            Ok(store.stores())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_paths() {
        let cases = [
            (
                "sqlite:///var/lib/twofold/db.sqlite",
                "/var/lib/twofold/db.sqlite",
            ),
            ("sqlite://./data/twofold.db", "./data/twofold.db"),
            ("sqlite://twofold.db", "twofold.db"),
        ];
        for (url, path) in cases {
            assert_eq!(
                DatabaseUrl::parse(url).unwrap(),
                DatabaseUrl::Sqlite(SqliteLocation::File(PathBuf::from(path))),
                "{url}"
            );
        }
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap(),
            DatabaseUrl::Sqlite(SqliteLocation::Memory)
        );
    }

    #[test]
    fn postgres_urls_pass_through() {
        for url in [
            "postgres://u@h/db",
            "postgresql://u:p@h:5432/db?sslmode=disable",
        ] {
            assert_eq!(
                DatabaseUrl::parse(url).unwrap(),
                DatabaseUrl::Postgres(url.to_owned())
            );
        }
    }

    #[test]
    fn other_urls_are_refused_without_echoing_secrets() {
        for url in [
            "",
            "sqlite://",
            "mysql://root:hunter2@db/x",
            "/var/db.sqlite",
        ] {
            let error = DatabaseUrl::parse(url).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
