//! Activating an authenticator together with what its enrollment writes (recovery codes, the
//! audit entry), in one transaction (`FactorStore::activate_totp_enrollment`). It holds the
//! user's row lock (as every multi-statement factor write does) and then the audit chain's
//! advisory lock; nothing takes them in the other order.

use twofold_core::store::{StoreError, TotpActivation};

use super::PostgresStore;
use super::store_error;
use crate::audit_rows::NewAuditRow;
use crate::rows::{step_to_db, to_unix};

impl PostgresStore {
    pub(super) async fn activate_whole_enrollment(
        &self,
        activation: &TotpActivation<'_>,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "activate_totp_enrollment";
        let database = |error| store_error(OPERATION, error);
        let step = step_to_db(activation.step)?;
        let user_id = activation.user_id.to_string();
        let id = activation.id.to_string();
        let now = to_unix(activation.now);
        let row = NewAuditRow::new(activation.audit, activation.key.id);
        let mut client = self.client(OPERATION).await?;
        let transaction = super::factors::user_transaction(&mut client, &user_id)
            .await
            .map_err(database)?;
        // An error returns before the commit: the transaction rolls back when it drops.
        let delete = transaction
            .prepare_cached("DELETE FROM totp_authenticators WHERE user_id = $1 AND active")
            .await
            .map_err(database)?;
        transaction
            .execute(&delete, &[&user_id])
            .await
            .map_err(database)?;
        let activate = transaction
            .prepare_cached(
                "UPDATE totp_authenticators SET active = TRUE, last_used_step = $3, \
                 confirmed_at = $4, last_used_at = $4 \
                 WHERE id = $1 AND user_id = $2 AND NOT active",
            )
            .await
            .map_err(database)?;
        let activated = transaction
            .execute(&activate, &[&id, &user_id, &step, &now])
            .await
            .map_err(database)?;
        if activated != 1 {
            transaction.rollback().await.map_err(database)?;
            return Ok(false);
        }
        if let Some(codes) = activation.recovery_codes {
            let codes: Vec<&[u8]> = codes.iter().map(|code| &code[..]).collect();
            let delete = transaction
                .prepare_cached("DELETE FROM recovery_codes WHERE user_id = $1")
                .await
                .map_err(database)?;
            transaction
                .execute(&delete, &[&user_id])
                .await
                .map_err(database)?;
            let insert = transaction
                .prepare_cached(
                    "INSERT INTO recovery_codes (user_id, code_hash, created_at) \
                     SELECT $1, code_hash, $3 FROM unnest($2::BYTEA[]) AS code_hash",
                )
                .await
                .map_err(database)?;
            transaction
                .execute(&insert, &[&user_id, &codes, &now])
                .await
                .map_err(database)?;
        }
        super::audit::append_in(&transaction, activation.audit, &row, activation.key.key).await?;
        transaction.commit().await.map_err(database)?;
        Ok(true)
    }
}
