//! [`CodeStore`] on SQLite.
//!
//! Every statement here is a single one on the writer connection (or a reader), and each
//! decides on its own: the upsert replaces a code whole, and `consume_code`'s two conditional
//! UPDATEs each re-check the code's state, so a statement of another process that lands
//! between them can only make the second one find nothing.
//!
//! The exception is `admit_send`, which counts and then records: it runs as one IMMEDIATE
//! transaction, which takes the database's write lock at BEGIN, so no other connection (of
//! this process or another) can record a send between its counts and its inserts.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;
use twofold_core::codes::MAX_TRIES;
use twofold_core::store::{CodeCheck, CodeStore, NewCode, NewInboundCheck, SendLimit, StoreError};
use twofold_core::user::UserId;

use super::SqliteStore;
use crate::rows::{
    SendLimitRow, code_tries_left, count_to_u32, distinct_send_keys, from_unix, to_unix,
};

#[async_trait]
impl CodeStore for SqliteStore {
    async fn replace_code(&self, code: &NewCode<'_>) -> Result<(), StoreError> {
        let user_id = code.user_id.to_string();
        let purpose = code.purpose.to_owned();
        let destination = code.destination.clone();
        let code_hash = code.code_hash;
        let expires_at = to_unix(code.expires_at);
        let created_at = to_unix(code.created_at);
        self.database
            .write("replace_code", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO one_time_codes \
                         (user_id, purpose, destination, code_hash, tries, expires_at, created_at) \
                         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6) \
                         ON CONFLICT (user_id, purpose) DO UPDATE \
                         SET destination = excluded.destination, code_hash = excluded.code_hash, \
                         tries = 0, expires_at = excluded.expires_at, \
                         created_at = excluded.created_at, used_at = NULL",
                    )?
                    .execute(params![
                        user_id,
                        purpose,
                        destination,
                        &code_hash[..],
                        expires_at,
                        created_at
                    ])
            })
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
        let purpose = purpose.to_owned();
        let code_hash = *code_hash;
        let (accepted, tries) = self
            .database
            .write("consume_code", move |connection| {
                let user_id = user_id.to_string();
                let now = to_unix(now);
                let max_tries = i64::from(MAX_TRIES);
                let accepted: Option<String> = connection
                    .prepare_cached(
                        "UPDATE one_time_codes SET used_at = ?4 \
                         WHERE user_id = ?1 AND purpose = ?2 AND code_hash = ?3 \
                         AND used_at IS NULL AND expires_at > ?4 AND tries < ?5 \
                         RETURNING destination",
                    )?
                    .query_row(
                        params![user_id, purpose, &code_hash[..], now, max_tries],
                        |row| row.get(0),
                    )
                    .optional()?;
                if accepted.is_some() {
                    return Ok((accepted, None));
                }
                // Not the right code for a live one: a try against the live code, if any. The
                // hash is excluded so that the right code never counts as a wrong one.
                let tries: Option<i64> = connection
                    .prepare_cached(
                        "UPDATE one_time_codes SET tries = tries + 1 \
                         WHERE user_id = ?1 AND purpose = ?2 AND code_hash <> ?3 \
                         AND used_at IS NULL AND expires_at > ?4 AND tries < ?5 \
                         RETURNING tries",
                    )?
                    .query_row(
                        params![user_id, purpose, &code_hash[..], now, max_tries],
                        |row| row.get(0),
                    )
                    .optional()?;
                Ok((None, tries))
            })
            .await?;
        Ok(match (accepted, tries) {
            (Some(destination), _) => CodeCheck::Accepted { destination },
            (None, Some(tries)) => CodeCheck::Wrong {
                tries_left: code_tries_left(tries)?,
            },
            (None, None) => CodeCheck::NoCode,
        })
    }

    async fn record_send(&self, key: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.database
            .write("record_send", move |connection| {
                connection
                    .prepare_cached("INSERT INTO code_sends (key, sent_at) VALUES (?1, ?2)")?
                    .execute(params![key, to_unix(now)])
            })
            .await
            .map(drop)
    }

    async fn admit_send(
        &self,
        limits: &[SendLimit<'_>],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if limits.is_empty() {
            return Ok(true);
        }
        let limits: Vec<SendLimitRow> = limits.iter().map(SendLimitRow::from).collect();
        let keys = distinct_send_keys(&limits);
        self.database
            .write("admit_send", move |connection| {
                let transaction = connection.savepoint()?;
                for limit in &limits {
                    let count: i64 = transaction
                        .prepare_cached(
                            "SELECT COUNT(*) FROM code_sends WHERE key = ?1 AND sent_at >= ?2",
                        )?
                        .query_row(params![limit.key, limit.since], |row| row.get(0))?;
                    if count >= limit.max {
                        // Refused: the transaction rolls back when it drops, having written
                        // nothing.
                        return Ok(false);
                    }
                }
                let now = to_unix(now);
                for key in &keys {
                    transaction
                        .prepare_cached("INSERT INTO code_sends (key, sent_at) VALUES (?1, ?2)")?
                        .execute(params![key, now])?;
                }
                transaction.commit()?;
                Ok(true)
            })
            .await
    }

    async fn sends_since(&self, key: &str, since: OffsetDateTime) -> Result<u32, StoreError> {
        let key = key.to_owned();
        let count: i64 = self
            .database
            .lookup("sends_since", move |connection| {
                connection
                    .prepare_cached(
                        "SELECT COUNT(*) FROM code_sends WHERE key = ?1 AND sent_at >= ?2",
                    )?
                    .query_row(params![key, to_unix(since)], |row| row.get(0))
            })
            .await?;
        Ok(count_to_u32(count)?)
    }

    async fn earliest_send_since(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let key = key.to_owned();
        let earliest: Option<i64> = self
            .database
            .lookup("earliest_send_since", move |connection| {
                connection
                    .prepare_cached(
                        "SELECT MIN(sent_at) FROM code_sends WHERE key = ?1 AND sent_at >= ?2",
                    )?
                    .query_row(params![key, to_unix(since)], |row| row.get(0))
            })
            .await?;
        Ok(earliest.map(from_unix).transpose()?)
    }

    async fn delete_sends_before(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = self
            .database
            .write("delete_sends_before", move |connection| {
                connection
                    .prepare_cached("DELETE FROM code_sends WHERE sent_at < ?1")?
                    .execute([to_unix(cutoff)])
            })
            .await?;
        Ok(deleted as u64)
    }

    async fn replace_inbound_check(&self, check: &NewInboundCheck) -> Result<(), StoreError> {
        let user_id = check.user_id.to_string();
        let phone = check.phone.clone();
        let code_hash = check.code_hash;
        let expires_at = to_unix(check.expires_at);
        let created_at = to_unix(check.created_at);
        self.database
            .write("replace_inbound_check", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO inbound_phone_checks \
                         (user_id, phone, code_hash, expires_at, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (user_id) DO UPDATE \
                         SET phone = excluded.phone, code_hash = excluded.code_hash, \
                         expires_at = excluded.expires_at, created_at = excluded.created_at, \
                         received_at = NULL",
                    )?
                    .execute(params![
                        user_id,
                        phone,
                        &code_hash[..],
                        expires_at,
                        created_at
                    ])
            })
            .await
            .map(drop)
    }

    async fn mark_inbound_received(
        &self,
        phone: &str,
        code_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let phone = phone.to_owned();
        let code_hash = *code_hash;
        let marked = self
            .database
            .write("mark_inbound_received", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE inbound_phone_checks SET received_at = ?3 \
                         WHERE phone = ?1 AND code_hash = ?2 \
                         AND received_at IS NULL AND expires_at > ?3",
                    )?
                    .execute(params![phone, &code_hash[..], to_unix(now)])
            })
            .await?;
        Ok(marked as u64)
    }

    async fn take_received_inbound(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError> {
        self.database
            .write("take_received_inbound", move |connection| {
                connection
                    .prepare_cached(
                        "DELETE FROM inbound_phone_checks \
                         WHERE user_id = ?1 AND received_at IS NOT NULL AND expires_at > ?2 \
                         RETURNING phone",
                    )?
                    .query_row(params![user_id.to_string(), to_unix(now)], |row| row.get(0))
                    .optional()
            })
            .await
    }
}
