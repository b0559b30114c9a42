//! The delivery worker: claims due deliveries from the queue, opens them, hands them to the
//! transport of their channel and records the outcome — deleted when sent, rescheduled with
//! backoff when the failure may pass, given up (message erased, error kept) when it cannot or
//! after a day.
//!
//! Claims are leases, so several workers (instances) share one queue without sending a message
//! twice, and a worker that dies mid-send only delays its messages until the lease runs out.
//! Delivery is at least once: a process killed between the transport's acceptance and the
//! queue's deletion sends that message again after the lease.
//!
//! Logs name a delivery by its id, channel and redacted recipient (the domain, or the last two
//! digits), never by its message.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use twofold_core::clock::Clock;
use twofold_core::delivery::{NextAttempt, RetryPolicy};
use twofold_core::metrics::{DeliveryOutcome, Metrics};
use twofold_core::sealing::Sealer;
use twofold_core::store::{Delivery, DeliveryQueueStore, StoreError};

use super::payload::{self, QueuedMessage};
use super::transport::{EmailTransport, SmsTransport, TransportError, redacted_recipient};

/// The longest error text kept in the queue for the administrator.
const ERROR_TEXT_LIMIT: usize = 500;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a claim keeps other workers off a delivery; longer than any attempt can take.
    pub lease: time::Duration,
    /// Deliveries claimed (and sent concurrently) at a time.
    pub batch: u32,
    /// How often the queue is checked without a wake-up: for retries that fall due and for
    /// messages queued by another process (the CLI, another instance).
    pub poll_interval: Duration,
    /// The most one attempt may take before it counts as failed (and is retried).
    pub attempt_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            lease: time::Duration::minutes(5),
            batch: 8,
            poll_interval: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
        }
    }
}

/// Where each channel's messages go.
#[derive(Clone)]
pub struct Transports {
    pub email: Arc<dyn EmailTransport>,
    pub sms: Arc<dyn SmsTransport>,
}

struct Inner {
    store: Arc<dyn DeliveryQueueStore>,
    sealer: Arc<Sealer>,
    transports: Transports,
    clock: Arc<dyn Clock>,
    settings: WorkerSettings,
    /// Where each attempt's outcome is counted.
    metrics: Arc<Metrics>,
}

/// Made by [`super::queue::DeliveryQueue::worker`].
pub struct DeliveryWorker {
    inner: Arc<Inner>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl DeliveryWorker {
    pub(crate) fn new(
        store: Arc<dyn DeliveryQueueStore>,
        sealer: Arc<Sealer>,
        transports: Transports,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        settings: WorkerSettings,
    ) -> DeliveryWorker {
        DeliveryWorker {
            inner: Arc::new(Inner {
                store,
                sealer,
                transports,
                clock,
                settings,
                metrics: Arc::default(),
            }),
            wake,
        }
    }

    /// The same worker, counting its attempts in `metrics` (the service's, which the metrics
    /// listener serves) instead of in metrics of its own.
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> DeliveryWorker {
        let inner = &self.inner;
        DeliveryWorker {
            inner: Arc::new(Inner {
                store: Arc::clone(&inner.store),
                sealer: Arc::clone(&inner.sealer),
                transports: inner.transports.clone(),
                clock: Arc::clone(&inner.clock),
                settings: inner.settings.clone(),
                metrics,
            }),
            wake: self.wake,
        }
    }

    /// Works the queue until the task is dropped: a batch at a time, at once again while
    /// batches come back full, else after a wake-up or the poll interval.
    pub async fn run(self) {
        loop {
            let full = match self.run_once().await {
                Ok(claimed) => claimed >= self.inner.settings.batch as usize,
                Err(error) => {
                    tracing::warn!(error = %error, "cannot claim deliveries from the queue");
                    false
                }
            };
            if full {
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.inner.settings.poll_interval) => {}
            }
        }
    }

    /// Claims the deliveries due now and attempts each, concurrently; returns how many it
    /// claimed once every attempt is recorded.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let settings = &self.inner.settings;
        let claimed = self
            .inner
            .store
            .claim_due(self.inner.clock.now(), settings.lease, settings.batch)
            .await?;
        let count = claimed.len();
        let mut attempts = JoinSet::new();
        for delivery in claimed {
            attempts.spawn(attempt(self.inner.clone(), delivery));
        }
        while let Some(joined) = attempts.join_next().await {
            if let Err(error) = joined {
                tracing::error!(error = %error, "a delivery attempt failed to run; its lease will expire and it will be retried");
            }
        }
        Ok(count)
    }
}

