//! The store trait of the durable delivery queue (see `crate::delivery`).

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SealedSecret, StoreError};
use crate::delivery::{DeliveryChannel, NextAttempt};

/// A message being queued for delivery.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: Uuid,
    pub channel: DeliveryChannel,
    /// The email address, or the phone number in E.164.
    pub recipient: String,
    /// The whole message (subject, text, HTML), serialised and sealed under the master key:
    /// bodies carry one-time codes, which never sit in the database in clear.
    pub payload: SealedSecret,
    pub created_at: OffsetDateTime,
}

/// A delivery claimed by a worker: it is due, and no other worker will be handed it before
/// the lease runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub channel: DeliveryChannel,
    pub recipient: String,
    pub payload: SealedSecret,
    /// Failed attempts so far.
    pub attempts: u32,
    pub created_at: OffsetDateTime,
}

/// Where a delivery that has failed at least once stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFailureState {
    /// Still queued; the next attempt is due then.
    Retrying { next_attempt_at: OffsetDateTime },
    /// Given up: the message itself is erased, the record stays for the administrator.
    GaveUp { failed_at: OffsetDateTime },
}

/// A delivery whose last attempt failed, as the administrator sees it (never the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    pub id: Uuid,
    pub channel: DeliveryChannel,
    pub recipient: String,
    pub attempts: u32,
    pub created_at: OffsetDateTime,
    pub last_error: String,
    pub state: DeliveryFailureState,
}

/// How many deliveries are waiting (including those retrying) and how many were given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryCounts {
    pub pending: u64,
    pub failed: u64,
}

/// Deliveries waiting to be sent (including those retrying), by channel: the queue's depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PendingByChannel {
    /// Emails waiting.
    pub email: u64,
    /// Text messages waiting.
    pub sms: u64,
}

/// The durable delivery queue: a message acknowledged as sent is in it until a transport took
/// it, so it survives a crash of the process that accepted it.
#[async_trait]
pub trait DeliveryQueueStore: Send + Sync {
    /// Stores a delivery, due at once. Durable when it returns.
    async fn enqueue(&self, delivery: &NewDelivery) -> Result<(), StoreError>;

    /// Claims up to `limit` pending deliveries that are due at `now` and not claimed by a
    /// live lease, and leases them until `now + lease`. Atomic across instances: two
    /// concurrent callers never get the same delivery. A worker that dies loses its lease, and
    /// the delivery is claimed again once the lease has run out.
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Deletes a delivered message: nothing of it stays. `false` when it was not queued.
    async fn mark_sent(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Records a failed attempt: `attempts` failures so far and `last_error` (which must not
    /// contain the message). With [`NextAttempt::At`] the delivery is released to be retried
    /// then; with [`NextAttempt::Never`] it becomes failed and its message is erased. `false`
    /// when it was not pending.
    async fn mark_failed(
        &self,
        id: Uuid,
        attempts: u32,
        next: NextAttempt,
        last_error: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Deliveries whose last attempt failed, retrying or given up, the most recent first.
    async fn failed_deliveries(&self, limit: u32) -> Result<Vec<FailedDelivery>, StoreError>;

    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError>;

    /// The deliveries waiting on each channel (those retrying included, the given-up not);
    /// read for the metrics at each scrape, so one cheap statement.
    async fn pending_by_channel(&self) -> Result<PendingByChannel, StoreError>;
}
