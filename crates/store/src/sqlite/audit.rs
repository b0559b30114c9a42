//! [`AuditStore`] on SQLite.
//!
//! Appending reads the last entry and inserts the next in one IMMEDIATE transaction, which takes
//! the database's write lock at BEGIN: no other connection, of this process or another, can
//! append between the read and the insert, so the chain has no fork and no gap. Retention runs
//! the same way, so an append never links to an entry being removed without the anchor moving.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;
use twofold_core::audit::{link_hash, unix_millis};
use twofold_core::store::{
    AuditAnchor, AuditFilter, AuditRecord, AuditStore, ChainKey, NewAuditEvent, StoreError,
};

use super::SqliteStore;
use crate::audit_rows::{
    AuditRow, NewAuditRow, SqlValue, anchor_from_db, audit_chain_params, audit_events_query,
    audit_select, next_link, seq_to_db,
};

const AUDIT_CHAIN: &str = concat!(audit_select!(), " WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2");

fn audit_row(row: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: row.get(0)?,
        at_ms: row.get(1)?,
        kind: row.get(2)?,
        actor_id: row.get(3)?,
        subject_id: row.get(4)?,
        ip: row.get(5)?,
        user_agent: row.get(6)?,
        detail: row.get(7)?,
        key_id: row.get(8)?,
        prev_hash: row.get(9)?,
        hash: row.get(10)?,
        actor_email: row.get(11)?,
        subject_email: row.get(12)?,
    })
}

fn to_records(rows: Vec<AuditRow>) -> Result<Vec<AuditRecord>, StoreError> {
    rows.into_iter()
        .map(|row| AuditRecord::try_from(row).map_err(StoreError::Unexpected))
        .collect()
}

fn seq_and_hash(row: &Row<'_>) -> rusqlite::Result<(i64, Vec<u8>)> {
    Ok((row.get(0)?, row.get(1)?))
}

/// The seq and hash the next entry links to: the newest entry's, else the anchor's, else none.
fn last_link(transaction: &Connection) -> rusqlite::Result<Option<(i64, Vec<u8>)>> {
    let last = transaction
        .prepare_cached("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")?
        .query_row([], seq_and_hash)
        .optional()?;
    if last.is_some() {
        return Ok(last);
    }
    transaction
        .prepare_cached("SELECT seq, hash FROM audit_anchor WHERE id = 1")?
        .query_row([], seq_and_hash)
        .optional()
}

/// Appends inside `transaction`. The outer result is the database's; the inner one is a stored
/// value that does not convert (then nothing is committed).
pub(super) fn append(
    transaction: &Connection,
    event: &NewAuditEvent,
    row: &NewAuditRow,
    key: &[u8; 32],
) -> rusqlite::Result<anyhow::Result<u64>> {
    let (seq, prev_hash) = match next_link(last_link(transaction)?) {
        Ok(link) => link,
        Err(error) => return Ok(Err(error)),
    };
    let seq_db = match seq_to_db(seq) {
        Ok(seq_db) => seq_db,
        Err(error) => return Ok(Err(error)),
    };
    let hash = link_hash(key, &prev_hash, seq, event);
    transaction
        .prepare_cached(
            "INSERT INTO audit_events (seq, at_ms, kind, actor_id, subject_id, ip, user_agent, \
             detail, key_id, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            seq_db,
            row.at_ms,
            row.kind,
            row.actor_id,
            row.subject_id,
            row.ip,
            row.user_agent,
            row.detail,
            row.key_id,
            &prev_hash[..],
            &hash[..],
        ])?;
    Ok(Ok(seq))
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(
        &self,
        event: &NewAuditEvent,
        key: ChainKey<'_>,
    ) -> Result<u64, StoreError> {
        let row = NewAuditRow::new(event, key.id);
        let event = event.clone();
        // The hash needs the previous entry, read under the write lock on the database thread,
        // so the chain key goes there too (a copy that lives as long as the call).
        let chain_key = *key.key;
        let appended = self
            .database
            .write("append_audit", move |connection| {
                let transaction = connection.savepoint()?;
                let appended = append(&transaction, &event, &row, &chain_key)?;
                if appended.is_ok() {
                    transaction.commit()?;
                }
                Ok(appended)
            })
            .await?;
        Ok(appended?)
    }

    async fn audit_events(&self, filter: &AuditFilter<'_>) -> Result<Vec<AuditRecord>, StoreError> {
        let query = audit_events_query(filter, |n| format!("?{n}"));
        let rows = self
            .database
            .read("audit_events", move |connection| {
                let params = query.params.iter().map(|value| match value {
                    SqlValue::Text(text) => rusqlite::types::Value::Text(text.clone()),
                    SqlValue::Integer(number) => rusqlite::types::Value::Integer(*number),
                });
                connection
                    .prepare_cached(&query.sql)?
                    .query_map(rusqlite::params_from_iter(params), audit_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        to_records(rows)
    }

    async fn audit_chain(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (after, limit) = audit_chain_params(after_seq, limit);
        let rows = self
            .database
            .read("audit_chain", move |connection| {
                connection
                    .prepare_cached(AUDIT_CHAIN)?
                    .query_map(params![after, limit], audit_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        to_records(rows)
    }

    async fn audit_anchor(&self) -> Result<Option<AuditAnchor>, StoreError> {
        let row = self
            .database
            .read("audit_anchor", |connection| {
                connection
                    .prepare_cached("SELECT seq, hash FROM audit_anchor WHERE id = 1")?
                    .query_row([], seq_and_hash)
                    .optional()
            })
            .await?;
        Ok(row
            .map(|(seq, hash)| anchor_from_db(seq, &hash))
            .transpose()?)
    }

    async fn purge_audit_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let cutoff = unix_millis(cutoff);
        let deleted = self
            .database
            .write("purge_audit_before", move |connection| {
                let transaction = connection.savepoint()?;
                // The newest entry from before the cutoff; everything up to it goes, so what
                // is removed is always a prefix of the chain.
                let last = transaction
                    .prepare_cached(
                        "SELECT seq, hash FROM audit_events WHERE seq = \
                         (SELECT MAX(seq) FROM audit_events WHERE at_ms < ?1)",
                    )?
                    .query_row([cutoff], seq_and_hash)
                    .optional()?;
                let Some((seq, hash)) = last else {
                    return Ok(0);
                };
                let deleted = transaction
                    .prepare_cached("DELETE FROM audit_events WHERE seq <= ?1")?
                    .execute([seq])?;
                transaction
                    .prepare_cached(
                        "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, ?1, ?2) \
                         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    )?
                    .execute(params![seq, hash])?;
                transaction.commit()?;
                Ok(deleted)
            })
            .await?;
        u64::try_from(deleted)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("DELETE reported {deleted} rows")))
    }
}
