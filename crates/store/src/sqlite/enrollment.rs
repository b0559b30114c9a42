//! Activating an authenticator together with what its enrollment writes (recovery codes, the
//! audit entry), in one IMMEDIATE transaction (`FactorStore::activate_totp_enrollment`).

use rusqlite::params;
use twofold_core::store::{StoreError, TotpActivation};

use super::SqliteStore;
use crate::audit_rows::NewAuditRow;
use crate::rows::{step_to_db, to_unix};

impl SqliteStore {
    pub(super) async fn activate_whole_enrollment(
        &self,
        activation: &TotpActivation<'_>,
    ) -> Result<bool, StoreError> {
        let step = step_to_db(activation.step)?;
        let user_id = activation.user_id.to_string();
        let id = activation.id.to_string();
        let now = to_unix(activation.now);
        let codes = activation.recovery_codes.map(<[[u8; 32]]>::to_vec);
        let event = activation.audit.clone();
        let row = NewAuditRow::new(activation.audit, activation.key.id);
        let chain_key = *activation.key.key;
        let outcome = self
            .database
            .write("activate_totp_enrollment", move |connection| {
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
                    .execute(params![id, user_id, step, now])?;
                if activated != 1 {
                    // Not pending any more: the old active authenticator must survive.
                    transaction.rollback()?;
                    return Ok(Ok(false));
                }
                if let Some(codes) = &codes {
                    transaction
                        .prepare_cached("DELETE FROM recovery_codes WHERE user_id = ?1")?
                        .execute([&user_id])?;
                    let mut insert = transaction.prepare_cached(
                        "INSERT INTO recovery_codes (user_id, code_hash, created_at) \
                         VALUES (?1, ?2, ?3)",
                    )?;
                    for code_hash in codes {
                        insert.execute(params![user_id, &code_hash[..], now])?;
                    }
                }
                // A value that does not convert drops the transaction: nothing is written.
                if let Err(error) = super::audit::append(&transaction, &event, &row, &chain_key)? {
                    return Ok(Err(error));
                }
                transaction.commit()?;
                Ok(Ok(true))
            })
            .await?;
        outcome.map_err(StoreError::Unexpected)
    }
}
