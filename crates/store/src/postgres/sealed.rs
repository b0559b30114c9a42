//! Sealed secrets across tables on PostgreSQL, for master-key rotation (the `FactorStore`
//! methods in `factors.rs` call these). The compare-and-swap is one conditional UPDATE: a
//! concurrent writer of the row holds its lock, and after it commits the UPDATE re-checks its
//! WHERE clause against the new version, which no longer matches.

use twofold_core::store::{SealedRow, SealedSecret, StoreError};

use super::{PostgresStore, store_error};
use crate::sealed_rows::{COUNTS, KEY_IDS, RawSealedRow, SEALED_TABLES, count, replace_statement};

impl PostgresStore {
    pub(super) async fn sealed_key_ids_in_use(&self) -> Result<Vec<String>, StoreError> {
        const OPERATION: &str = "sealed_key_ids";
        let rows = self.query_all(OPERATION, KEY_IDS, &[]).await?;
        rows.iter()
            .map(|row| {
                row.try_get(0)
                    .map_err(|error| store_error(OPERATION, error))
            })
            .collect()
    }

    pub(super) async fn sealed_rows_under_other_keys(
        &self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        const OPERATION: &str = "sealed_rows_not_under";
        let mut found = Vec::new();
        for (table, sql) in SEALED_TABLES {
            let left = i64::from(limit).saturating_sub(found.len() as i64);
            if left <= 0 {
                break;
            }
            let rows = self.query_all(OPERATION, sql, &[&key_id, &left]).await?;
            for row in rows {
                let raw = (|| {
                    Ok::<_, tokio_postgres::Error>(RawSealedRow {
                        table,
                        id: row.try_get(0)?,
                        owner: row.try_get(1)?,
                        recipient: row.try_get(2)?,
                        key_id: row.try_get(3)?,
                        ciphertext: row.try_get(4)?,
                    })
                })()
                .map_err(|error| store_error(OPERATION, error))?;
                found.push(SealedRow::try_from(raw).map_err(StoreError::Unexpected)?);
            }
        }
        Ok(found)
    }

    pub(super) async fn compare_and_swap_sealed(
        &self,
        row: &SealedRow,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "replace_sealed",
                replace_statement(row),
                &[
                    &new.key_id,
                    &new.ciphertext,
                    &row.id.to_string(),
                    &row.secret.key_id,
                    &row.secret.ciphertext,
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    pub(super) async fn sealed_counts_by_key(&self) -> Result<Vec<(String, u64)>, StoreError> {
        const OPERATION: &str = "sealed_counts";
        let rows = self.query_all(OPERATION, COUNTS, &[]).await?;
        rows.iter()
            .map(|row| {
                let key_id: String = row
                    .try_get(0)
                    .map_err(|error| store_error(OPERATION, error))?;
                let n: i64 = row
                    .try_get(1)
                    .map_err(|error| store_error(OPERATION, error))?;
                count(key_id, n).map_err(StoreError::Unexpected)
            })
            .collect()
    }
}
