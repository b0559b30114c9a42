//! [`FactorStore`] on PostgreSQL.
//!
//! The single-use checks (`consume_totp_step`, `consume_recovery_code`) are one conditional
//! UPDATE each: concurrent callers queue on the row lock, and after the first commits the
//! others re-check the WHERE clause against the new row version, which no longer matches.
//!
//! The multi-statement writes (replace the pending authenticator, activate, replace the
//! recovery codes, delete all) each lock the user's `users` row first (`FOR NO KEY UPDATE`,
//! which does not block the foreign-key checks of other tables' inserts) and so run one at a
//! time per user, across instances. Without it, READ COMMITTED lets two of them interleave: two
//! recovery-code replacements would each delete only the codes they saw and leave both new sets
//! working, and two enrollments would collide on the one-pending index and fail. Under the lock
//! each statement's fresh snapshot sees what the previous holder committed, and the conditional
//! UPDATE in `activate_totp` still decides who wins.

use async_trait::async_trait;
use deadpool_postgres::{Client, Transaction};
use time::OffsetDateTime;
use tokio_postgres::{IsolationLevel, Row};
use twofold_core::store::{
    FactorOverview, FactorStore, NewTotp, PhoneFactor, SealedRow, SealedSecret, StoreError,
    TotpActivation, TotpRecord,
};
use twofold_core::user::UserId;
use uuid::Uuid;

use super::{PostgresStore, store_error};
use crate::overview_rows::{OverviewRow, POSTGRES_FACTOR_OVERVIEW};
use crate::rows::{
    NewTotpRow, PhoneFactorRow, TotpRow, count_to_u32, from_unix, step_to_db, to_unix, totp_columns,
};

const ACTIVE_TOTP: &str = concat!(
    "SELECT ",
    totp_columns!(),
    " FROM totp_authenticators WHERE user_id = $1 AND active"
);
const PENDING_TOTP: &str = concat!(
    "SELECT ",
    totp_columns!(),
    " FROM totp_authenticators WHERE user_id = $1 AND NOT active"
);

fn totp_row(row: &Row) -> Result<TotpRow, tokio_postgres::Error> {
    Ok(TotpRow {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        key_id: row.try_get(2)?,
        sealed_secret: row.try_get(3)?,
        algorithm: row.try_get(4)?,
        digits: i64::from(row.try_get::<_, i32>(5)?),
        period_seconds: i64::from(row.try_get::<_, i32>(6)?),
        active: row.try_get(7)?,
        last_used_step: row.try_get(8)?,
        created_at: row.try_get(9)?,
        confirmed_at: row.try_get(10)?,
        last_used_at: row.try_get(11)?,
    })
}

/// Begins a READ COMMITTED transaction holding the row lock of user `user_id` (see the module
/// comment). The level is set, not assumed: under REPEATABLE READ a statement after the wait
/// would not see what the previous lock holder committed. A user that does not exist locks
/// nothing; the statements that follow then find nothing to change, or fail their foreign key.
pub(super) async fn user_transaction<'a>(
    client: &'a mut Client,
    user_id: &str,
) -> Result<Transaction<'a>, tokio_postgres::Error> {
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    let lock = transaction
        .prepare_cached("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
        .await?;
    transaction.query_opt(&lock, &[&user_id]).await?;
    Ok(transaction)
}

async fn insert_pending_totp(
    client: &mut Client,
    row: &NewTotpRow,
) -> Result<(), tokio_postgres::Error> {
    let transaction = user_transaction(client, &row.user_id).await?;
    let delete = transaction
        .prepare_cached("DELETE FROM totp_authenticators WHERE user_id = $1 AND NOT active")
        .await?;
    transaction.execute(&delete, &[&row.user_id]).await?;
    let insert = transaction
        .prepare_cached(
            "INSERT INTO totp_authenticators (id, user_id, key_id, sealed_secret, algorithm, \
             digits, period_seconds, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8)",
        )
        .await?;
    transaction
        .execute(
            &insert,
            &[
                &row.id,
                &row.user_id,
                &row.key_id,
                &row.sealed_secret,
                &row.algorithm,
                &row.digits,
                &row.period_seconds,
                &row.created_at,
            ],
        )
        .await?;
    transaction.commit().await
}

async fn activate_totp(
    client: &mut Client,
    user_id: &str,
    id: &str,
    step: i64,
    now: i64,
) -> Result<bool, tokio_postgres::Error> {
    let transaction = user_transaction(client, user_id).await?;
    // The old active row goes first: the partial unique index allows one active row per user
    // at every statement, not only at commit.
    let delete = transaction
        .prepare_cached("DELETE FROM totp_authenticators WHERE user_id = $1 AND active")
        .await?;
    transaction.execute(&delete, &[&user_id]).await?;
    let activate = transaction
        .prepare_cached(
            "UPDATE totp_authenticators SET active = TRUE, last_used_step = $3, confirmed_at = $4, last_used_at = $4 \
             WHERE id = $1 AND user_id = $2 AND NOT active",
        )
        .await?;
    let activated = transaction
        .execute(&activate, &[&id, &user_id, &step, &now])
        .await?;
    if activated == 1 {
        transaction.commit().await?;
        Ok(true)
    } else {
        // Not pending any more: the old active authenticator must survive.
        transaction.rollback().await?;
        Ok(false)
    }
}

