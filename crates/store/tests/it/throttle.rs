//! `ThrottleStore` cases.

use std::sync::Arc;

use tokio::sync::Barrier;
use twofold_core::store::{FailureCount, LockoutPolicy, Stores};

use crate::harness::{TestDatabase, at, race, race_of};

conformance!(stores:
    record_failure_counts_up,
    failures_of_an_unknown_key_are_none,
    clear_failures_resets_the_count,
    keys_count_separately,
    take_attempt_admits_the_free_failures_then_waits_that_double,
    take_attempt_waits_at_most_the_longest_wait,
    take_attempt_follows_record_failure_and_clear_failures,
    take_attempt_keys_lock_separately,
    give_back_lowers_the_count,
    give_back_of_the_last_failure_removes_the_row,
    give_back_without_a_row_changes_nothing,
    give_back_of_a_locked_attempt_admits_the_next,
    record_failure_forgets_after_a_quiet_spell,
    record_failure_never_forgets_with_zero,
    take_attempt_forgets_after_a_quiet_spell,
    take_attempt_without_forgetting_keeps_the_count,
);

conformance!(database:
    concurrent_failures_are_all_counted,
    concurrent_take_attempts_admit_only_what_the_policy_allows,
    concurrent_give_backs_are_all_counted,
);

/// The second-factor policy: 5 free failures, then 30 s doubling up to 15 minutes.
const POLICY: LockoutPolicy = LockoutPolicy {
    free_failures: 5,
    first_wait_seconds: 30,
    longest_wait_seconds: 900,
    forget_after_seconds: 0,
};

/// A per-client-IP style policy: 3 free failures, 1 s doubling up to 10 s, forgotten after 60 s
/// without a failure.
const FORGETTING: LockoutPolicy = LockoutPolicy {
    free_failures: 3,
    first_wait_seconds: 1,
    longest_wait_seconds: 10,
    forget_after_seconds: 60,
};

fn count(failures: u32, seconds: i64) -> Option<FailureCount> {
    Some(FailureCount {
        failures,
        last_failure_at: at(seconds),
    })
}

/// `take_attempt` under [`POLICY`] at `at(seconds)`, checking that `failures` agrees with it
/// afterwards: the new count when admitted, the count before when locked.
async fn take(stores: &Stores, key: &str, seconds: i64) -> Option<FailureCount> {
    let before = stores.throttle.failures(key).await.unwrap();
    let taken = stores
        .throttle
        .take_attempt(key, at(seconds), &POLICY)
        .await
        .unwrap();
    let after = stores.throttle.failures(key).await.unwrap();
    match taken {
        Some(_) => assert_eq!(after, taken, "admitted at {seconds}: failures disagrees"),
        None => assert_eq!(after, before, "locked at {seconds}: the count changed"),
    }
    taken
}

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
                .record_failure(key, at(seconds), 0)
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
    stores.throttle.record_failure(key, at(1), 0).await.unwrap();
    stores.throttle.record_failure(key, at(2), 0).await.unwrap();
    stores.throttle.clear_failures(key).await.unwrap();
    assert_eq!(stores.throttle.failures(key).await.unwrap(), None);
    assert_eq!(
        stores.throttle.record_failure(key, at(3), 0).await.unwrap(),
        FailureCount {
            failures: 1,
            last_failure_at: at(3)
        }
    );
}

