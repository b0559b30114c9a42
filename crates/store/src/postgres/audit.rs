//! [`AuditStore`] on PostgreSQL.
//!
//! Appending reads the last entry and inserts the next one, which is not atomic under READ
//! COMMITTED by itself: two instances would read the same last entry and fork the chain (the
//! primary key would refuse the second insert, failing its flow). So appends run in a
//! transaction holding one advisory lock, and retention takes the same lock, so the anchor
//! never moves under an append. After waiting at the lock, the fresh statement snapshot of READ
//! COMMITTED sees what the previous holder committed.

use async_trait::async_trait;
use deadpool_postgres::{Client, Transaction};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use twofold_core::audit::{link_hash, unix_millis};
use twofold_core::store::{
    AuditAnchor, AuditFilter, AuditRecord, AuditStore, ChainKey, NewAuditEvent, StoreError,
};

use super::{PostgresStore, locked_transaction, store_error};
use crate::audit_rows::{
    AuditRow, NewAuditRow, SqlValue, anchor_from_db, audit_chain_params, audit_events_query,
    audit_select, next_link, seq_to_db,
};

/// Serialises appends to the audit chain and its retention across instances ("twofold" + 3).
const AUDIT_LOCK_KEY: i64 = 0x7477_6f66_6f6c_6403;

const AUDIT_CHAIN: &str = concat!(audit_select!(), " WHERE e.seq > $1 ORDER BY e.seq LIMIT $2");

fn audit_row(row: &Row) -> Result<AuditRow, tokio_postgres::Error> {
    Ok(AuditRow {
        seq: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        kind: row.try_get(2)?,
        actor_id: row.try_get(3)?,
        subject_id: row.try_get(4)?,
        ip: row.try_get(5)?,
        user_agent: row.try_get(6)?,
        detail: row.try_get(7)?,
        key_id: row.try_get(8)?,
        prev_hash: row.try_get(9)?,
        hash: row.try_get(10)?,
        actor_email: row.try_get(11)?,
        subject_email: row.try_get(12)?,
    })
}

fn to_records(operation: &'static str, rows: &[Row]) -> Result<Vec<AuditRecord>, StoreError> {
    rows.iter()
        .map(|row| {
            let row = audit_row(row).map_err(|error| store_error(operation, error))?;
            AuditRecord::try_from(row).map_err(StoreError::Unexpected)
        })
        .collect()
}

