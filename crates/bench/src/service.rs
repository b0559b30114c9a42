//! A [`Service`] built the way `twofold serve` builds it (see `src/serve.rs`): the stores of a
//! database URL, the hashing pool, the sealer under the data directory's master key files, the
//! default settings. Only the senders differ: the seeded accounts are not real people, so their
//! notices are dropped instead of filling the outbox.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use time::OffsetDateTime;
use twofold_core::clock::SystemClock;
use twofold_core::delivery::{DeliveryError, EmailMessage, Mailer, SmsMessage, SmsSender};
use twofold_core::hasher::{Argon2Settings, PasswordHasher};
use twofold_core::sealing::Sealer;
use twofold_core::store::Stores;
use twofold_core::{Senders, Service, ServiceSettings};

/// Drops every email and text message: the benchmarks' users read none.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardSenders;

#[async_trait]
impl Mailer for DiscardSenders {
    async fn send_email(
        &self,
        _message: &EmailMessage,
        _now: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        Ok(())
    }
}

#[async_trait]
impl SmsSender for DiscardSenders {
    async fn send_sms(
        &self,
        _message: &SmsMessage,
        _now: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// The sealer under `master_key_file`, created there when missing, exactly as the server does
/// it, so that a server started on the same data directory opens what was sealed here.
pub fn sealer_for(master_key_file: &Path) -> anyhow::Result<Sealer> {
    twofold::master_key::load_or_create(master_key_file)?;
    let (keys, loader) = twofold::master_key::FileKeyLoader::start(master_key_file)?;
    Ok(Sealer::from_ring(keys).with_loader(Box::new(loader)))
}

/// Opens (and migrates) the database at `database_url` and builds a service on it with the
/// server's default settings, `hashing_workers` Argon2id threads and the sealer under
/// `master_key_file`.
pub async fn build(
    database_url: &str,
    master_key_file: &Path,
    hashing_workers: usize,
) -> anyhow::Result<Service> {
    let stores = twofold_store::open(database_url)
        .await
        .context("cannot open the database")?;
    build_on(stores, master_key_file, hashing_workers)
}

/// [`build`] on stores already open.
pub fn build_on(
    stores: Stores,
    master_key_file: &Path,
    hashing_workers: usize,
) -> anyhow::Result<Service> {
    let hasher = PasswordHasher::start(Argon2Settings::default(), hashing_workers, 64)?;
    let sealer = Arc::new(sealer_for(master_key_file)?);
    let senders = Senders {
        mailer: Arc::new(DiscardSenders),
        sms: Arc::new(DiscardSenders),
    };
    Ok(Service::new(
        stores,
        hasher,
        Arc::new(SystemClock),
        sealer,
        ServiceSettings::default(),
        senders,
    ))
}