async fn attempt(inner: Arc<Inner>, delivery: Delivery) {
    let outcome = match payload::open(&inner.sealer, &delivery) {
        Err(error) => Err(TransportError::Permanent(anyhow::Error::new(error))),
        Ok(message) => {
            let send = async {
                match &message {
                    QueuedMessage::Email(email) => {
                        inner
                            .transports
                            .email
                            .send_email(delivery.id, email, delivery.created_at)
                            .await
                    }
                    QueuedMessage::Sms(sms) => {
                        inner
                            .transports
                            .sms
                            .send_sms(delivery.id, sms, delivery.created_at)
                            .await
                    }
                }
            };
            let timeout = inner.settings.attempt_timeout;
            tokio::time::timeout(timeout, send)
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::Retry(anyhow::anyhow!(
                        "no answer within {} s",
                        timeout.as_secs()
                    )))
                })
        }
    };
    record(&inner, &delivery, outcome).await;
}

async fn record(inner: &Inner, delivery: &Delivery, outcome: Result<(), TransportError>) {
    let to = redacted_recipient(delivery.channel, &delivery.recipient);
    let attempts = delivery.attempts.saturating_add(1);
    let error = match outcome {
        Ok(()) => {
            inner
                .metrics
                .count_delivery(delivery.channel, DeliveryOutcome::Sent);
            match inner.store.mark_sent(delivery.id).await {
                Ok(_) => tracing::info!(
                    delivery = %delivery.id, channel = %delivery.channel, to = %to, attempts,
                    "message delivered"
                ),
                Err(error) => tracing::error!(
                    delivery = %delivery.id, channel = %delivery.channel, to = %to, error = %error,
                    "message delivered, but the queue could not record it: it will be sent again when its lease ends"
                ),
            }
            return;
        }
        Err(error) => error,
    };
    let now = inner.clock.now();
    let next = inner.settings.retry.after_failure(
        attempts,
        delivery.created_at,
        now,
        error.is_permanent(),
    );
    let text = failure_text(&error, &delivery.recipient, &to);
    let counted = match next {
        NextAttempt::At(_) => DeliveryOutcome::Failed,
        NextAttempt::Never => DeliveryOutcome::GivenUp,
    };
    inner.metrics.count_delivery(delivery.channel, counted);
    match next {
        NextAttempt::At(retry_at) => tracing::warn!(
            delivery = %delivery.id, channel = %delivery.channel, to = %to, attempts,
            retry_at = %retry_at, error = %text, "delivery failed; will retry"
        ),
        NextAttempt::Never => tracing::error!(
            delivery = %delivery.id, channel = %delivery.channel, to = %to, attempts,
            permanent = error.is_permanent(), error = %text,
            "delivery failed; giving up (the message is erased, the failure is kept)"
        ),
    }
    if let Err(store_error) = inner
        .store
        .mark_failed(delivery.id, attempts, next, &text, now)
        .await
    {
        tracing::error!(
            delivery = %delivery.id, error = %store_error,
            "cannot record the failed delivery; it will be retried when its lease ends"
        );
    }
}

/// The error as logs and the queue keep it: the full recipient (a server may quote it)
/// replaced by its redacted form, and bounded in length.
fn failure_text(error: &TransportError, recipient: &str, redacted: &str) -> String {
    let mut text = error.to_string().replace(recipient, redacted);
    text.retain(|character| !character.is_control());
    if text.len() > ERROR_TEXT_LIMIT {
        let mut end = ERROR_TEXT_LIMIT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_texts_hide_the_recipient_and_stay_short() {
        let error = TransportError::Permanent(anyhow::anyhow!(
            "permanent error (550): 5.1.1 <bob@example.com>: Recipient address rejected\r\n"
        ));
        let text = failure_text(&error, "bob@example.com", "…@example.com");
        assert_eq!(
            text,
            "permanent error (550): 5.1.1 <…@example.com>: Recipient address rejected"
        );
        let long = TransportError::Retry(anyhow::anyhow!("é{}", "x".repeat(2000)));
        let text = failure_text(&long, "bob@example.com", "…@example.com");
        assert!(text.len() <= ERROR_TEXT_LIMIT + '…'.len_utf8());
        assert!(text.ends_with('…'));
    }
}
