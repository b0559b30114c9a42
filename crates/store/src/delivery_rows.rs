//! Delivery-queue rows as both backends read them, and their checked conversion into the
//! domain's types (see `rows.rs` for the rules every conversion keeps).

use anyhow::{Context, anyhow};
use time::OffsetDateTime;
use twofold_core::delivery::DeliveryChannel;
use twofold_core::store::{
    Delivery, DeliveryCounts, DeliveryFailureState, FailedDelivery, NewDelivery, PendingByChannel,
    SealedSecret, StoreError,
};
use uuid::Uuid;

use crate::rows::to_unix;

/// The `deliveries` columns [`DeliveryRow`] is read from, in its field order.
macro_rules! delivery_columns {
    () => {
        "id, channel, recipient, key_id, sealed_payload, attempts, created_at"
    };
}
pub(crate) use delivery_columns;

/// The `deliveries` columns [`FailedDeliveryRow`] is read from, in its field order.
macro_rules! failed_delivery_columns {
    () => {
        "id, channel, recipient, status, attempts, created_at, next_attempt_at, last_error, \
         last_failed_at"
    };
}
pub(crate) use failed_delivery_columns;

/// The values of a delivery being queued, owned so they can move to a database thread.
#[derive(Debug)]
pub(crate) struct NewDeliveryRow {
    pub id: String,
    pub channel: &'static str,
    pub recipient: String,
    pub key_id: String,
    pub sealed_payload: Vec<u8>,
    pub created_at: i64,
}

impl From<&NewDelivery> for NewDeliveryRow {
    fn from(delivery: &NewDelivery) -> Self {
        NewDeliveryRow {
            id: delivery.id.to_string(),
            channel: delivery.channel.as_str(),
            recipient: delivery.recipient.clone(),
            key_id: delivery.payload.key_id.clone(),
            sealed_payload: delivery.payload.ciphertext.clone(),
            created_at: to_unix(delivery.created_at),
        }
    }
}

/// A claimed (pending) `deliveries` row.
#[derive(Debug)]
pub(crate) struct DeliveryRow {
    pub id: String,
    pub channel: String,
    pub recipient: String,
    pub key_id: Option<String>,
    pub sealed_payload: Option<Vec<u8>>,
    pub attempts: i64,
    pub created_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = anyhow::Error;

    fn try_from(row: DeliveryRow) -> anyhow::Result<Delivery> {
        let id = delivery_id(&row.id)?;
        let (Some(key_id), Some(ciphertext)) = (row.key_id, row.sealed_payload) else {
            return Err(anyhow!("the pending delivery {id} has no sealed payload"));
        };
        Ok(Delivery {
            id,
            channel: channel(&row.channel, id)?,
            recipient: row.recipient,
            payload: SealedSecret { key_id, ciphertext },
            attempts: attempts(row.attempts, id)?,
            created_at: from_unix(row.created_at)
                .with_context(|| format!("deliveries.created_at of {id}"))?,
        })
    }
}

/// A `deliveries` row whose last attempt failed.
#[derive(Debug)]
pub(crate) struct FailedDeliveryRow {
    pub id: String,
    pub channel: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_failed_at: Option<i64>,
}

impl TryFrom<FailedDeliveryRow> for FailedDelivery {
    type Error = anyhow::Error;

    fn try_from(row: FailedDeliveryRow) -> anyhow::Result<FailedDelivery> {
        let id = delivery_id(&row.id)?;
        let state = match (row.status.as_str(), row.next_attempt_at, row.last_failed_at) {
            ("pending", Some(next), _) => DeliveryFailureState::Retrying {
                next_attempt_at: from_unix(next)
                    .with_context(|| format!("deliveries.next_attempt_at of {id}"))?,
            },
            ("failed", _, Some(failed)) => DeliveryFailureState::GaveUp {
                failed_at: from_unix(failed)
                    .with_context(|| format!("deliveries.last_failed_at of {id}"))?,
            },
            (status, ..) => {
                return Err(anyhow!(
                    "the delivery {id} has status {status:?} without the times it needs"
                ));
            }
        };
        Ok(FailedDelivery {
            id,
            channel: channel(&row.channel, id)?,
            recipient: row.recipient,
            attempts: attempts(row.attempts, id)?,
            created_at: from_unix(row.created_at)
                .with_context(|| format!("deliveries.created_at of {id}"))?,
            last_error: row
                .last_error
                .ok_or_else(|| anyhow!("the failed delivery {id} has no last_error"))?,
            state,
        })
    }
}

/// A count of attempts as the database stores it (INTEGER).
pub(crate) fn attempts_to_db(attempts: u32) -> anyhow::Result<i32> {
    i32::try_from(attempts).map_err(|_| anyhow!("{attempts} attempts do not fit INTEGER"))
}

fn delivery_id(text: &str) -> anyhow::Result<Uuid> {
    text.parse()
        .with_context(|| format!("deliveries.id {text:?} is not a uuid"))
}

