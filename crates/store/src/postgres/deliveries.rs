//! [`DeliveryQueueStore`] on PostgreSQL.
//!
//! Claiming is the classic queue statement: `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
//! LOCKED)`. Concurrent claimers skip the rows another one has locked instead of waiting for
//! them, and a row whose lock was released by a committed claim is re-checked against the
//! WHERE clause (READ COMMITTED), where its new `claimed_until` excludes it. So instances
//! sharing the database never claim the same row.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use twofold_core::delivery::NextAttempt;
use twofold_core::store::{
    Delivery, DeliveryCounts, DeliveryQueueStore, FailedDelivery, NewDelivery, PendingByChannel,
    StoreError,
};
use uuid::Uuid;

use super::{PostgresStore, store_error};
use crate::delivery_rows::{
    DeliveryRow, FailedDeliveryRow, NewDeliveryRow, PENDING_BY_CHANNEL, attempts_to_db, counts,
    delivery_columns, failed_delivery_columns, lease_end, pending_counts, to_deliveries,
};
use crate::rows::to_unix;

const CLAIM_DUE: &str = concat!(
    "UPDATE deliveries SET claimed_until = $2 \
     WHERE id IN (SELECT id FROM deliveries \
                  WHERE status = 'pending' AND next_attempt_at <= $1 \
                    AND (claimed_until IS NULL OR claimed_until <= $1) \
                  ORDER BY next_attempt_at, created_at LIMIT $3 \
                  FOR UPDATE SKIP LOCKED) \
     RETURNING ",
    delivery_columns!()
);

const FAILED_DELIVERIES: &str = concat!(
    "SELECT ",
    failed_delivery_columns!(),
    " FROM deliveries WHERE last_error IS NOT NULL ORDER BY last_failed_at DESC, id LIMIT $1"
);

fn delivery_row(row: &Row) -> Result<DeliveryRow, tokio_postgres::Error> {
    Ok(DeliveryRow {
        id: row.try_get(0)?,
        channel: row.try_get(1)?,
        recipient: row.try_get(2)?,
        key_id: row.try_get(3)?,
        sealed_payload: row.try_get(4)?,
        attempts: i64::from(row.try_get::<_, i32>(5)?),
        created_at: row.try_get(6)?,
    })
}

fn failed_delivery_row(row: &Row) -> Result<FailedDeliveryRow, tokio_postgres::Error> {
    Ok(FailedDeliveryRow {
        id: row.try_get(0)?,
        channel: row.try_get(1)?,
        recipient: row.try_get(2)?,
        status: row.try_get(3)?,
        attempts: i64::from(row.try_get::<_, i32>(4)?),
        created_at: row.try_get(5)?,
        next_attempt_at: row.try_get(6)?,
        last_error: row.try_get(7)?,
        last_failed_at: row.try_get(8)?,
    })
}

#[async_trait]
impl DeliveryQueueStore for PostgresStore {
    async fn enqueue(&self, delivery: &NewDelivery) -> Result<(), StoreError> {
        let row = NewDeliveryRow::from(delivery);
        self.execute(
            "enqueue",
            "INSERT INTO deliveries (id, channel, recipient, status, key_id, sealed_payload, \
             created_at, next_attempt_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6)",
            &[
                &row.id,
                &row.channel,
                &row.recipient,
                &row.key_id,
                &row.sealed_payload,
                &row.created_at,
            ],
        )
        .await
        .map(drop)
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        const OPERATION: &str = "claim_due";
        let until = lease_end(now, lease)?;
        let rows = self
            .query_all(
                OPERATION,
                CLAIM_DUE,
                &[&to_unix(now), &until, &i64::from(limit)],
            )
            .await?;
        let rows = rows
            .iter()
            .map(delivery_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| store_error(OPERATION, error))?;
        to_deliveries(rows)
    }

    async fn mark_sent(&self, id: Uuid) -> Result<bool, StoreError> {
        let deleted = self
            .execute(
                "mark_sent",
                "DELETE FROM deliveries WHERE id = $1 AND status = 'pending'",
                &[&id.to_string()],
            )
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
        let (id, attempts, now) = (id.to_string(), attempts_to_db(attempts)?, to_unix(now));
        let changed = match next {
            NextAttempt::At(at) => {
                self.execute(
                    "mark_failed",
                    "UPDATE deliveries SET attempts = $2, next_attempt_at = $3, \
                     claimed_until = NULL, last_error = $4, last_failed_at = $5 \
                     WHERE id = $1 AND status = 'pending'",
                    &[&id, &attempts, &to_unix(at), &last_error, &now],
                )
                .await?
            }
            NextAttempt::Never => {
                self.execute(
                    "mark_failed",
                    "UPDATE deliveries SET status = 'failed', attempts = $2, key_id = NULL, \
                     sealed_payload = NULL, next_attempt_at = NULL, claimed_until = NULL, \
                     last_error = $3, last_failed_at = $4 \
                     WHERE id = $1 AND status = 'pending'",
                    &[&id, &attempts, &last_error, &now],
                )
                .await?
            }
        };
        Ok(changed == 1)
    }

    async fn failed_deliveries(&self, limit: u32) -> Result<Vec<FailedDelivery>, StoreError> {
        const OPERATION: &str = "failed_deliveries";
        let rows = self
            .query_all(OPERATION, FAILED_DELIVERIES, &[&i64::from(limit)])
            .await?;
        rows.iter()
            .map(|row| {
                let row =
                    failed_delivery_row(row).map_err(|error| store_error(OPERATION, error))?;
                FailedDelivery::try_from(row).map_err(StoreError::Unexpected)
            })
            .collect()
    }

    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        const OPERATION: &str = "delivery_counts";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT COUNT(*) FILTER (WHERE status = 'pending'), \
                 COUNT(*) FILTER (WHERE status = 'failed') FROM deliveries",
                &[],
            )
            .await?
            .ok_or_else(|| {
                StoreError::Unexpected(anyhow::anyhow!("PostgreSQL: {OPERATION}: no row"))
            })?;
        let pending: i64 = row
            .try_get(0)
            .map_err(|error| store_error(OPERATION, error))?;
        let failed: i64 = row
            .try_get(1)
            .map_err(|error| store_error(OPERATION, error))?;
        counts(pending, failed)
    }

    async fn pending_by_channel(&self) -> Result<PendingByChannel, StoreError> {
        const OPERATION: &str = "pending_by_channel";
        let row = self
            .query_opt(OPERATION, PENDING_BY_CHANNEL, &[])
            .await?
            .ok_or_else(|| {
                StoreError::Unexpected(anyhow::anyhow!("PostgreSQL: {OPERATION}: no row"))
            })?;
        let email: i64 = row
            .try_get(0)
            .map_err(|error| store_error(OPERATION, error))?;
        let sms: i64 = row
            .try_get(1)
            .map_err(|error| store_error(OPERATION, error))?;
        pending_counts(email, sms)
    }
}
