//! [`PolicyStore`] on PostgreSQL: one row, saved by one conditional statement whose row count
//! decides. Two first saves collide on the primary key, and the second, after waiting for the
//! first to commit, inserts nothing; two later saves queue on the row lock, and READ COMMITTED
//! re-checks the second's `version` against the committed row, which no longer matches.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use twofold_core::store::{PolicyStore, StoreError, StoredPolicy};
use twofold_core::user::UserId;

use super::{PostgresStore, store_error};
use crate::rows::{PolicyRow, policy_version_to_db, to_unix};

fn policy_row(row: &Row) -> Result<PolicyRow, tokio_postgres::Error> {
    Ok(PolicyRow {
        document: row.try_get(0)?,
        version: row.try_get(1)?,
        updated_at: row.try_get(2)?,
        updated_by: row.try_get(3)?,
    })
}

#[async_trait]
impl PolicyStore for PostgresStore {
    async fn load_policy(&self) -> Result<Option<StoredPolicy>, StoreError> {
        const OPERATION: &str = "load_policy";
        let Some(row) = self
            .query_opt(
                OPERATION,
                "SELECT document, version, updated_at, updated_by \
                 FROM security_policy WHERE id = 1",
                &[],
            )
            .await?
        else {
            return Ok(None);
        };
        let row = policy_row(&row).map_err(|error| store_error(OPERATION, error))?;
        Ok(Some(StoredPolicy::try_from(row)?))
    }

    async fn save_policy(
        &self,
        document: &str,
        expected_version: u64,
        updated_by: Option<UserId>,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        const OPERATION: &str = "save_policy";
        let updated_by = updated_by.map(|id| id.to_string());
        let expected = policy_version_to_db(expected_version)?;
        let now = to_unix(now);
        let saved = if expected == 0 {
            self.query_opt(
                OPERATION,
                "INSERT INTO security_policy (id, document, version, updated_at, updated_by) \
                 VALUES (1, $1, 1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING version",
                &[&document, &now, &updated_by],
            )
            .await?
        } else {
            self.query_opt(
                OPERATION,
                "UPDATE security_policy \
                 SET document = $1, version = version + 1, updated_at = $2, updated_by = $3 \
                 WHERE id = 1 AND version = $4 RETURNING version",
                &[&document, &now, &updated_by, &expected],
            )
            .await?
        };
        let Some(row) = saved else { return Ok(None) };
        let version: i64 = row
            .try_get(0)
            .map_err(|error| store_error(OPERATION, error))?;
        u64::try_from(version).map(Some).map_err(|_| {
            StoreError::Unexpected(anyhow::anyhow!("security_policy.version is {version}"))
        })
    }
}
