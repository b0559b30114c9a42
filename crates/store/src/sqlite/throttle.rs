//! [`ThrottleStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use twofold_core::store::{FailureCount, LockoutPolicy, StoreError, ThrottleStore};

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
        forget_after_seconds: i64,
    ) -> Result<FailureCount, StoreError> {
        let key = key.to_owned();
        // One upsert: the count is read and raised (or, after a quiet spell, restarted) in the
        // same statement, so concurrent failures are never lost.
        let row = self
            .database
            .write("record_failure", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO throttle_failures (key, failures, last_failure_at) \
                         VALUES (?1, 1, ?2) \
                         ON CONFLICT (key) DO UPDATE \
                         SET failures = CASE WHEN ?3 > 0 \
                         AND throttle_failures.last_failure_at + ?3 <= ?2 THEN 1 \
                         ELSE throttle_failures.failures + 1 END, last_failure_at = ?2 \
                         RETURNING failures, last_failure_at",
                    )?
                    .query_row(
                        params![key, to_unix(now), forget_after_seconds],
                        failure_row,
                    )
            })
            .await?;
        Ok(FailureCount::try_from(row)?)
    }

    async fn failures(&self, key: &str) -> Result<Option<FailureCount>, StoreError> {
        let key = key.to_owned();
        let row = self
            .database
            .lookup("failures", move |connection| {
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

    async fn take_attempt(
        &self,
        key: &str,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<FailureCount>, StoreError> {
        let key = key.to_owned();
        let policy = *policy;
        // One conditional upsert: a new key is inserted (never locked); an existing one is
        // raised only if not locked, where the wait is `first << min(failures - free, 16)`
        // capped at `longest` (64-bit integers: 16 doublings stay far from overflow); a key
        // quiet for `forget` seconds (when not 0) is neither locked nor counted any more. A
        // locked key updates no row and so returns none. The single writer (and the database
        // lock across processes) makes check and raise one step.
        let row = self
            .database
            .write("take_attempt", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO throttle_failures (key, failures, last_failure_at) \
                         VALUES (?1, 1, ?2) \
                         ON CONFLICT (key) DO UPDATE \
                         SET failures = CASE WHEN ?6 > 0 \
                         AND throttle_failures.last_failure_at + ?6 <= ?2 THEN 1 \
                         ELSE throttle_failures.failures + 1 END, last_failure_at = ?2 \
                         WHERE (?6 > 0 AND throttle_failures.last_failure_at + ?6 <= ?2) \
                         OR NOT (throttle_failures.failures >= ?3 \
                         AND throttle_failures.last_failure_at \
                         + MIN(?5, ?4 << MIN(MAX(throttle_failures.failures - ?3, 0), 16)) > ?2) \
                         RETURNING failures, last_failure_at",
                    )?
                    .query_row(
                        params![
                            key,
                            to_unix(now),
                            i64::from(policy.free_failures),
                            policy.first_wait_seconds,
                            policy.longest_wait_seconds,
                            policy.forget_after_seconds,
                        ],
                        failure_row,
                    )
                    .optional()
            })
            .await?;
        Ok(row.map(FailureCount::try_from).transpose()?)
    }

    async fn give_back_attempt(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        // The table allows no zero count, so the last failure goes with its row. IMMEDIATE
        // takes the write lock at BEGIN: no other process writes between the two statements.
        self.database
            .write("give_back_attempt", move |connection| {
                let transaction = connection.savepoint()?;
                transaction
                    .prepare_cached(
                        "DELETE FROM throttle_failures WHERE key = ?1 AND failures <= 1",
                    )?
                    .execute([&key])?;
                transaction
                    .prepare_cached(
                        "UPDATE throttle_failures SET failures = failures - 1 \
                         WHERE key = ?1 AND failures > 1",
                    )?
                    .execute([&key])?;
                transaction.commit()
            })
            .await
    }
}
