//! `CodeStore::admit_send` cases: the resend throttle's check and record as one atomic step.

use time::{Duration, OffsetDateTime};
use twofold_core::store::{SendLimit, Stores};

use crate::harness::{TestDatabase, at, race_of, winners};

conformance!(stores:
    admits_up_to_the_limit_and_records_nothing_when_refused,
    sends_before_the_window_do_not_count,
    two_limits_on_one_key_record_one_send,
    a_full_key_refuses_for_every_key,
    no_limits_admit,
);

conformance!(database:
    concurrent_admissions_never_exceed_the_limit,
    concurrent_admissions_under_two_keys_in_either_order,
);

fn limit(key: &str, since: OffsetDateTime, max: u32) -> SendLimit<'_> {
    SendLimit { key, since, max }
}

async fn admit(stores: &Stores, limits: &[SendLimit<'_>], seconds: i64) -> bool {
    stores.codes.admit_send(limits, at(seconds)).await.unwrap()
}

async fn sends(stores: &Stores, key: &str) -> u32 {
    stores.codes.sends_since(key, at(-100_000)).await.unwrap()
}

async fn admits_up_to_the_limit_and_records_nothing_when_refused(stores: &Stores) {
    let limits = [limit("dest:a", at(0), 3)];
    for seconds in [10, 20, 30] {
        assert!(admit(stores, &limits, seconds).await, "send at {seconds}");
    }
    assert_eq!(sends(stores, "dest:a").await, 3);
    // Full: refused, again and again, and none of the refusals is recorded.
    assert!(!admit(stores, &limits, 40).await);
    assert!(!admit(stores, &limits, 50).await);
    assert_eq!(sends(stores, "dest:a").await, 3);
    assert_eq!(stores.codes.sends_since("dest:a", at(31)).await.unwrap(), 0);
    // The admitted sends were recorded at their `now`.
    assert_eq!(
        stores
            .codes
            .earliest_send_since("dest:a", at(11))
            .await
            .unwrap(),
        Some(at(20))
    );
    // A limit of 0 admits nothing, even under an unused key.
    assert!(!admit(stores, &[limit("dest:b", at(0), 0)], 60).await);
    assert_eq!(sends(stores, "dest:b").await, 0);
}

async fn sends_before_the_window_do_not_count(stores: &Stores) {
    for seconds in [0, 10, 20] {
        stores
            .codes
            .record_send("dest:a", at(seconds))
            .await
            .unwrap();
    }
    // Only the send at 20 is in a window starting at 11: one more fits under a limit of 2.
    assert!(admit(stores, &[limit("dest:a", at(11), 2)], 30).await);
    assert!(!admit(stores, &[limit("dest:a", at(11), 2)], 31).await);
    // `since` is inclusive: a send at exactly `since` counts.
    assert!(!admit(stores, &[limit("dest:a", at(30), 1)], 32).await);
    assert!(admit(stores, &[limit("dest:a", at(31), 1)], 32).await);
    assert_eq!(sends(stores, "dest:a").await, 5);
}

async fn two_limits_on_one_key_record_one_send(stores: &Stores) {
    // One a minute and ten an hour, both under the same key.
    let limits_at = |seconds: i64| {
        [
            limit("user:a", at(seconds) - Duration::minutes(1), 1),
            limit("user:a", at(seconds) - Duration::hours(1), 10),
        ]
    };
    assert!(admit(stores, &limits_at(0), 0).await);
    assert_eq!(sends(stores, "user:a").await, 1);
    // The minute limit refuses.
    assert!(!admit(stores, &limits_at(30), 30).await);
    // One send a minute fills the hour's ten: were each admission recorded twice, the hour
    // limit would refuse the sixth.
    for n in 1..10 {
        let seconds = 61 * n;
        assert!(
            admit(stores, &limits_at(seconds), seconds).await,
            "send {n}"
        );
        assert_eq!(sends(stores, "user:a").await, u32::try_from(n + 1).unwrap());
    }
    // Ten in the hour: the hour limit refuses although the minute one would admit.
    assert!(!admit(stores, &limits_at(61 * 10), 61 * 10).await);
    assert_eq!(sends(stores, "user:a").await, 10);
}

async fn a_full_key_refuses_for_every_key(stores: &Stores) {
    let both = |user: &'static str| [limit(user, at(0), 2), limit("dest:b", at(0), 3)];
    assert!(admit(stores, &both("user:a"), 1).await);
    assert!(admit(stores, &both("user:a"), 2).await);
    assert_eq!(
        (sends(stores, "user:a").await, sends(stores, "dest:b").await),
        (2, 2)
    );
    // The user's key is full: refused, and the destination's key gets no row either.
    assert!(!admit(stores, &both("user:a"), 3).await);
    assert_eq!(
        (sends(stores, "user:a").await, sends(stores, "dest:b").await),
        (2, 2)
    );
    // Another user fills the destination's key.
    assert!(admit(stores, &both("user:c"), 4).await);
    assert_eq!(
        (sends(stores, "user:c").await, sends(stores, "dest:b").await),
        (1, 3)
    );
    // The destination's key is full: refused, and the fresh user's key gets no row either,
    // whichever order the limits come in.
    assert!(!admit(stores, &both("user:d"), 5).await);
    let [user_d, dest_b] = both("user:d");
    assert!(!admit(stores, &[dest_b, user_d], 6).await);
    assert_eq!(
        (sends(stores, "user:d").await, sends(stores, "dest:b").await),
        (0, 3)
    );
}

async fn no_limits_admit(stores: &Stores) {
    assert!(stores.codes.admit_send(&[], at(0)).await.unwrap());
    assert_eq!(stores.codes.delete_sends_before(at(1)).await.unwrap(), 0);
}

async fn concurrent_admissions_never_exceed_the_limit(database: &TestDatabase) {
    let outcomes = race_of(database, 30, |stores, _| async move {
        stores
            .codes
            .admit_send(&[limit("dest:a", at(0), 10)], at(10))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(winners(&outcomes), 10, "{outcomes:?}");
    let stores = database.open().await;
    assert_eq!(sends(&stores, "dest:a").await, 10);
}

/// Half the callers name the keys in one order, half in the other: each admission locks both
/// keys, and none may deadlock or let either key exceed its limit.
async fn concurrent_admissions_under_two_keys_in_either_order(database: &TestDatabase) {
    let outcomes = race_of(database, 30, |stores, n| async move {
        let user = limit("user:a", at(0), 10);
        let destination = limit("dest:b", at(0), 10);
        let limits = if n % 4 < 2 {
            [user, destination]
        } else {
            [destination, user]
        };
        stores.codes.admit_send(&limits, at(10)).await.unwrap()
    })
    .await;
    assert_eq!(winners(&outcomes), 10, "{outcomes:?}");
    let stores = database.open().await;
    assert_eq!(
        (
            sends(&stores, "user:a").await,
            sends(&stores, "dest:b").await
        ),
        (10, 10)
    );
}
