//! [`FactorStore`] on SQLite.
//!
//! Every write runs on the one writer connection, so writes of this process never interleave.
//! The multi-statement ones run in IMMEDIATE transactions, which take the database's write
//! lock before their first read: another process on the same file waits (busy timeout) instead
//! of interleaving with them.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use twofold_core::store::{
    FactorOverview, FactorStore, NewTotp, PhoneFactor, SealedRow, SealedSecret, StoreError,
    TotpActivation, TotpRecord,
};
use twofold_core::user::UserId;
use uuid::Uuid;

use super::SqliteStore;
use crate::overview_rows::{OverviewRow, SQLITE_FACTOR_OVERVIEW};
use crate::rows::{
    NewTotpRow, PhoneFactorRow, TotpRow, count_to_u32, from_unix, step_to_db, to_unix, totp_columns,
};

const ACTIVE_TOTP: &str = concat!(
    "SELECT ",
    totp_columns!(),
    " FROM totp_authenticators WHERE user_id = ?1 AND active"
);
const PENDING_TOTP: &str = concat!(
    "SELECT ",
    totp_columns!(),
    " FROM totp_authenticators WHERE user_id = ?1 AND NOT active"
);

fn totp_row(row: &Row<'_>) -> rusqlite::Result<TotpRow> {
    Ok(TotpRow {
        id: row.get(0)?,
        user_id: row.get(1)?,
        key_id: row.get(2)?,
        sealed_secret: row.get(3)?,
        algorithm: row.get(4)?,
        digits: row.get(5)?,
        period_seconds: row.get(6)?,
        active: row.get(7)?,
        last_used_step: row.get(8)?,
        created_at: row.get(9)?,
        confirmed_at: row.get(10)?,
        last_used_at: row.get(11)?,
    })
}

impl SqliteStore {
    async fn totp_by_user(
        &self,
        operation: &'static str,
        sql: &'static str,
        user_id: UserId,
    ) -> Result<Option<TotpRecord>, StoreError> {
        let row = self
            .database
            .lookup(operation, move |connection| {
                connection
                    .prepare_cached(sql)?
                    .query_row([user_id.to_string()], totp_row)
                    .optional()
            })
            .await?;
        row.map(TotpRecord::try_from)
            .transpose()
            .map_err(StoreError::Unexpected)
    }
}

#[async_trait]
impl FactorStore for SqliteStore {
    async fn insert_pending_totp(&self, totp: &NewTotp) -> Result<(), StoreError> {
        let row = NewTotpRow::try_from(totp)?;
        self.database
            .write("insert_pending_totp", move |connection| {
                let transaction = connection.savepoint()?;
                transaction
                    .prepare_cached(
                        "DELETE FROM totp_authenticators WHERE user_id = ?1 AND NOT active",
                    )?
                    .execute([&row.user_id])?;
                transaction
                    .prepare_cached(
                        "INSERT INTO totp_authenticators (id, user_id, key_id, sealed_secret, \
                         algorithm, digits, period_seconds, active, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
                    )?
                    .execute(params![
                        row.id,
                        row.user_id,
                        row.key_id,
                        row.sealed_secret,
                        row.algorithm,
                        row.digits,
                        row.period_seconds,
                        row.created_at,
                    ])?;
                transaction.commit()
            })
            .await
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
        let step = step_to_db(step)?;
        self.database
            .write("activate_totp", move |connection| {
                let user_id = user_id.to_string();
                let mut transaction = connection.savepoint()?;
                // The old active row goes first: the partial unique index allows one active row
                // per user at every statement, not only at commit.
                transaction
                    .prepare_cached(
                        "DELETE FROM totp_authenticators WHERE user_id = ?1 AND active",
                    )?
                    .execute([&user_id])?;
                let activated = transaction
                    .prepare_cached(
                        "UPDATE totp_authenticators \
                         SET active = 1, last_used_step = ?3, confirmed_at = ?4, last_used_at = ?4 \
                         WHERE id = ?1 AND user_id = ?2 AND NOT active",
                    )?
                    .execute(params![id.to_string(), user_id, step, to_unix(now)])?;
                if activated == 1 {
                    transaction.commit()?;
                    Ok(true)
                } else {
                    // Not pending any more: the old active authenticator must survive.
                    transaction.rollback()?;
                    Ok(false)
                }
            })
            .await
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
            .database
            .write("consume_totp_step", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE totp_authenticators SET last_used_step = ?2, last_used_at = ?3 \
                         WHERE id = ?1 AND active AND (last_used_step IS NULL OR last_used_step < ?2)",
                    )?
                    .execute(params![id.to_string(), step, to_unix(now)])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        code_hashes: &[[u8; 32]],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let code_hashes = code_hashes.to_vec();
        self.database
            .write("replace_recovery_codes", move |connection| {
                let user_id = user_id.to_string();
                let transaction = connection.savepoint()?;
                transaction
                    .prepare_cached("DELETE FROM recovery_codes WHERE user_id = ?1")?
                    .execute([&user_id])?;
                {
                    let mut insert = transaction.prepare_cached(
                        "INSERT INTO recovery_codes (user_id, code_hash, created_at) \
                         VALUES (?1, ?2, ?3)",
                    )?;
                    for code_hash in &code_hashes {
                        insert.execute(params![user_id, &code_hash[..], to_unix(now)])?;
                    }
                }
                transaction.commit()
            })
            .await
    }

