//! [`PolicyStore`] on SQLite: one row, saved by one conditional statement whose row count
//! decides (the writer connection, and the database's write lock across processes, make it one
//! step).

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;
use twofold_core::store::{PolicyStore, StoreError, StoredPolicy};
use twofold_core::user::UserId;

use super::SqliteStore;
use crate::rows::{PolicyRow, policy_version_to_db, to_unix};

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn load_policy(&self) -> Result<Option<StoredPolicy>, StoreError> {
        let row = self
            .database
            .lookup("load_policy", |connection| {
                connection
                    .prepare_cached(
                        "SELECT document, version, updated_at, updated_by \
                         FROM security_policy WHERE id = 1",
                    )?
                    .query_row([], |row| {
                        Ok(PolicyRow {
                            document: row.get(0)?,
                            version: row.get(1)?,
                            updated_at: row.get(2)?,
                            updated_by: row.get(3)?,
                        })
                    })
                    .optional()
            })
            .await?;
        Ok(row.map(StoredPolicy::try_from).transpose()?)
    }

    async fn save_policy(
        &self,
        document: &str,
        expected_version: u64,
        updated_by: Option<UserId>,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        let document = document.to_owned();
        let updated_by = updated_by.map(|id| id.to_string());
        let expected = policy_version_to_db(expected_version)?;
        let now = to_unix(now);
        // The first save inserts the row (a second first save finds it and inserts nothing);
        // a later one updates it only while it still has the version that was read.
        let saved: Option<i64> = self
            .database
            .write("save_policy", move |connection| {
                let sql = if expected == 0 {
                    "INSERT INTO security_policy (id, document, version, updated_at, updated_by) \
                     VALUES (1, ?1, 1, ?2, ?3) ON CONFLICT (id) DO NOTHING RETURNING version"
                } else {
                    "UPDATE security_policy \
                     SET document = ?1, version = version + 1, updated_at = ?2, updated_by = ?3 \
                     WHERE id = 1 AND version = ?4 RETURNING version"
                };
                let mut statement = connection.prepare_cached(sql)?;
                let version = |row: &rusqlite::Row<'_>| row.get(0);
                if expected == 0 {
                    statement
                        .query_row(params![document, now, updated_by], version)
                        .optional()
                } else {
                    statement
                        .query_row(params![document, now, updated_by, expected], version)
                        .optional()
                }
            })
            .await?;
        saved
            .map(|version| {
                u64::try_from(version).map_err(|_| {
                    StoreError::Unexpected(anyhow::anyhow!("security_policy.version is {version}"))
                })
            })
            .transpose()
    }
}
