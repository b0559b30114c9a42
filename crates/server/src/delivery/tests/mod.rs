//! Tests of the delivery queue end to end: a real SQLite queue, the real worker, and on the
//! other side a small SMTP server (`fake_smtp`) or an axum app playing the SMS gateway, both on
//! loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod email;
mod fake_smtp;
mod sms;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use twofold_core::clock::{Clock, ManualClock};
use twofold_core::delivery::RetryPolicy;
use twofold_core::sealing::{MasterKey, Sealer};
use twofold_core::store::{DeliveryFailureState, FailedDelivery, Stores};
use twofold_store::testing::TestDatabase;
use zeroize::Zeroizing;

use super::outbox::Outbox;
use super::queue::DeliveryQueue;
use super::transport::{EmailTransport, SmsTransport};
use super::worker::{DeliveryWorker, Transports, WorkerSettings};

/// The instant the manual clocks start at.
pub const START: i64 = 1_800_000_000;

/// A queue over a fresh SQLite database, with a manual clock and an outbox for whichever
/// channel a test does not exercise.
pub struct Harness {
    pub database: TestDatabase,
    pub stores: Stores,
    pub queue: DeliveryQueue,
    pub clock: ManualClock,
    pub outbox: Arc<Outbox>,
    _outbox_directory: tempfile::TempDir,
}

/// The master key every harness seals with, as if read from the same key file.
pub fn sealer() -> Arc<Sealer> {
    Arc::new(Sealer::new(MasterKey::new(&Zeroizing::new([42; 32]))))
}

pub fn worker_settings() -> WorkerSettings {
    WorkerSettings {
        poll_interval: Duration::from_millis(50),
        retry: RetryPolicy::default(),
        ..WorkerSettings::default()
    }
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::over(TestDatabase::sqlite()).await
    }

    /// A harness over an existing database (a second instance, or a restart).
    pub async fn over(database: TestDatabase) -> Harness {
        let stores = database.open().await;
        let queue = DeliveryQueue::new(stores.deliveries.clone(), sealer());
        let directory = tempfile::tempdir().unwrap();
        let outbox = Arc::new(Outbox::open(directory.path().join("outbox")).unwrap());
        Harness {
            database,
            stores,
            queue,
            clock: ManualClock::at_unix(START),
            outbox,
            _outbox_directory: directory,
        }
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    pub fn worker(
        &self,
        email: Option<Arc<dyn EmailTransport>>,
        sms: Option<Arc<dyn SmsTransport>>,
    ) -> DeliveryWorker {
        let transports = Transports {
            email: email.unwrap_or_else(|| self.outbox.clone()),
            sms: sms.unwrap_or_else(|| self.outbox.clone()),
        };
        self.queue
            .worker(transports, Arc::new(self.clock.clone()), worker_settings())
    }

    /// The one recorded failure.
    pub async fn only_failure(&self) -> FailedDelivery {
        let mut failures = self.stores.deliveries.failed_deliveries(10).await.unwrap();
        assert_eq!(failures.len(), 1, "{failures:?}");
        failures.remove(0)
    }

    pub async fn pending(&self) -> u64 {
        self.stores
            .deliveries
            .delivery_counts()
            .await
            .unwrap()
            .pending
    }

    /// Every byte the database keeps on disk (the file, its WAL and shared memory).
    pub fn database_bytes(&self) -> Vec<u8> {
        let path = PathBuf::from(self.database.url().strip_prefix("sqlite://").unwrap());
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        bytes
    }
}

pub fn gave_up(failure: &FailedDelivery) -> bool {
    matches!(failure.state, DeliveryFailureState::GaveUp { .. })
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}