fn channel(text: &str, id: Uuid) -> anyhow::Result<DeliveryChannel> {
    text.parse()
        .with_context(|| format!("deliveries.channel of {id}"))
}

fn attempts(value: i64, id: Uuid) -> anyhow::Result<u32> {
    u32::try_from(value).with_context(|| format!("deliveries.attempts of {id} is {value}"))
}

fn from_unix(seconds: i64) -> anyhow::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .with_context(|| format!("{seconds} is not a valid unix time"))
}

/// The end of a lease taken at `now`, as stored.
pub(crate) fn lease_end(now: OffsetDateTime, lease: time::Duration) -> Result<i64, StoreError> {
    now.checked_add(lease).map(to_unix).ok_or_else(|| {
        StoreError::Unexpected(anyhow::anyhow!("a lease of {lease} from {now} overflows"))
    })
}

/// Claimed rows as deliveries, oldest first (`RETURNING` promises no order).
pub(crate) fn to_deliveries(rows: Vec<DeliveryRow>) -> Result<Vec<Delivery>, StoreError> {
    let mut deliveries = rows
        .into_iter()
        .map(Delivery::try_from)
        .collect::<anyhow::Result<Vec<_>>>()?;
    deliveries.sort_by_key(|delivery| (delivery.created_at, delivery.id));
    Ok(deliveries)
}

pub(crate) fn counts(pending: i64, failed: i64) -> Result<DeliveryCounts, StoreError> {
    let count = |value: i64| {
        u64::try_from(value)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("COUNT(*) returned {value}")))
    };
    Ok(DeliveryCounts {
        pending: count(pending)?,
        failed: count(failed)?,
    })
}

/// [`PendingByChannel`] from the two `COUNT(*)`s of [`PENDING_BY_CHANNEL`].
pub(crate) fn pending_counts(email: i64, sms: i64) -> Result<PendingByChannel, StoreError> {
    let count = |value: i64| {
        u64::try_from(value)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("COUNT(*) returned {value}")))
    };
    Ok(PendingByChannel {
        email: count(email)?,
        sms: count(sms)?,
    })
}

/// The pending deliveries of each channel, in one row; the same text on both backends.
pub(crate) const PENDING_BY_CHANNEL: &str = "SELECT COUNT(CASE WHEN channel = 'email' THEN 1 END), \
     COUNT(CASE WHEN channel = 'sms' THEN 1 END) FROM deliveries WHERE status = 'pending'";

#[cfg(test)]
mod tests {
    use super::*;

    fn failed_row() -> FailedDeliveryRow {
        FailedDeliveryRow {
            id: "0b9f3a52-4c1e-4d7a-8f26-3e5d9c7b1a04".to_owned(),
            channel: "sms".to_owned(),
            recipient: "+441212345678".to_owned(),
            status: "pending".to_owned(),
            attempts: 2,
            created_at: 1_700_000_000,
            next_attempt_at: Some(1_700_000_010),
            last_error: Some("connection refused".to_owned()),
            last_failed_at: Some(1_700_000_005),
        }
    }

    #[test]
    fn failed_rows_convert_by_status() {
        let retrying = FailedDelivery::try_from(failed_row()).unwrap();
        assert_eq!(retrying.channel, DeliveryChannel::Sms);
        assert!(matches!(
            retrying.state,
            DeliveryFailureState::Retrying { next_attempt_at } if next_attempt_at.unix_timestamp() == 1_700_000_010
        ));
        let gave_up = FailedDelivery::try_from(FailedDeliveryRow {
            status: "failed".to_owned(),
            next_attempt_at: None,
            ..failed_row()
        })
        .unwrap();
        assert!(matches!(
            gave_up.state,
            DeliveryFailureState::GaveUp { failed_at } if failed_at.unix_timestamp() == 1_700_000_005
        ));
    }

    #[test]
    fn bad_delivery_rows_are_errors() {
        let rows = [
            FailedDeliveryRow {
                id: "x".to_owned(),
                ..failed_row()
            },
            FailedDeliveryRow {
                channel: "fax".to_owned(),
                ..failed_row()
            },
            FailedDeliveryRow {
                attempts: -1,
                ..failed_row()
            },
            FailedDeliveryRow {
                status: "sent".to_owned(),
                ..failed_row()
            },
            FailedDeliveryRow {
                last_error: None,
                ..failed_row()
            },
        ];
        for row in rows {
            let shown = format!("{row:?}");
            assert!(FailedDelivery::try_from(row).is_err(), "{shown}");
        }
        let pending_without_payload = DeliveryRow {
            id: "0b9f3a52-4c1e-4d7a-8f26-3e5d9c7b1a04".to_owned(),
            channel: "email".to_owned(),
            recipient: "bob@example.com".to_owned(),
            key_id: None,
            sealed_payload: None,
            attempts: 0,
            created_at: 1_700_000_000,
        };
        assert!(Delivery::try_from(pending_without_payload).is_err());
    }
}