async fn replace_recovery_codes(
    client: &mut Client,
    user_id: &str,
    code_hashes: &[&[u8]],
    now: i64,
) -> Result<(), tokio_postgres::Error> {
    let transaction = user_transaction(client, user_id).await?;
    let delete = transaction
        .prepare_cached("DELETE FROM recovery_codes WHERE user_id = $1")
        .await?;
    transaction.execute(&delete, &[&user_id]).await?;
    // One statement for the whole set, whatever its size.
    let insert = transaction
        .prepare_cached(
            "INSERT INTO recovery_codes (user_id, code_hash, created_at) \
             SELECT $1, code_hash, $3 FROM unnest($2::BYTEA[]) AS code_hash",
        )
        .await?;
    transaction
        .execute(&insert, &[&user_id, &code_hashes, &now])
        .await?;
    transaction.commit().await
}

async fn delete_all_factors(
    client: &mut Client,
    user_id: &str,
) -> Result<(), tokio_postgres::Error> {
    let transaction = user_transaction(client, user_id).await?;
    for sql in [
        "DELETE FROM totp_authenticators WHERE user_id = $1",
        "DELETE FROM recovery_codes WHERE user_id = $1",
        "DELETE FROM phone_factors WHERE user_id = $1",
        "DELETE FROM email_factors WHERE user_id = $1",
        "DELETE FROM inbound_phone_checks WHERE user_id = $1",
    ] {
        let delete = transaction.prepare_cached(sql).await?;
        transaction.execute(&delete, &[&user_id]).await?;
    }
    transaction.commit().await
}

impl PostgresStore {
    async fn totp_by_user(
        &self,
        operation: &'static str,
        sql: &'static str,
        user_id: UserId,
    ) -> Result<Option<TotpRecord>, StoreError> {
        let row = self
            .query_opt(operation, sql, &[&user_id.to_string()])
            .await?;
        let Some(row) = row else { return Ok(None) };
        let row = totp_row(&row).map_err(|error| store_error(operation, error))?;
        TotpRecord::try_from(row)
            .map(Some)
            .map_err(StoreError::Unexpected)
    }
}

#[async_trait]
impl FactorStore for PostgresStore {
    async fn insert_pending_totp(&self, totp: &NewTotp) -> Result<(), StoreError> {
        const OPERATION: &str = "insert_pending_totp";
        let row = NewTotpRow::try_from(totp)?;
        let mut client = self.client(OPERATION).await?;
        insert_pending_totp(&mut client, &row)
            .await
            .map_err(|error| store_error(OPERATION, error))
    }

    async fn pending_totp(&self, user_id: UserId) -> Result<Option<TotpRecord>, StoreError> {
        self.totp_by_user("pending_totp", PENDING_TOTP, user_id)
            .await
    }

    async fn active_totp(&self, user_id: UserId) -> Result<Option<TotpRecord>, StoreError> {
        self.totp_by_user("active_totp", ACTIVE_TOTP, user_id).await
    }

    async fn activate_totp(
        &self,
        user_id: UserId,
        id: Uuid,
        step: u64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "activate_totp";
        let step = step_to_db(step)?;
        let mut client = self.client(OPERATION).await?;
        activate_totp(
            &mut client,
            &user_id.to_string(),
            &id.to_string(),
            step,
            to_unix(now),
        )
        .await
        .map_err(|error| store_error(OPERATION, error))
    }

    async fn activate_totp_enrollment(
        &self,
        activation: &TotpActivation<'_>,
    ) -> Result<bool, StoreError> {
        self.activate_whole_enrollment(activation).await
    }

