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

/// The data keys of secure messages not erased, wrapped under another key than `$1`, at most
/// `$2`. An erased message has no key left to re-seal.
pub(crate) const MESSAGES_NOT_UNDER: &str = "SELECT id, NULL, NULL, key_id, wrapped_key \
     FROM messages WHERE erased_at IS NULL AND key_id <> $1 ORDER BY id LIMIT $2";

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

/// The compare-and-swap of a message's wrapped data key (parameters as in [`REPLACE_TOTP`]). A
/// message erased meanwhile has no key any more and is left alone.
pub(crate) const REPLACE_MESSAGE: &str = "UPDATE messages \
     SET key_id = $1, wrapped_key = $2 \
     WHERE id = $3 AND erased_at IS NULL AND key_id = $4 AND wrapped_key = $5";

/// Every key id in use, once.
pub(crate) const KEY_IDS: &str = "SELECT key_id FROM totp_authenticators \
     UNION SELECT key_id FROM deliveries WHERE key_id IS NOT NULL \
     UNION SELECT key_id FROM messages WHERE key_id IS NOT NULL ORDER BY 1";

/// Where each table keeps the key ids of its sealed secrets: [`KEY_IDS`] is their union. A
/// backup reads only the tables its copy has, since it never migrates and a database an older
/// build left lacks the newer tables.
pub(crate) const KEY_ID_SOURCES: [(&str, &str); 3] = [
    (
        "totp_authenticators",
        "SELECT key_id FROM totp_authenticators",
    ),
    (
        "deliveries",
        "SELECT key_id FROM deliveries WHERE key_id IS NOT NULL",
    ),
    (
        "messages",
        "SELECT key_id FROM messages WHERE key_id IS NOT NULL",
    ),
];

/// How many sealed rows each key id holds.
pub(crate) const COUNTS: &str = "SELECT key_id, COUNT(*) FROM (\
     SELECT key_id FROM totp_authenticators \
     UNION ALL SELECT key_id FROM deliveries WHERE key_id IS NOT NULL \
     UNION ALL SELECT key_id FROM messages WHERE key_id IS NOT NULL) AS sealed \
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
    Message,
}

/// Every table with sealed secrets, with the statement that lists its rows not under a key,
/// in the order rotation takes them.
pub(crate) const SEALED_TABLES: [(SealedTable, &str); 3] = [
    (SealedTable::Totp, TOTP_NOT_UNDER),
    (SealedTable::Delivery, DELIVERIES_NOT_UNDER),
    (SealedTable::Message, MESSAGES_NOT_UNDER),
];

/// A row of one of the statements of [`SEALED_TABLES`].
#[derive(Debug)]
pub(crate) struct RawSealedRow {
    pub table: SealedTable,
    pub id: String,
    /// The user id, or the channel; none for a message.
    pub owner: Option<String>,
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
                    .with_context(|| format!("totp_authenticators.user_id of {id} is missing"))?
                    .parse::<UserId>()
                    .with_context(|| format!("totp_authenticators.user_id of {id}"))?,
            },
            SealedTable::Delivery => SealedOwner::Delivery {
                channel: row
                    .owner
                    .with_context(|| format!("deliveries.channel of {id} is missing"))?
                    .parse::<DeliveryChannel>()
                    .with_context(|| format!("deliveries.channel of {id}"))?,
                recipient: row
                    .recipient
                    .with_context(|| format!("deliveries.recipient of {id} is missing"))?,
            },
            SealedTable::Message => SealedOwner::Message,
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
        SealedOwner::Message => REPLACE_MESSAGE,
    }
}

/// A count as a `u64` (a negative one is corruption).
pub(crate) fn count(key_id: String, count: i64) -> anyhow::Result<(String, u64)> {
    let count = u64::try_from(count).with_context(|| format!("count of key {key_id}"))?;
    Ok((key_id, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn key_ids_unite_every_source() {
        let union = KEY_ID_SOURCES
            .iter()
            .map(|(_, select)| *select)
            .collect::<Vec<_>>()
            .join(" UNION ");
        assert_eq!(words(KEY_IDS), words(&format!("{union} ORDER BY 1")));
        for (table, sql) in SEALED_TABLES {
            let name = match table {
                SealedTable::Totp => "totp_authenticators",
                SealedTable::Delivery => "deliveries",
                SealedTable::Message => "messages",
            };
            assert!(sql.contains(&format!("FROM {name} ")), "{sql}");
            assert!(KEY_ID_SOURCES.iter().any(|(source, _)| *source == name));
            assert!(COUNTS.contains(&format!("FROM {name}")), "{name}");
        }
    }
}