async fn keys_count_separately(stores: &Stores) {
    stores.throttle.record_failure("a", at(1), 0).await.unwrap();
    stores.throttle.record_failure("a", at(2), 0).await.unwrap();
    stores.throttle.record_failure("b", at(3), 0).await.unwrap();
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
            .record_failure("totp:alice", at(100), 0)
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

async fn take_attempt_admits_the_free_failures_then_waits_that_double(stores: &Stores) {
    let key = "second_factor:alice";
    for n in 1..=5 {
        assert_eq!(take(stores, key, 0).await, count(n, 0), "attempt {n}");
    }
    // Locked: the 6th at the same time and until the wait of 30 s is over.
    assert_eq!(take(stores, key, 0).await, None);
    assert_eq!(take(stores, key, 29).await, None);
    let (mut failures, mut last) = (5, 0);
    for wait in [30, 60, 120, 240, 480, 900, 900, 900] {
        assert_eq!(
            take(stores, key, last + wait - 1).await,
            None,
            "wait {wait}"
        );
        failures += 1;
        last += wait;
        assert_eq!(
            take(stores, key, last).await,
            count(failures, last),
            "wait {wait}"
        );
        // Each admitted attempt past the free ones locks the key again at once.
        assert_eq!(take(stores, key, last).await, None, "after wait {wait}");
    }
}

async fn take_attempt_waits_at_most_the_longest_wait(stores: &Stores) {
    // Counts whose doubled wait would exceed 15 minutes, or overflow the shift (shifting by 64
    // or more) without the cap of 16 doublings.
    let key = "second_factor:bob";
    let (mut failures, mut last) = (0, 0);
    for target in [10, 21, 69, 100] {
        while failures < target {
            last += 1;
            failures = stores
                .throttle
                .record_failure(key, at(last), 0)
                .await
                .unwrap()
                .failures;
        }
        assert_eq!(take(stores, key, last).await, None, "{failures} failures");
        assert_eq!(
            take(stores, key, last + 899).await,
            None,
            "{failures} failures"
        );
        failures += 1;
        last += 900;
        assert_eq!(take(stores, key, last).await, count(failures, last));
    }
}

async fn take_attempt_follows_record_failure_and_clear_failures(stores: &Stores) {
    let key = "second_factor:carol";
    for seconds in 1..=4 {
        stores
            .throttle
            .record_failure(key, at(seconds), 0)
            .await
            .unwrap();
    }
    // Four recorded failures leave one free attempt.
    assert_eq!(take(stores, key, 10).await, count(5, 10));
    assert_eq!(take(stores, key, 10).await, None);
    // Clearing unlocks at once and starts over.
    stores.throttle.clear_failures(key).await.unwrap();
    assert_eq!(stores.throttle.failures(key).await.unwrap(), None);
    assert_eq!(take(stores, key, 11).await, count(1, 11));
}

async fn take_attempt_keys_lock_separately(stores: &Stores) {
    for _ in 0..5 {
        take(stores, "second_factor:dave", 0).await.unwrap();
    }
    assert_eq!(take(stores, "second_factor:dave", 1).await, None);
    assert_eq!(take(stores, "second_factor:erin", 1).await, count(1, 1));
}

async fn give_back_lowers_the_count(stores: &Stores) {
    let key = "second_factor:alice";
    for seconds in 1..=3 {
        take(stores, key, seconds).await.unwrap();
    }
    stores.throttle.give_back_attempt(key).await.unwrap();
    assert_eq!(stores.throttle.failures(key).await.unwrap(), count(2, 3));
    stores.throttle.give_back_attempt(key).await.unwrap();
    assert_eq!(stores.throttle.failures(key).await.unwrap(), count(1, 3));
}

async fn give_back_of_the_last_failure_removes_the_row(stores: &Stores) {
    let key = "second_factor:bob";
    assert_eq!(take(stores, key, 1).await, count(1, 1));
    stores.throttle.give_back_attempt(key).await.unwrap();
    assert_eq!(stores.throttle.failures(key).await.unwrap(), None);
    // Nothing is left to give back: still no row, and the next attempt counts from 1.
    stores.throttle.give_back_attempt(key).await.unwrap();
    assert_eq!(stores.throttle.failures(key).await.unwrap(), None);
    assert_eq!(take(stores, key, 2).await, count(1, 2));
}

async fn give_back_without_a_row_changes_nothing(stores: &Stores) {
    stores.throttle.give_back_attempt("nobody").await.unwrap();
    assert_eq!(stores.throttle.failures("nobody").await.unwrap(), None);
    // Another key is untouched.
    take(stores, "somebody", 1).await.unwrap();
    stores.throttle.give_back_attempt("nobody").await.unwrap();
    assert_eq!(
        stores.throttle.failures("somebody").await.unwrap(),
        count(1, 1)
    );
}

async fn give_back_of_a_locked_attempt_admits_the_next(stores: &Stores) {
    let key = "second_factor:carol";
    for n in 1..=5 {
        assert_eq!(take(stores, key, 0).await, count(n, 0));
    }
    assert_eq!(take(stores, key, 1).await, None);
    stores.throttle.give_back_attempt(key).await.unwrap();
    assert_eq!(stores.throttle.failures(key).await.unwrap(), count(4, 0));
    assert_eq!(take(stores, key, 1).await, count(5, 1));
    assert_eq!(take(stores, key, 1).await, None);
}

async fn concurrent_take_attempts_admit_only_what_the_policy_allows(database: &TestDatabase) {
    let key = "second_factor:alice";
    let take_all = |seconds: i64| {
        race_of(database, 100, move |stores, _| async move {
            stores
                .throttle
                .take_attempt(key, at(seconds), &POLICY)
                .await
                .unwrap()
                .map(|count| count.failures)
        })
    };
    // A fresh key: the five free attempts, each with its own count, and no more.
    let mut admitted: Vec<u32> = take_all(0).await.into_iter().flatten().collect();
    admitted.sort_unstable();
    assert_eq!(admitted, vec![1, 2, 3, 4, 5]);
    let stores = database.open().await;
    assert_eq!(stores.throttle.failures(key).await.unwrap(), count(5, 0));
    // When the wait is over, one attempt, which locks the key again.
    let admitted: Vec<u32> = take_all(30).await.into_iter().flatten().collect();
    assert_eq!(admitted, vec![6]);
    assert_eq!(stores.throttle.failures(key).await.unwrap(), count(6, 30));
}

async fn concurrent_give_backs_are_all_counted(database: &TestDatabase) {
    let key = "second_factor:bob";
    let stores = database.open().await;
    let record = |failures: usize| {
        let stores = stores.clone();
        async move {
            for _ in 0..failures {
                stores.throttle.record_failure(key, at(1), 0).await.unwrap();
            }
        }
    };
    let give_back_all = |count: usize| {
        race_of(database, count, move |stores, _| async move {
            stores.throttle.give_back_attempt(key).await.unwrap();
        })
    };
    record(40).await;
    give_back_all(32).await;
    assert_eq!(stores.throttle.failures(key).await.unwrap(), count(8, 1));
    // More give-backs than failures: the row goes, and the rest change nothing.
    give_back_all(16).await;
    assert_eq!(stores.throttle.failures(key).await.unwrap(), None);

    // The last two, many times over, on two instances: of two concurrent give-backs one must
    // lower the count and the other, seeing that, remove the row.
    let instances = [database.open().await, database.open().await];
    for round in 0..100 {
        record(2).await;
        let barrier = Arc::new(Barrier::new(2));
        let tasks: Vec<_> = instances
            .iter()
            .map(|stores| {
                let (stores, barrier) = (stores.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    stores.throttle.give_back_attempt(key).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            stores.throttle.failures(key).await.unwrap(),
            None,
            "round {round}"
        );
    }
}

async fn record_failure_forgets_after_a_quiet_spell(stores: &Stores) {
    let key = "ip:192.0.2.7";
    let record = |seconds: i64| async move {
        stores
            .throttle
            .record_failure(key, at(seconds), 60)
            .await
            .unwrap()
    };
    assert_eq!(Some(record(0).await), count(1, 0));
    // Each failure within 60 s of the last adds to the count, however long the whole run.
    assert_eq!(Some(record(59).await), count(2, 59));
    assert_eq!(Some(record(118).await), count(3, 118));
    // 60 s without one: the count starts again.
    assert_eq!(Some(record(178).await), count(1, 178));
    assert_eq!(stores.throttle.failures(key).await.unwrap(), count(1, 178));
}

async fn record_failure_never_forgets_with_zero(stores: &Stores) {
    let key = "password:alice";
    stores.throttle.record_failure(key, at(0), 0).await.unwrap();
    let later = stores
        .throttle
        .record_failure(key, at(1_000_000), 0)
        .await
        .unwrap();
    assert_eq!(Some(later), count(2, 1_000_000));
}

async fn take_attempt_forgets_after_a_quiet_spell(stores: &Stores) {
    let key = "ip:2001:db8::/64";
    let take = |seconds: i64| async move {
        stores
            .throttle
            .take_attempt(key, at(seconds), &FORGETTING)
            .await
            .unwrap()
    };
    for n in 1..=3 {
        assert_eq!(take(0).await, count(n, 0));
    }
    assert_eq!(take(0).await, None);
    // After the 1 s wait, one more, then a 2 s wait.
    assert_eq!(take(1).await, count(4, 1));
    assert_eq!(take(2).await, None);
    // A minute after the last failure the key is forgotten: free attempts again.
    assert_eq!(take(61).await, count(1, 61));
    assert_eq!(take(61).await, count(2, 61));

    // A wait longer than the quiet spell still ends with the quiet spell.
    let policy = LockoutPolicy {
        first_wait_seconds: 600,
        longest_wait_seconds: 600,
        ..FORGETTING
    };
    let key = "ip:192.0.2.8";
    for n in 1..=3 {
        let taken = stores.throttle.take_attempt(key, at(0), &policy).await;
        assert_eq!(taken.unwrap(), count(n, 0));
    }
    let locked = stores.throttle.take_attempt(key, at(59), &policy).await;
    assert_eq!(locked.unwrap(), None);
    let forgotten = stores.throttle.take_attempt(key, at(60), &policy).await;
    assert_eq!(forgotten.unwrap(), count(1, 60));
}

async fn take_attempt_without_forgetting_keeps_the_count(stores: &Stores) {
    let key = "password:bob";
    for n in 1..=5 {
        assert_eq!(take(stores, key, 0).await, count(n, 0));
    }
    // A day later the wait is over, but the count goes on from 5: the next wait is longer.
    assert_eq!(take(stores, key, 86_400).await, count(6, 86_400));
    assert_eq!(take(stores, key, 86_400 + 59).await, None);
}
