//! [`ThrottleStore`] on PostgreSQL.

use async_trait::async_trait;
use deadpool_postgres::Client;
use time::OffsetDateTime;
use tokio_postgres::{IsolationLevel, Row};
use twofold_core::store::{FailureCount, LockoutPolicy, StoreError, ThrottleStore};

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

/// Takes one failure back from `key` in a READ COMMITTED transaction that first locks the row,
/// so that the row it then lowers or deletes is the latest one and stays so until the end. (A
/// DELETE and an UPDATE conditioned on the count without the lock could both miss when another
/// call changes the count between them, losing the give-back.)
async fn give_back_attempt(client: &mut Client, key: &str) -> Result<(), tokio_postgres::Error> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    let select = transaction
        .prepare_cached("SELECT failures FROM throttle_failures WHERE key = $1 FOR UPDATE")
        .await?;
    let Some(row) = transaction.query_opt(&select, &[&key]).await? else {
        // Nothing to give back.
        return transaction.commit().await;
    };
    let failures: i32 = row.try_get(0)?;
    // The table allows no zero count, so the last failure goes with its row.
    let statement = if failures <= 1 {
        "DELETE FROM throttle_failures WHERE key = $1"
    } else {
        "UPDATE throttle_failures SET failures = failures - 1 WHERE key = $1"
    };
    let statement = transaction.prepare_cached(statement).await?;
    transaction.execute(&statement, &[&key]).await?;
    transaction.commit().await
}

#[async_trait]
impl ThrottleStore for PostgresStore {
    async fn record_failure(
        &self,
        key: &str,
        now: OffsetDateTime,
        forget_after_seconds: i64,
    ) -> Result<FailureCount, StoreError> {
        const OPERATION: &str = "record_failure";
        // One upsert: concurrent failures under one key either insert or wait on the row and
        // then add to the committed count (or restart it after a quiet spell), so none is lost.
        let row = self
            .query_opt(
                OPERATION,
                "INSERT INTO throttle_failures (key, failures, last_failure_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE \
                 SET failures = CASE WHEN $3::BIGINT > 0 \
                 AND throttle_failures.last_failure_at + $3::BIGINT <= $2 THEN 1 \
                 ELSE throttle_failures.failures + 1 END, last_failure_at = $2 \
                 RETURNING failures, last_failure_at",
                &[&key, &to_unix(now), &forget_after_seconds],
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

    async fn take_attempt(
        &self,
        key: &str,
        now: OffsetDateTime,
        policy: &LockoutPolicy,
    ) -> Result<Option<FailureCount>, StoreError> {
        const OPERATION: &str = "take_attempt";
        // One conditional upsert. A new key is inserted (never locked). Concurrent callers under
        // one key wait on the row (or on the inserting one's index entry) and then, under READ
        // COMMITTED, have the DO UPDATE's WHERE re-checked against the latest committed row: a
        // locked key updates nothing and returns no row; a key quiet for `forget` seconds (when
        // not 0) is neither locked nor counted any more. The wait is computed in BIGINT
        // (`failures` is INTEGER), the shift clamped to 0..=16.
        let row = self
            .query_opt(
                OPERATION,
                "INSERT INTO throttle_failures (key, failures, last_failure_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE \
                 SET failures = CASE WHEN $6::BIGINT > 0 \
                 AND throttle_failures.last_failure_at + $6::BIGINT <= $2 THEN 1 \
                 ELSE throttle_failures.failures + 1 END, last_failure_at = $2 \
                 WHERE ($6::BIGINT > 0 AND throttle_failures.last_failure_at + $6::BIGINT <= $2) \
                 OR NOT (throttle_failures.failures >= $3::BIGINT \
                 AND throttle_failures.last_failure_at + LEAST($5::BIGINT, $4::BIGINT \
                 << LEAST(GREATEST(throttle_failures.failures - $3::BIGINT, 0), 16)::INTEGER) > $2) \
                 RETURNING failures, last_failure_at",
                &[
                    &key,
                    &to_unix(now),
                    &i64::from(policy.free_failures),
                    &policy.first_wait_seconds,
                    &policy.longest_wait_seconds,
                    &policy.forget_after_seconds,
                ],
            )
            .await?;
        row.map(|row| to_failure_count(OPERATION, &row)).transpose()
    }

    async fn give_back_attempt(&self, key: &str) -> Result<(), StoreError> {
        const OPERATION: &str = "give_back_attempt";
        let mut client = self.client(OPERATION).await?;
        give_back_attempt(&mut client, key)
            .await
            .map_err(|error| store_error(OPERATION, error))
    }
}
