//! [`CodeStore`] on PostgreSQL.
//!
//! Each call is single statements that decide on their own, across instances: the upsert
//! replaces a code whole (concurrent ones queue on the row), and `consume_code`'s conditional
//! UPDATEs queue on the row lock, after which READ COMMITTED re-checks their WHERE clause
//! against the committed row, so of concurrent callers with the right code exactly one sees it
//! unused, and no wrong try is lost.
//!
//! The exception is `admit_send`, which counts and then records, and so must not interleave
//! with another admission under the same key: see [`admit_send`].

use async_trait::async_trait;
use deadpool_postgres::Client;
use time::OffsetDateTime;
use tokio_postgres::IsolationLevel;
use twofold_core::codes::MAX_TRIES;
use twofold_core::store::{CodeCheck, CodeStore, NewCode, NewInboundCheck, SendLimit, StoreError};
use twofold_core::user::UserId;

use super::{PostgresStore, store_error};
use crate::rows::{
    SendLimitRow, code_tries_left, count_to_u32, distinct_send_keys, from_unix, to_unix,
};

fn max_tries() -> Result<i32, StoreError> {
    i32::try_from(MAX_TRIES)
        .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("MAX_TRIES does not fit INTEGER")))
}

/// The advisory lock (the one-`BIGINT` key space) that admissions under `key` take: the 64-bit
/// FNV-1a hash of the key's bytes. It is computed here, not by the server, so that the locks
/// can be taken in the order of their ids, and it is fixed by definition, so every instance and
/// every version agrees on it. Two keys that collide merely share a lock: their admissions wait
/// for each other, and each still counts only its own key's rows.
fn send_lock_id(key: &str) -> i64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    i64::from_be_bytes(hash.to_be_bytes())
}

/// Admits a send under `limits` (not empty) or refuses it, as one transaction.
///
/// Counting and then inserting is not atomic under READ COMMITTED by itself: concurrent
/// admissions, on this instance or another, would all count the same rows and all insert. So
/// the transaction first takes the advisory lock of every key it will count or record, sorted by
/// lock id so that two admissions sharing keys take them in the same order and cannot deadlock.
/// Another admission under any of those keys waits at its lock until this one ends, and since
/// READ COMMITTED gives each statement a fresh snapshot, its counts after the wait include the
/// rows this one committed. (The level is set, not assumed: under REPEATABLE READ the snapshot
/// would predate the wait.) The locks end with the transaction, also when it is refused.
async fn admit_send(
    client: &mut Client,
    limits: &[SendLimitRow],
    now: i64,
) -> Result<bool, tokio_postgres::Error> {
    let keys = distinct_send_keys(limits);
    let mut lock_ids: Vec<i64> = keys.iter().map(|key| send_lock_id(key)).collect();
    lock_ids.sort_unstable();
    lock_ids.dedup();
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    let lock = transaction
        .prepare_cached("SELECT pg_advisory_xact_lock($1)")
        .await?;
    for lock_id in &lock_ids {
        transaction.execute(&lock, &[lock_id]).await?;
    }
    let count = transaction
        .prepare_cached("SELECT COUNT(*) FROM code_sends WHERE key = $1 AND sent_at >= $2")
        .await?;
    for limit in limits {
        let sends: i64 = transaction
            .query_one(&count, &[&limit.key, &limit.since])
            .await?
            .try_get(0)?;
        if sends >= limit.max {
            transaction.rollback().await?;
            return Ok(false);
        }
    }
    // One row per distinct key, in one statement.
    let insert = transaction
        .prepare_cached(
            "INSERT INTO code_sends (key, sent_at) SELECT key, $2 FROM unnest($1::TEXT[]) AS key",
        )
        .await?;
    transaction.execute(&insert, &[&keys, &now]).await?;
    transaction.commit().await?;
    Ok(true)
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

    async fn admit_send(
        &self,
        limits: &[SendLimit<'_>],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "admit_send";
        if limits.is_empty() {
            return Ok(true);
        }
        let limits: Vec<SendLimitRow> = limits.iter().map(SendLimitRow::from).collect();
        let mut client = self.client(OPERATION).await?;
        admit_send(&mut client, &limits, to_unix(now))
            .await
            .map_err(|error| store_error(OPERATION, error))
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

#[cfg(test)]
mod tests {
    use super::send_lock_id;

    /// The published FNV-1a 64 test vectors: every instance must derive the same lock ids.
    #[test]
    fn send_lock_ids_are_fnv_1a_64() {
        let as_id = |hash: u64| i64::from_be_bytes(hash.to_be_bytes());
        assert_eq!(send_lock_id(""), as_id(0xcbf2_9ce4_8422_2325));
        assert_eq!(send_lock_id("a"), as_id(0xaf63_dc4c_8601_ec8c));
        assert_eq!(send_lock_id("foobar"), as_id(0x8594_4171_f739_67e8));
    }
}
