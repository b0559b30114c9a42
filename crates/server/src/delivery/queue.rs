//! The durable delivery queue as the rest of the server sees it: a [`Mailer`] and an
//! [`SmsSender`] whose `send_*` seals the message, stores it in the `deliveries` table and wakes
//! the worker. Once `send_*` returns the message is committed to the database, so a code
//! acknowledged as sent survives the process dying before any transport saw it; the request
//! never waits for a slow SMTP server or gateway.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Notify;
use twofold_core::clock::Clock;
use twofold_core::delivery::{DeliveryError, EmailMessage, Mailer, SmsMessage, SmsSender};
use twofold_core::sealing::Sealer;
use twofold_core::store::{DeliveryQueueStore, NewDelivery};
use uuid::Uuid;

use super::payload::{self, QueuedMessage};
use super::transport::redacted_recipient;
use super::worker::{DeliveryWorker, Transports, WorkerSettings};

/// Seals and enqueues messages; [`DeliveryQueue::worker`] makes the worker that sends them.
#[derive(Clone)]
pub struct DeliveryQueue {
    store: Arc<dyn DeliveryQueueStore>,
    sealer: Arc<Sealer>,
    /// Wakes this process's worker at once instead of at its next poll.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for DeliveryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeliveryQueue")
    }
}

impl DeliveryQueue {
    /// `sealer` must hold the master key the worker opens payloads with.
    pub fn new(store: Arc<dyn DeliveryQueueStore>, sealer: Arc<Sealer>) -> DeliveryQueue {
        DeliveryQueue {
            store,
            sealer,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The worker for this queue: it shares the store and the master key, and wakes when a
    /// message is enqueued here. Spawn [`DeliveryWorker::run`] once per process.
    pub fn worker(
        &self,
        transports: Transports,
        clock: Arc<dyn Clock>,
        settings: WorkerSettings,
    ) -> DeliveryWorker {
        DeliveryWorker::new(
            self.store.clone(),
            self.sealer.clone(),
            transports,
            clock,
            self.wake.clone(),
            settings,
        )
    }

    /// Seals and stores `message`; returns the delivery's id once it is durable.
    pub async fn enqueue(
        &self,
        message: &QueuedMessage,
        now: OffsetDateTime,
    ) -> Result<Uuid, DeliveryError> {
        let id = Uuid::new_v4();
        let sealed = payload::seal(&self.sealer, id, message).map_err(anyhow::Error::new)?;
        let delivery = NewDelivery {
            id,
            channel: message.channel(),
            recipient: message.recipient().to_owned(),
            payload: sealed,
            created_at: now,
        };
        self.store
            .enqueue(&delivery)
            .await
            .map_err(|error| anyhow::Error::new(error).context("queueing the message"))?;
        tracing::debug!(
            delivery = %id,
            channel = %delivery.channel,
            to = %redacted_recipient(delivery.channel, &delivery.recipient),
            "message queued"
        );
        self.wake.notify_one();
        Ok(id)
    }
}

#[async_trait]
impl Mailer for DeliveryQueue {
    #[tracing::instrument(skip_all)]
    async fn send_email(
        &self,
        message: &EmailMessage,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        self.enqueue(&QueuedMessage::Email(message.clone()), now)
            .await
            .map(drop)
    }
}

#[async_trait]
impl SmsSender for DeliveryQueue {
    #[tracing::instrument(skip_all)]
    async fn send_sms(
        &self,
        message: &SmsMessage,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        self.enqueue(&QueuedMessage::Sms(message.clone()), now)
            .await
            .map(drop)
    }
}