fn seq_and_hash(row: &Row) -> Result<(i64, Vec<u8>), tokio_postgres::Error> {
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// The seq and hash the next entry links to: the newest entry's, else the anchor's, else none.
async fn last_link(
    transaction: &Transaction<'_>,
) -> Result<Option<(i64, Vec<u8>)>, tokio_postgres::Error> {
    for sql in [
        "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
        "SELECT seq, hash FROM audit_anchor WHERE id = 1",
    ] {
        let statement = transaction.prepare_cached(sql).await?;
        if let Some(row) = transaction.query_opt(&statement, &[]).await? {
            return seq_and_hash(&row).map(Some);
        }
    }
    Ok(None)
}

async fn append(
    client: &mut Client,
    event: &NewAuditEvent,
    row: &NewAuditRow,
    key: &[u8; 32],
) -> Result<u64, StoreError> {
    let transaction = locked_transaction(client, AUDIT_LOCK_KEY)
        .await
        .map_err(|error| store_error("append_audit", error))?;
    // An error returns before the commit: the transaction rolls back when it drops.
    let seq = append_locked(&transaction, event, row, key).await?;
    transaction
        .commit()
        .await
        .map_err(|error| store_error("append_audit", error))?;
    Ok(seq)
}

/// Appends inside `transaction` (READ COMMITTED), which holds the chain's advisory lock or
/// takes it here, so another writer's entry is seen before the next link is made. The caller
/// commits.
pub(super) async fn append_in(
    transaction: &Transaction<'_>,
    event: &NewAuditEvent,
    row: &NewAuditRow,
    key: &[u8; 32],
) -> Result<u64, StoreError> {
    transaction
        .batch_execute(&format!("SELECT pg_advisory_xact_lock({AUDIT_LOCK_KEY})"))
        .await
        .map_err(|error| store_error("append_audit", error))?;
    append_locked(transaction, event, row, key).await
}

async fn append_locked(
    transaction: &Transaction<'_>,
    event: &NewAuditEvent,
    row: &NewAuditRow,
    key: &[u8; 32],
) -> Result<u64, StoreError> {
    const OPERATION: &str = "append_audit";
    let database = |error| store_error(OPERATION, error);
    let (seq, prev_hash) = next_link(last_link(transaction).await.map_err(database)?)?;
    let hash = link_hash(key, &prev_hash, seq, event);
    let insert = transaction
        .prepare_cached(
            "INSERT INTO audit_events (seq, at_ms, kind, actor_id, subject_id, ip, user_agent, \
             detail, key_id, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .await
        .map_err(database)?;
    transaction
        .execute(
            &insert,
            &[
                &seq_to_db(seq)?,
                &row.at_ms,
                &row.kind,
                &row.actor_id,
                &row.subject_id,
                &row.ip,
                &row.user_agent,
                &row.detail,
                &row.key_id,
                &&prev_hash[..],
                &&hash[..],
            ],
        )
        .await
        .map_err(database)?;
    Ok(seq)
}

/// Deletes the prefix of the chain up to the newest entry from before `cutoff` (unix ms) and
/// makes that entry the anchor, in one transaction under the append lock.
async fn purge_before(client: &mut Client, cutoff: i64) -> Result<u64, tokio_postgres::Error> {
    let transaction = locked_transaction(client, AUDIT_LOCK_KEY).await?;
    let newest = transaction
        .prepare_cached(
            "SELECT seq, hash FROM audit_events WHERE seq = \
             (SELECT MAX(seq) FROM audit_events WHERE at_ms < $1)",
        )
        .await?;
    let Some(row) = transaction.query_opt(&newest, &[&cutoff]).await? else {
        transaction.rollback().await?;
        return Ok(0);
    };
    let (seq, hash) = seq_and_hash(&row)?;
    let delete = transaction
        .prepare_cached("DELETE FROM audit_events WHERE seq <= $1")
        .await?;
    let deleted = transaction.execute(&delete, &[&seq]).await?;
    let anchor = transaction
        .prepare_cached(
            "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )
        .await?;
    transaction.execute(&anchor, &[&seq, &hash]).await?;
    transaction.commit().await?;
    Ok(deleted)
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(
        &self,
        event: &NewAuditEvent,
        key: ChainKey<'_>,
    ) -> Result<u64, StoreError> {
        let row = NewAuditRow::new(event, key.id);
        let mut client = self.client("append_audit").await?;
        append(&mut client, event, &row, key.key).await
    }

    async fn audit_events(&self, filter: &AuditFilter<'_>) -> Result<Vec<AuditRecord>, StoreError> {
        const OPERATION: &str = "audit_events";
        let query = audit_events_query(filter, |n| format!("${n}"));
        let params: Vec<&(dyn ToSql + Sync)> = query
            .params
            .iter()
            .map(|value| match value {
                SqlValue::Text(text) => text as &(dyn ToSql + Sync),
                SqlValue::Integer(number) => number as &(dyn ToSql + Sync),
            })
            .collect();
        let rows = self.query_all(OPERATION, &query.sql, &params).await?;
        to_records(OPERATION, &rows)
    }

    async fn audit_chain(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        const OPERATION: &str = "audit_chain";
        let (after, limit) = audit_chain_params(after_seq, limit);
        let rows = self
            .query_all(OPERATION, AUDIT_CHAIN, &[&after, &limit])
            .await?;
        to_records(OPERATION, &rows)
    }

    async fn audit_anchor(&self) -> Result<Option<AuditAnchor>, StoreError> {
        const OPERATION: &str = "audit_anchor";
        let Some(row) = self
            .query_opt(
                OPERATION,
                "SELECT seq, hash FROM audit_anchor WHERE id = 1",
                &[],
            )
            .await?
        else {
            return Ok(None);
        };
        let (seq, hash) = seq_and_hash(&row).map_err(|error| store_error(OPERATION, error))?;
        Ok(Some(anchor_from_db(seq, &hash)?))
    }

    async fn purge_audit_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        const OPERATION: &str = "purge_audit_before";
        let mut client = self.client(OPERATION).await?;
        purge_before(&mut client, unix_millis(cutoff))
            .await
            .map_err(|error| store_error(OPERATION, error))
    }
}
