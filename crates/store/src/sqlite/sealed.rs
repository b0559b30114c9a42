//! Sealed secrets across tables on SQLite, for master-key rotation (the `FactorStore` methods
//! in `factors.rs` call these).

use rusqlite::params;
use twofold_core::store::{SealedRow, SealedSecret, StoreError};

use super::SqliteStore;
use crate::sealed_rows::{
    COUNTS, KEY_IDS, RawSealedRow, SEALED_TABLES, count, replace_statement, sqlite,
};

impl SqliteStore {
    pub(super) async fn sealed_key_ids_in_use(&self) -> Result<Vec<String>, StoreError> {
        self.database
            .read("sealed_key_ids", |connection| {
                connection
                    .prepare_cached(&sqlite(KEY_IDS))?
                    .query_map([], |row| row.get(0))?
                    .collect()
            })
            .await
    }

    pub(super) async fn sealed_rows_under_other_keys(
        &self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let key_id = key_id.to_owned();
        let raw = self
            .database
            .read("sealed_rows_not_under", move |connection| {
                let mut rows = Vec::new();
                for (table, sql) in SEALED_TABLES {
                    let left = i64::from(limit).saturating_sub(rows.len() as i64);
                    if left <= 0 {
                        break;
                    }
                    let mut statement = connection.prepare_cached(&sqlite(sql))?;
                    let found = statement.query_map(params![key_id, left], |row| {
                        Ok(RawSealedRow {
                            table,
                            id: row.get(0)?,
                            owner: row.get(1)?,
                            recipient: row.get(2)?,
                            key_id: row.get(3)?,
                            ciphertext: row.get(4)?,
                        })
                    })?;
                    for row in found {
                        rows.push(row?);
                    }
                }
                Ok(rows)
            })
            .await?;
        raw.into_iter()
            .map(SealedRow::try_from)
            .collect::<anyhow::Result<_>>()
            .map_err(StoreError::Unexpected)
    }

    pub(super) async fn compare_and_swap_sealed(
        &self,
        row: &SealedRow,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let sql = sqlite(replace_statement(row));
        let (id, old, new) = (row.id.to_string(), row.secret.clone(), new.clone());
        let changed = self
            .database
            .write("replace_sealed", move |connection| {
                connection.prepare_cached(&sql)?.execute(params![
                    new.key_id,
                    new.ciphertext,
                    id,
                    old.key_id,
                    old.ciphertext,
                ])
            })
            .await?;
        Ok(changed == 1)
    }

    pub(super) async fn sealed_counts_by_key(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = self
            .database
            .read("sealed_counts", |connection| {
                connection
                    .prepare_cached(&sqlite(COUNTS))?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect()
            })
            .await?;
        rows.into_iter()
            .map(|(key_id, n)| count(key_id, n))
            .collect::<anyhow::Result<_>>()
            .map_err(StoreError::Unexpected)
    }
}
