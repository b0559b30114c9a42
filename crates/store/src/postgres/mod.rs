//! The PostgreSQL backend: a deadpool connection pool over tokio-postgres, with every
//! statement prepared once per connection and cached.
//!
//! Several Twofold instances may share one database; the statements that must be atomic across
//! them say why in place.

mod audit;
mod codes;
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
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use twofold_core::store::{HealthCheck, SchemaVersion, StoreError, Stores};

use crate::migration::latest_version;

const POOL_SIZE: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for a free connection before it fails rather than hangs.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The name migration 1 gives the unique index on `users.email`: a violation of it, and only
/// of it, is a [`StoreError::Conflict`].
const USERS_EMAIL_KEY: &str = "users_email_key";

/// A migrated PostgreSQL database, implementing every store trait.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PostgresStore")
    }
}

impl PostgresStore {
    /// Connects to `url` (anything `tokio_postgres::Config` parses; no TLS) and migrates.
    pub async fn connect(url: &str) -> anyhow::Result<PostgresStore> {
        // The parse error never quotes the URL, which may hold a password.
        let mut config: tokio_postgres::Config =
            url.parse().context("the PostgreSQL URL does not parse")?;
        if config.get_application_name().is_none() {
            config.application_name("twofold");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .build()
            .context("building the PostgreSQL connection pool")?;
        let mut client = pool.get().await.context("connecting to PostgreSQL")?;
        migrations::run(&mut client).await?;
        Ok(PostgresStore { pool })
    }

    /// The stores of this database, sharing its pool.
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

    async fn client(
        &self,
        operation: &'static str,
    ) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|error| {
            StoreError::Unexpected(anyhow!("PostgreSQL: {operation}: no connection: {error}"))
        })
    }

    /// Runs one prepared statement; returns the rows it changed.
    async fn execute(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client(operation).await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|error| store_error(operation, error))?;
        client
            .execute(&statement, params)
            .await
            .map_err(|error| store_error(operation, error))
    }

    /// Runs one prepared query and returns all its rows. `sql` may be built at run time (from
    /// fixed fragments, never from a caller's text): statements are cached by their text.
    async fn query_all(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client(operation).await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|error| store_error(operation, error))?;
        client
            .query(&statement, params)
            .await
            .map_err(|error| store_error(operation, error))
    }

    /// Runs one prepared query expected to return at most one row.
    async fn query_opt(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.client(operation).await?;
        let statement = client
            .prepare_cached(sql)
            .await
            .map_err(|error| store_error(operation, error))?;
        client
            .query_opt(&statement, params)
            .await
            .map_err(|error| store_error(operation, error))
    }
}

/// Classifies a PostgreSQL error: a taken email is the caller's conflict, the rest unexpected.
fn store_error(operation: &'static str, error: tokio_postgres::Error) -> StoreError {
    if let Some(db_error) = error.as_db_error()
        && *db_error.code() == SqlState::UNIQUE_VIOLATION
        && db_error.constraint() == Some(USERS_EMAIL_KEY)
    {
        return StoreError::Conflict;
    }
    StoreError::Unexpected(anyhow::Error::new(error).context(format!("PostgreSQL: {operation}")))
}

/// A READ COMMITTED transaction holding the advisory lock `lock_key` until it ends. Another
/// instance waits at the lock, and because READ COMMITTED takes a fresh snapshot for every
/// statement, what it reads after the wait includes what the lock holder committed. (Under
/// REPEATABLE READ the snapshot would predate the wait, so the level is set, not assumed.)
async fn locked_transaction(
    client: &mut deadpool_postgres::Client,
    lock_key: i64,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .batch_execute(&format!(
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({lock_key})"
        ))
        .await?;
    Ok(transaction)
}

#[async_trait]
impl HealthCheck for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.query_opt("ping", "SELECT 1", &[]).await.map(drop)
    }

    async fn schema_version(&self) -> Result<SchemaVersion, StoreError> {
        let row = self
            .query_opt(
                "schema_version",
                "SELECT MAX(version) FROM schema_migrations",
                &[],
            )
            .await?;
        let applied = match row {
            Some(row) => row
                .try_get::<_, Option<i32>>(0)
                .map_err(|error| store_error("schema_version", error))?,
            None => None,
        };
        Ok(SchemaVersion {
            applied,
            expected: latest_version(migrations::MIGRATIONS),
        })
    }
}
