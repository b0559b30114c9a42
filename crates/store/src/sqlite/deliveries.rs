//! [`DeliveryQueueStore`] on SQLite.
//!
//! Claiming is one `UPDATE … RETURNING` inside an IMMEDIATE transaction: the transaction holds
//! the database's write lock from its first read, so another connection or process can neither
//! claim the same rows in between nor see them unclaimed afterwards.

use async_trait::async_trait;
use rusqlite::{Row, params};
use time::OffsetDateTime;
use twofold_core::delivery::NextAttempt;
use twofold_core::store::{
    Delivery, DeliveryCounts, DeliveryQueueStore, FailedDelivery, NewDelivery, PendingByChannel,
    StoreError,
};
use uuid::Uuid;

use super::SqliteStore;
use crate::delivery_rows::{
    DeliveryRow, FailedDeliveryRow, NewDeliveryRow, PENDING_BY_CHANNEL, attempts_to_db, counts,
    delivery_columns, failed_delivery_columns, lease_end, pending_counts, to_deliveries,
};
use crate::rows::to_unix;

const CLAIM_DUE: &str = concat!(
    "UPDATE deliveries SET claimed_until = ?2 \
     WHERE id IN (SELECT id FROM deliveries \
                  WHERE status = 'pending' AND next_attempt_at <= ?1 \
                    AND (claimed_until IS NULL OR claimed_until <= ?1) \
                  ORDER BY next_attempt_at, created_at LIMIT ?3) \
     RETURNING ",
    delivery_columns!()
);

const FAILED_DELIVERIES: &str = concat!(
    "SELECT ",
    failed_delivery_columns!(),
    " FROM deliveries WHERE last_error IS NOT NULL ORDER BY last_failed_at DESC, id LIMIT ?1"
);

fn delivery_row(row: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: row.get(0)?,
        channel: row.get(1)?,
        recipient: row.get(2)?,
        key_id: row.get(3)?,
        sealed_payload: row.get(4)?,
        attempts: row.get(5)?,
        created_at: row.get(6)?,
    })
}

fn failed_delivery_row(row: &Row<'_>) -> rusqlite::Result<FailedDeliveryRow> {
    Ok(FailedDeliveryRow {
        id: row.get(0)?,
        channel: row.get(1)?,
        recipient: row.get(2)?,
        status: row.get(3)?,
        attempts: row.get(4)?,
        created_at: row.get(5)?,
        next_attempt_at: row.get(6)?,
        last_error: row.get(7)?,
        last_failed_at: row.get(8)?,
    })
}

#[async_trait]
impl DeliveryQueueStore for SqliteStore {
    async fn enqueue(&self, delivery: &NewDelivery) -> Result<(), StoreError> {
        let row = NewDeliveryRow::from(delivery);
        self.database
            .write("enqueue", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO deliveries (id, channel, recipient, status, key_id, \
                         sealed_payload, created_at, next_attempt_at) \
                         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?6)",
                    )?
                    .execute(params![
                        row.id,
                        row.channel,
                        row.recipient,
                        row.key_id,
                        row.sealed_payload,
                        row.created_at,
                    ])
            })
            .await
            .map(drop)
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let until = lease_end(now, lease)?;
        let now = to_unix(now);
        let rows = self
            .database
            .write("claim_due", move |connection| {
                let transaction = connection.savepoint()?;
                let rows = transaction
                    .prepare_cached(CLAIM_DUE)?
                    .query_map(params![now, until, limit], delivery_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                transaction.commit()?;
                Ok(rows)
            })
            .await?;
        to_deliveries(rows)
    }

    async fn mark_sent(&self, id: Uuid) -> Result<bool, StoreError> {
        let id = id.to_string();
        let deleted = self
            .database
            .write("mark_sent", move |connection| {
                connection
                    .prepare_cached("DELETE FROM deliveries WHERE id = ?1 AND status = 'pending'")?
                    .execute([id])
            })
            .await?;
        Ok(deleted == 1)
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        attempts: u32,
        next: NextAttempt,
        last_error: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (id, attempts, error, now) = (
            id.to_string(),
            attempts_to_db(attempts)?,
            last_error.to_owned(),
            to_unix(now),
        );
        let changed = self
            .database
            .write("mark_failed", move |connection| match next {
                NextAttempt::At(at) => connection
                    .prepare_cached(
                        "UPDATE deliveries SET attempts = ?2, next_attempt_at = ?3, \
                         claimed_until = NULL, last_error = ?4, last_failed_at = ?5 \
                         WHERE id = ?1 AND status = 'pending'",
                    )?
                    .execute(params![id, attempts, to_unix(at), error, now]),
                NextAttempt::Never => connection
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'failed', attempts = ?2, \
                         key_id = NULL, sealed_payload = NULL, next_attempt_at = NULL, \
                         claimed_until = NULL, last_error = ?3, last_failed_at = ?4 \
                         WHERE id = ?1 AND status = 'pending'",
                    )?
                    .execute(params![id, attempts, error, now]),
            })
            .await?;
        Ok(changed == 1)
    }

    async fn failed_deliveries(&self, limit: u32) -> Result<Vec<FailedDelivery>, StoreError> {
        let rows = self
            .database
            .read("failed_deliveries", move |connection| {
                connection
                    .prepare_cached(FAILED_DELIVERIES)?
                    .query_map([limit], failed_delivery_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(|row| FailedDelivery::try_from(row).map_err(StoreError::Unexpected))
            .collect()
    }

    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let (pending, failed) = self
            .database
            .read("delivery_counts", |connection| {
                connection
                    .prepare_cached(
                        "SELECT COUNT(CASE WHEN status = 'pending' THEN 1 END), \
                         COUNT(CASE WHEN status = 'failed' THEN 1 END) FROM deliveries",
                    )?
                    .query_row([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
            })
            .await?;
        counts(pending, failed)
    }

    async fn pending_by_channel(&self) -> Result<PendingByChannel, StoreError> {
        let (email, sms) = self
            .database
            .read("pending_by_channel", |connection| {
                connection
                    .prepare_cached(PENDING_BY_CHANNEL)?
                    .query_row([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
            })
            .await?;
        pending_counts(email, sms)
    }
}
