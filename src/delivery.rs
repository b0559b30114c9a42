//! Delivery set-up from the configuration, shared by `twofold serve` and `twofold mail`.
//!
//! A channel with a transport configured (SMTP for email, the HTTP gateway for SMS) goes
//! through the durable queue; a channel without one goes straight to the outbox, as the
//! contract says. The worker always runs in the server: it also drains what was queued while a
//! transport was configured, into the outbox if that transport has since been removed.

use std::sync::Arc;

use anyhow::Context;
use twofold_core::clock::Clock;
use twofold_core::delivery::{Mailer, SmsSender};
use twofold_core::sealing::Sealer;
use twofold_core::store::Stores;
use twofold_server::delivery::outbox::Outbox;
use twofold_server::delivery::queue::DeliveryQueue;
use twofold_server::delivery::sms_gateway::SmsGateway;
use twofold_server::delivery::smtp::{self, SmtpSecurity, SmtpSender};
use twofold_server::delivery::worker::{DeliveryWorker, Transports, WorkerSettings};

use crate::config::Config;

/// The senders handed to the HTTP layer and the CLI, and the transports behind the queue.
pub struct DeliverySetup {
    pub mailer: Arc<dyn Mailer>,
    pub sms: Arc<dyn SmsSender>,
    pub queue: DeliveryQueue,
    transports: Transports,
}

impl DeliverySetup {
    pub fn from_config(
        config: &Config,
        stores: &Stores,
        sealer: Arc<Sealer>,
        outbox: Arc<Outbox>,
    ) -> anyhow::Result<DeliverySetup> {
        let queue = DeliveryQueue::new(stores.deliveries.clone(), sealer);
        let queued = Arc::new(queue.clone());
        let (mailer, email): (Arc<dyn Mailer>, _) = match &config.smtp {
            Some(settings) => {
                let sender = SmtpSender::new(
                    settings,
                    config.mail_from.clone(),
                    smtp::hello_name(&config.public_url),
                )
                .context("cannot set up SMTP")?;
                (queued.clone(), Arc::new(sender) as _)
            }
            None => (outbox.clone(), outbox.clone() as _),
        };
        let (sms, text): (Arc<dyn SmsSender>, _) = match &config.sms {
            Some(settings) => {
                let gateway =
                    SmsGateway::new(settings.clone()).context("cannot set up the SMS gateway")?;
                (queued, Arc::new(gateway) as _)
            }
            None => (outbox.clone(), outbox as _),
        };
        Ok(DeliverySetup {
            mailer,
            sms,
            queue,
            transports: Transports { email, sms: text },
        })
    }

    /// The queue's worker; spawn its `run` once per server.
    pub fn worker(&self, clock: Arc<dyn Clock>) -> DeliveryWorker {
        self.queue
            .worker(self.transports.clone(), clock, WorkerSettings::default())
    }
}

/// One log line at start saying where messages go (never a secret).
pub fn log_destinations(config: &Config) {
    match &config.smtp {
        Some(settings) => {
            tracing::info!(smtp = %settings.describe(), from = %config.mail_from, "email goes out over SMTP");
            if settings.security() == SmtpSecurity::None && !smtp::is_loopback(settings.host()) {
                tracing::warn!(
                    host = settings.host(),
                    "TWOFOLD_SMTP_URL has tls=none for a host that is not this machine: mail and any password cross the network in clear"
                );
            }
        }
        None => tracing::info!("email goes to the outbox (TWOFOLD_SMTP_URL is not set)"),
    }
    match &config.sms {
        Some(settings) => {
            tracing::info!(gateway = %settings.describe(), "text messages go to the SMS gateway")
        }
        None => tracing::info!("text messages go to the outbox (TWOFOLD_SMS_URL is not set)"),
    }
}
