//! The sealed secrets of every table as master-key rotation sees them (see
//! `FactorStore::sealed_rows_not_under`): one SQL text per statement, shared by both backends
//! (they differ only in how parameters are written), and the conversion of their rows.

use anyhow::Context;
use twofold_core::delivery::DeliveryChannel;
use twofold_core::store::{SealedOwner, SealedRow, SealedSecret};
use twofold_core::user::UserId;
use uuid::Uuid;

/// Authenticators sealed under another key than `$1`, at most `$2`.
pub(crate) const TOTP_NOT_UNDER: &str = "SELECT id, user_id, NULL, key_id, sealed_secret \
     FROM totp_authenticators WHERE key_id <> $1 ORDER BY id LIMIT $2";

/// Pending queued messages sealed under another key than `$1`, at most `$2`.
pub(crate) const DELIVERIES_NOT_UNDER: &str = "SELECT id, channel, recipient, key_id, \
     sealed_payload FROM deliveries WHERE key_id IS NOT NULL AND key_id <> $1 ORDER BY id LIMIT $2";

/// The compare-and-swap of an authenticator's secret: `$1`, `$2` the new key id and bytes,
/// `$3` the row, `$4`, `$5` the key id and bytes it must still hold.
pub(crate) const REPLACE_TOTP: &str = "UPDATE totp_authenticators \
     SET key_id = $1, sealed_secret = $2 \
     WHERE id = $3 AND key_id = $4 AND sealed_secret = $5";

/// The compare-and-swap of a queued message's payload (parameters as in [`REPLACE_TOTP`]). A
/// row given up meanwhile has no payload any more and is left alone.
pub(crate) const REPLACE_DELIVERY: &str = "UPDATE deliveries \
     SET key_id = $1, sealed_payload = $2 \
     WHERE id = $3 AND status = 'pending' AND key_id = $4 AND sealed_payload = $5";

/// Every key id in use, once.
pub(crate) const KEY_IDS: &str = "SELECT key_id FROM totp_authenticators \
     UNION SELECT key_id FROM deliveries WHERE key_id IS NOT NULL ORDER BY 1";

/// How many sealed rows each key id holds.
pub(crate) const COUNTS: &str = "SELECT key_id, COUNT(*) FROM (\
     SELECT key_id FROM totp_authenticators \
     UNION ALL SELECT key_id FROM deliveries WHERE key_id IS NOT NULL) AS sealed \
     GROUP BY key_id ORDER BY key_id";

/// SQLite writes parameters `?1`, PostgreSQL `$1`.
pub(crate) fn sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Which table a [`RawSealedRow`] came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SealedTable {
    Totp,
    Delivery,
}

/// A row of [`TOTP_NOT_UNDER`] or [`DELIVERIES_NOT_UNDER`].
#[derive(Debug)]
pub(crate) struct RawSealedRow {
    pub table: SealedTable,
    pub id: String,
    /// The user id, or the channel.
    pub owner: String,
    /// The recipient of a message.
    pub recipient: Option<String>,
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

impl TryFrom<RawSealedRow> for SealedRow {
    type Error = anyhow::Error;

    fn try_from(row: RawSealedRow) -> anyhow::Result<SealedRow> {
        let id: Uuid = row
            .id
            .parse()
            .with_context(|| format!("sealed row id {:?} is not a uuid", row.id))?;
        let owner = match row.table {
            SealedTable::Totp => SealedOwner::Totp {
                user_id: row
                    .owner
                    .parse::<UserId>()
                    .with_context(|| format!("totp_authenticators.user_id of {id}"))?,
            },
            SealedTable::Delivery => SealedOwner::Delivery {
                channel: row
                    .owner
                    .parse::<DeliveryChannel>()
                    .with_context(|| format!("deliveries.channel of {id}"))?,
                recipient: row
                    .recipient
                    .with_context(|| format!("deliveries.recipient of {id} is missing"))?,
            },
        };
        Ok(SealedRow {
            id,
            owner,
            secret: SealedSecret {
                key_id: row.key_id,
                ciphertext: row.ciphertext,
            },
        })
    }
}

/// The statement that swaps `row`'s secret.
pub(crate) fn replace_statement(row: &SealedRow) -> &'static str {
    match row.owner {
        SealedOwner::Totp { .. } => REPLACE_TOTP,
        SealedOwner::Delivery { .. } => REPLACE_DELIVERY,
    }
}

/// A count as a `u64` (a negative one is corruption).
pub(crate) fn count(key_id: String, count: i64) -> anyhow::Result<(String, u64)> {
    let count = u64::try_from(count).with_context(|| format!("count of key {key_id}"))?;
    Ok((key_id, count))
}