    async fn consume_totp_step(
        &self,
        id: Uuid,
        step: u64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let step = step_to_db(step)?;
        let changed = self
            .execute(
                "consume_totp_step",
                "UPDATE totp_authenticators SET last_used_step = $2, last_used_at = $3 \
                 WHERE id = $1 AND active AND (last_used_step IS NULL OR last_used_step < $2)",
                &[&id.to_string(), &step, &to_unix(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        code_hashes: &[[u8; 32]],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        const OPERATION: &str = "replace_recovery_codes";
        let code_hashes: Vec<&[u8]> = code_hashes.iter().map(|hash| &hash[..]).collect();
        let mut client = self.client(OPERATION).await?;
        replace_recovery_codes(
            &mut client,
            &user_id.to_string(),
            &code_hashes,
            to_unix(now),
        )
        .await
        .map_err(|error| store_error(OPERATION, error))
    }

    async fn consume_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "consume_recovery_code",
                "UPDATE recovery_codes SET used_at = $3 \
                 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                &[&user_id.to_string(), &&code_hash[..], &to_unix(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn release_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &[u8; 32],
        used_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "release_recovery_code",
                "UPDATE recovery_codes SET used_at = NULL \
                 WHERE user_id = $1 AND code_hash = $2 AND used_at = $3",
                &[&user_id.to_string(), &&code_hash[..], &to_unix(used_at)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn factor_overview(&self, user_id: UserId) -> Result<FactorOverview, StoreError> {
        const OPERATION: &str = "factor_overview";
        let row = self
            .query_opt(OPERATION, POSTGRES_FACTOR_OVERVIEW, &[&user_id.to_string()])
            .await?
            .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("{OPERATION}: no row")))?;
        let get = |index| -> Result<Option<i64>, StoreError> {
            row.try_get(index)
                .map_err(|error| store_error(OPERATION, error))
        };
        let flag = |index| -> Result<bool, StoreError> {
            row.try_get(index)
                .map_err(|error| store_error(OPERATION, error))
        };
        let overview = OverviewRow {
            totp: flag(0)?,
            totp_confirmed_at: get(1)?,
            totp_last_used_at: get(2)?,
            phone: flag(3)?,
            email: flag(4)?,
            recovery_codes_left: get(5)?.unwrap_or(0),
        };
        Ok(FactorOverview::try_from(overview)?)
    }

    async fn recovery_codes_left(&self, user_id: UserId) -> Result<u32, StoreError> {
        const OPERATION: &str = "recovery_codes_left";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
                &[&user_id.to_string()],
            )
            .await?;
        let count: i64 = match row {
            Some(row) => row
                .try_get(0)
                .map_err(|error| store_error(OPERATION, error))?,
            None => 0,
        };
        Ok(count_to_u32(count)?)
    }

    async fn sealed_key_ids(&self) -> Result<Vec<String>, StoreError> {
        self.sealed_key_ids_in_use().await
    }

    // Master-key rotation: see `sealed.rs`.

    async fn sealed_rows_not_under(
        &self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<SealedRow>, StoreError> {
        self.sealed_rows_under_other_keys(key_id, limit).await
    }

    async fn replace_sealed(
        &self,
        row: &SealedRow,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        self.compare_and_swap_sealed(row, new).await
    }

    async fn sealed_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.sealed_counts_by_key().await
    }

    async fn phone_factor(&self, user_id: UserId) -> Result<Option<PhoneFactor>, StoreError> {
        const OPERATION: &str = "phone_factor";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT phone, verified_at FROM phone_factors WHERE user_id = $1",
                &[&user_id.to_string()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let row = PhoneFactorRow {
            phone: row
                .try_get(0)
                .map_err(|error| store_error(OPERATION, error))?,
            verified_at: row
                .try_get(1)
                .map_err(|error| store_error(OPERATION, error))?,
        };
        PhoneFactor::try_from(row)
            .map(Some)
            .map_err(StoreError::Unexpected)
    }

    async fn set_phone_factor(
        &self,
        user_id: UserId,
        phone: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.execute(
            "set_phone_factor",
            "INSERT INTO phone_factors (user_id, phone, verified_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE \
             SET phone = excluded.phone, verified_at = excluded.verified_at",
            &[&user_id.to_string(), &phone, &to_unix(now)],
        )
        .await
        .map(drop)
    }

    async fn email_factor(&self, user_id: UserId) -> Result<Option<OffsetDateTime>, StoreError> {
        const OPERATION: &str = "email_factor";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT enabled_at FROM email_factors WHERE user_id = $1",
                &[&user_id.to_string()],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let enabled_at: i64 = row
            .try_get(0)
            .map_err(|error| store_error(OPERATION, error))?;
        from_unix(enabled_at)
            .map(Some)
            .map_err(|error| StoreError::Unexpected(error.context("email_factors.enabled_at")))
    }

    async fn enable_email_factor(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // An earlier enabling stands: the time it records is when the factor began.
        self.execute(
            "enable_email_factor",
            "INSERT INTO email_factors (user_id, enabled_at) VALUES ($1, $2) \
             ON CONFLICT (user_id) DO NOTHING",
            &[&user_id.to_string(), &to_unix(now)],
        )
        .await
        .map(drop)
    }

    async fn delete_all_factors(&self, user_id: UserId) -> Result<(), StoreError> {
        const OPERATION: &str = "delete_all_factors";
        let mut client = self.client(OPERATION).await?;
        delete_all_factors(&mut client, &user_id.to_string())
            .await
            .map_err(|error| store_error(OPERATION, error))
    }
}
