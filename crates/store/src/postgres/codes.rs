//! [`CodeStore`] on PostgreSQL.
//!
//! Each call is single statements that decide on their own, across instances: the upsert
//! replaces a code whole (concurrent ones queue on the row), and `consume_code`'s conditional
//! UPDATEs queue on the row lock, after which READ COMMITTED re-checks their WHERE clause
//! against the committed row, so of concurrent callers with the right code exactly one sees it
//! unused, and no wrong try is lost.

use async_trait::async_trait;
use time::OffsetDateTime;
use twofold_core::codes::MAX_TRIES;
use twofold_core::store::{CodeCheck, CodeStore, NewCode, NewInboundCheck, StoreError};
use twofold_core::user::UserId;

use super::{PostgresStore, store_error};
use crate::rows::{code_tries_left, count_to_u32, from_unix, to_unix};

fn max_tries() -> Result<i32, StoreError> {
    i32::try_from(MAX_TRIES)
        .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("MAX_TRIES does not fit INTEGER")))
}

#[async_trait]
impl CodeStore for PostgresStore {
    async fn replace_code(&self, code: &NewCode<'_>) -> Result<(), StoreError> {
        self.execute(
            "replace_code",
            "INSERT INTO one_time_codes \
             (user_id, purpose, destination, code_hash, tries, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6) \
             ON CONFLICT (user_id, purpose) DO UPDATE \
             SET destination = excluded.destination, code_hash = excluded.code_hash, \
             tries = 0, expires_at = excluded.expires_at, created_at = excluded.created_at, \
             used_at = NULL",
            &[
                &code.user_id.to_string(),
                &code.purpose,
                &code.destination,
                &&code.code_hash[..],
                &to_unix(code.expires_at),
                &to_unix(code.created_at),
            ],
        )
        .await
        .map(drop)
    }

    async fn consume_code(
        &self,
        user_id: UserId,
        purpose: &str,
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<CodeCheck, StoreError> {
        const OPERATION: &str = "consume_code";
        let user_id = user_id.to_string();
        let now = to_unix(now);
        let max_tries = max_tries()?;
        let accepted = self
            .query_opt(
                OPERATION,
                "UPDATE one_time_codes SET used_at = $4 \
                 WHERE user_id = $1 AND purpose = $2 AND code_hash = $3 \
                 AND used_at IS NULL AND expires_at > $4 AND tries < $5 \
                 RETURNING destination",
                &[&user_id, &purpose, &&code_hash[..], &now, &max_tries],
            )
            .await?;
        if let Some(row) = accepted {
            let destination: String = row
                .try_get(0)
                .map_err(|error| store_error(OPERATION, error))?;
            return Ok(CodeCheck::Accepted { destination });
        }
        // Not the right code for a live one: a try against the live code, if any. The hash is
        // excluded so that the right code never counts as a wrong one.
        let wrong = self
            .query_opt(
                OPERATION,
                "UPDATE one_time_codes SET tries = tries + 1 \
                 WHERE user_id = $1 AND purpose = $2 AND code_hash <> $3 \
                 AND used_at IS NULL AND expires_at > $4 AND tries < $5 \
                 RETURNING tries",
                &[&user_id, &purpose, &&code_hash[..], &now, &max_tries],
            )
            .await?;
        match wrong {
            Some(row) => {
                let tries: i32 = row
                    .try_get(0)
                    .map_err(|error| store_error(OPERATION, error))?;
                Ok(CodeCheck::Wrong {
                    tries_left: code_tries_left(i64::from(tries))?,
                })
            }
            None => Ok(CodeCheck::NoCode),
        }
    }

    async fn record_send(&self, key: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.execute(
            "record_send",
            "INSERT INTO code_sends (key, sent_at) VALUES ($1, $2)",
            &[&key, &to_unix(now)],
        )
        .await
        .map(drop)
    }

    async fn sends_since(&self, key: &str, since: OffsetDateTime) -> Result<u32, StoreError> {
        const OPERATION: &str = "sends_since";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT COUNT(*) FROM code_sends WHERE key = $1 AND sent_at >= $2",
                &[&key, &to_unix(since)],
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

    async fn earliest_send_since(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        const OPERATION: &str = "earliest_send_since";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT MIN(sent_at) FROM code_sends WHERE key = $1 AND sent_at >= $2",
                &[&key, &to_unix(since)],
            )
            .await?;
        let earliest: Option<i64> = match row {
            Some(row) => row
                .try_get(0)
                .map_err(|error| store_error(OPERATION, error))?,
            None => None,
        };
        Ok(earliest.map(from_unix).transpose()?)
    }

    async fn delete_sends_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        self.execute(
            "delete_sends_before",
            "DELETE FROM code_sends WHERE sent_at < $1",
            &[&to_unix(cutoff)],
        )
        .await
    }

    async fn replace_inbound_check(&self, check: &NewInboundCheck) -> Result<(), StoreError> {
        self.execute(
            "replace_inbound_check",
            "INSERT INTO inbound_phone_checks \
             (user_id, phone, code_hash, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE \
             SET phone = excluded.phone, code_hash = excluded.code_hash, \
             expires_at = excluded.expires_at, created_at = excluded.created_at, \
             received_at = NULL",
            &[
                &check.user_id.to_string(),
                &check.phone,
                &&check.code_hash[..],
                &to_unix(check.expires_at),
                &to_unix(check.created_at),
            ],
        )
        .await
        .map(drop)
    }

    async fn mark_inbound_received(
        &self,
        phone: &str,
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        self.execute(
            "mark_inbound_received",
            "UPDATE inbound_phone_checks SET received_at = $3 \
             WHERE phone = $1 AND code_hash = $2 \
             AND received_at IS NULL AND expires_at > $3",
            &[&phone, &&code_hash[..], &to_unix(now)],
        )
        .await
    }

    async fn take_received_inbound(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        const OPERATION: &str = "take_received_inbound";
        let row = self
            .query_opt(
                OPERATION,
                "DELETE FROM inbound_phone_checks \
                 WHERE user_id = $1 AND received_at IS NOT NULL AND expires_at > $2 \
                 RETURNING phone",
                &[&user_id.to_string(), &to_unix(now)],
            )
            .await?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(|error| store_error(OPERATION, error))
    }
}
