//! [`ThrottleStore`] on PostgreSQL.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use twofold_core::store::{FailureCount, StoreError, ThrottleStore};

use super::{PostgresStore, store_error};
use crate::rows::{FailureRow, to_unix};

fn to_failure_count(operation: &'static str, row: &Row) -> Result<FailureCount, StoreError> {
    let row = FailureRow {
        failures: i64::from(
            row.try_get::<_, i32>(0)
                .map_err(|error| store_error(operation, error))?,
        ),
        last_failure_at: row
            .try_get(1)
            .map_err(|error| store_error(operation, error))?,
    };
    Ok(FailureCount::try_from(row)?)
}

#[async_trait]
impl ThrottleStore for PostgresStore {
    async fn record_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<FailureCount, StoreError> {
        const OPERATION: &str = "record_failure";
        // One upsert: concurrent failures under one key either insert or wait on the row and
        // then add to the committed count, so none is lost.
        let row = self
            .query_opt(
                OPERATION,
                "INSERT INTO throttle_failures (key, failures, last_failure_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE \
                 SET failures = throttle_failures.failures + 1, last_failure_at = $2 \
                 RETURNING failures, last_failure_at",
                &[&key, &to_unix(now)],
            )
            .await?;
        let row = row.ok_or_else(|| {
            StoreError::Unexpected(anyhow::anyhow!(
                "PostgreSQL: {OPERATION}: the upsert returned no row"
            ))
        })?;
        to_failure_count(OPERATION, &row)
    }

    async fn failures(&self, key: &str) -> Result<Option<FailureCount>, StoreError> {
        const OPERATION: &str = "failures";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT failures, last_failure_at FROM throttle_failures WHERE key = $1",
                &[&key],
            )
            .await?;
        row.map(|row| to_failure_count(OPERATION, &row)).transpose()
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        self.execute(
            "clear_failures",
            "DELETE FROM throttle_failures WHERE key = $1",
            &[&key],
        )
        .await
        .map(drop)
    }
}
