//! `ThrottleStore` cases.

use twofold_core::store::{FailureCount, Stores};

use crate::harness::{TestDatabase, at, race};

conformance!(stores:
    record_failure_counts_up,
    failures_of_an_unknown_key_are_none,
    clear_failures_resets_the_count,
    keys_count_separately,
);

conformance!(database:
    concurrent_failures_are_all_counted,
);

async fn record_failure_counts_up(stores: &Stores) {
    let key = "totp:6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22";
    for (n, seconds) in [(1, 10), (2, 20), (3, 25)] {
        let expected = FailureCount {
            failures: n,
            last_failure_at: at(seconds),
        };
        assert_eq!(
            stores
                .throttle
                .record_failure(key, at(seconds))
                .await
                .unwrap(),
            expected
        );
        assert_eq!(stores.throttle.failures(key).await.unwrap(), Some(expected));
    }
}

async fn failures_of_an_unknown_key_are_none(stores: &Stores) {
    assert_eq!(stores.throttle.failures("nobody").await.unwrap(), None);
    // Clearing what was never recorded is not an error.
    stores.throttle.clear_failures("nobody").await.unwrap();
}

async fn clear_failures_resets_the_count(stores: &Stores) {
    let key = "recovery:alice";
    stores.throttle.record_failure(key, at(1)).await.unwrap();
    stores.throttle.record_failure(key, at(2)).await.unwrap();
    stores.throttle.clear_failures(key).await.unwrap();
    assert_eq!(stores.throttle.failures(key).await.unwrap(), None);
    assert_eq!(
        stores.throttle.record_failure(key, at(3)).await.unwrap(),
        FailureCount {
            failures: 1,
            last_failure_at: at(3)
        }
    );
}

async fn keys_count_separately(stores: &Stores) {
    stores.throttle.record_failure("a", at(1)).await.unwrap();
    stores.throttle.record_failure("a", at(2)).await.unwrap();
    stores.throttle.record_failure("b", at(3)).await.unwrap();
    stores.throttle.clear_failures("a").await.unwrap();
    assert_eq!(stores.throttle.failures("a").await.unwrap(), None);
    assert_eq!(
        stores.throttle.failures("b").await.unwrap(),
        Some(FailureCount {
            failures: 1,
            last_failure_at: at(3)
        })
    );
}

async fn concurrent_failures_are_all_counted(database: &TestDatabase) {
    let mut seen = race(database, |stores, _| async move {
        stores
            .throttle
            .record_failure("totp:alice", at(100))
            .await
            .unwrap()
            .failures
    })
    .await;
    // Each failure saw its own count: none was lost, none counted twice.
    seen.sort_unstable();
    assert_eq!(seen, (1..=16).collect::<Vec<u32>>());
    let stores = database.open().await;
    assert_eq!(
        stores.throttle.failures("totp:alice").await.unwrap(),
        Some(FailureCount {
            failures: 16,
            last_failure_at: at(100)
        })
    );
}