    async fn consume_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let code_hash = *code_hash;
        let changed = self
            .database
            .write("consume_recovery_code", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE recovery_codes SET used_at = ?3 \
                         WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
                    )?
                    .execute(params![user_id.to_string(), &code_hash[..], to_unix(now)])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn release_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &[u8; 32],
        used_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let code_hash = *code_hash;
        let changed = self
            .database
            .write("release_recovery_code", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE recovery_codes SET used_at = NULL \
                         WHERE user_id = ?1 AND code_hash = ?2 AND used_at = ?3",
                    )?
                    .execute(params![
                        user_id.to_string(),
                        &code_hash[..],
                        to_unix(used_at)
                    ])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn recovery_codes_left(&self, user_id: UserId) -> Result<u32, StoreError> {
        let count: i64 = self
            .database
            .lookup("recovery_codes_left", move |connection| {
                connection
                    .prepare_cached(
                        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
                    )?
                    .query_row([user_id.to_string()], |row| row.get(0))
            })
            .await?;
        Ok(count_to_u32(count)?)
    }

    async fn factor_overview(&self, user_id: UserId) -> Result<FactorOverview, StoreError> {
        let row = self
            .database
            .lookup("factor_overview", move |connection| {
                connection
                    .prepare_cached(SQLITE_FACTOR_OVERVIEW)?
                    .query_row([user_id.to_string()], |row| {
                        Ok(OverviewRow {
                            totp: row.get(0)?,
                            totp_confirmed_at: row.get(1)?,
                            totp_last_used_at: row.get(2)?,
                            phone: row.get(3)?,
                            email: row.get(4)?,
                            recovery_codes_left: row.get(5)?,
                        })
                    })
            })
            .await?;
        Ok(FactorOverview::try_from(row)?)
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
        let row = self
            .database
            .lookup("phone_factor", move |connection| {
                connection
                    .prepare_cached(
                        "SELECT phone, verified_at FROM phone_factors WHERE user_id = ?1",
                    )?
                    .query_row([user_id.to_string()], |row| {
                        Ok(PhoneFactorRow {
                            phone: row.get(0)?,
                            verified_at: row.get(1)?,
                        })
                    })
                    .optional()
            })
            .await?;
        row.map(PhoneFactor::try_from)
            .transpose()
            .map_err(StoreError::Unexpected)
    }

    async fn set_phone_factor(
        &self,
        user_id: UserId,
        phone: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let phone = phone.to_owned();
        self.database
            .write("set_phone_factor", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO phone_factors (user_id, phone, verified_at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (user_id) DO UPDATE \
                         SET phone = excluded.phone, verified_at = excluded.verified_at",
                    )?
                    .execute(params![user_id.to_string(), phone, to_unix(now)])
            })
            .await
            .map(drop)
    }

    async fn email_factor(&self, user_id: UserId) -> Result<Option<OffsetDateTime>, StoreError> {
        let enabled_at: Option<i64> = self
            .database
            .lookup("email_factor", move |connection| {
                connection
                    .prepare_cached("SELECT enabled_at FROM email_factors WHERE user_id = ?1")?
                    .query_row([user_id.to_string()], |row| row.get(0))
                    .optional()
            })
            .await?;
        enabled_at
            .map(from_unix)
            .transpose()
            .map_err(|error| StoreError::Unexpected(error.context("email_factors.enabled_at")))
    }

    async fn enable_email_factor(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.database
            .write("enable_email_factor", move |connection| {
                // An earlier enabling stands: the time it records is when the factor began.
                connection
                    .prepare_cached(
                        "INSERT INTO email_factors (user_id, enabled_at) VALUES (?1, ?2) \
                         ON CONFLICT (user_id) DO NOTHING",
                    )?
                    .execute(params![user_id.to_string(), to_unix(now)])
            })
            .await
            .map(drop)
    }

    async fn delete_all_factors(&self, user_id: UserId) -> Result<(), StoreError> {
        self.database
            .write("delete_all_factors", move |connection| {
                let user_id = user_id.to_string();
                let transaction = connection.savepoint()?;
                transaction
                    .prepare_cached("DELETE FROM totp_authenticators WHERE user_id = ?1")?
                    .execute([&user_id])?;
                for sql in [
                    "DELETE FROM recovery_codes WHERE user_id = ?1",
                    "DELETE FROM phone_factors WHERE user_id = ?1",
                    "DELETE FROM email_factors WHERE user_id = ?1",
                    "DELETE FROM inbound_phone_checks WHERE user_id = ?1",
                ] {
                    transaction.prepare_cached(sql)?.execute([&user_id])?;
                }
                transaction.commit()
            })
            .await
    }
}
