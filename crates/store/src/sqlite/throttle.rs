//! [`ThrottleStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use twofold_core::store::{FailureCount, StoreError, ThrottleStore};

use super::SqliteStore;
use crate::rows::{FailureRow, to_unix};

fn failure_row(row: &Row<'_>) -> rusqlite::Result<FailureRow> {
    Ok(FailureRow {
        failures: row.get(0)?,
        last_failure_at: row.get(1)?,
    })
}

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn record_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<FailureCount, StoreError> {
        let key = key.to_owned();
        // One upsert: the count is read and raised in the same statement, so concurrent
        // failures are never lost.
        let row = self
            .database
            .write("record_failure", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO throttle_failures (key, failures, last_failure_at) \
                         VALUES (?1, 1, ?2) \
                         ON CONFLICT (key) DO UPDATE \
                         SET failures = throttle_failures.failures + 1, last_failure_at = ?2 \
                         RETURNING failures, last_failure_at",
                    )?
                    .query_row(params![key, to_unix(now)], failure_row)
            })
            .await?;
        Ok(FailureCount::try_from(row)?)
    }

    async fn failures(&self, key: &str) -> Result<Option<FailureCount>, StoreError> {
        let key = key.to_owned();
        let row = self
            .database
            .read("failures", move |connection| {
                connection
                    .prepare_cached(
                        "SELECT failures, last_failure_at FROM throttle_failures WHERE key = ?1",
                    )?
                    .query_row([key], failure_row)
                    .optional()
            })
            .await?;
        Ok(row.map(FailureCount::try_from).transpose()?)
    }

    async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.database
            .write("clear_failures", move |connection| {
                connection
                    .prepare_cached("DELETE FROM throttle_failures WHERE key = ?1")?
                    .execute([key])
            })
            .await
            .map(drop)
    }
}
