//! `CodeStore` cases about inbound phone checks: the user texts a shown code to the system
//! number, the webhook marks the check received, and the user's session takes it once.

use twofold_core::store::{NewInboundCheck, Stores};
use twofold_core::user::UserId;

use crate::harness::{TestDatabase, at, code_hash, insert_user, race, winners};

conformance!(stores:
    only_the_right_phone_and_code_mark_a_check_once,
    a_received_check_is_taken_once,
    an_expired_check_can_be_neither_received_nor_taken,
    a_new_check_replaces_the_old_and_clears_its_receipt,
    checks_belong_to_their_user,
    a_check_needs_a_user,
);

conformance!(database:
    concurrent_receipts_of_one_check_have_one_winner,
    concurrent_takes_of_one_check_have_one_winner,
);

const PHONE: &str = "+447700900123";
const OTHER_PHONE: &str = "+447700900456";

/// A check from `phone` with code hash `hash`, started at `created_at` for ten minutes.
fn check(user_id: UserId, phone: &str, hash: u8, created_at: i64) -> NewInboundCheck {
    NewInboundCheck {
        user_id,
        phone: phone.to_owned(),
        code_hash: code_hash(hash),
        expires_at: at(created_at + 600),
        created_at: at(created_at),
    }
}

async fn replace(stores: &Stores, check: &NewInboundCheck) {
    stores.codes.replace_inbound_check(check).await.unwrap();
}

async fn mark(stores: &Stores, phone: &str, hash: u8, seconds: i64) -> u64 {
    stores
        .codes
        .mark_inbound_received(phone, &code_hash(hash), at(seconds))
        .await
        .unwrap()
}

async fn take(stores: &Stores, user_id: UserId, seconds: i64) -> Option<String> {
    stores
        .codes
        .take_received_inbound(user_id, at(seconds))
        .await
        .unwrap()
}

async fn only_the_right_phone_and_code_mark_a_check_once(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    assert_eq!(mark(stores, PHONE, 1, 1).await, 0, "no check yet");
    replace(stores, &check(alice, PHONE, 1, 0)).await;

    assert_eq!(mark(stores, PHONE, 2, 1).await, 0, "wrong code");
    assert_eq!(mark(stores, OTHER_PHONE, 1, 2).await, 0, "wrong phone");
    assert_eq!(take(stores, alice, 3).await, None, "nothing received yet");
    assert_eq!(mark(stores, PHONE, 1, 4).await, 1);
    assert_eq!(mark(stores, PHONE, 1, 5).await, 0, "already received");
}

async fn a_received_check_is_taken_once(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    assert_eq!(take(stores, alice, 0).await, None, "no check at all");
    replace(stores, &check(alice, PHONE, 1, 0)).await;
    assert_eq!(take(stores, alice, 1).await, None, "not received");
    assert_eq!(mark(stores, PHONE, 1, 2).await, 1);

    assert_eq!(take(stores, alice, 3).await, Some(PHONE.to_owned()));
    assert_eq!(take(stores, alice, 4).await, None, "taken already");
    // The taken check is gone: the same text cannot complete it again.
    assert_eq!(mark(stores, PHONE, 1, 5).await, 0);
    assert_eq!(take(stores, alice, 6).await, None);
}

async fn an_expired_check_can_be_neither_received_nor_taken(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    // Alice's text arrives at the instant her check expires: too late.
    replace(stores, &check(alice, PHONE, 1, 0)).await;
    assert_eq!(mark(stores, PHONE, 1, 600).await, 0);
    assert_eq!(mark(stores, PHONE, 1, 6000).await, 0);
    assert_eq!(take(stores, alice, 601).await, None);

    // Bob's arrives in time, but he comes to take it only once it has expired.
    replace(stores, &check(bob, OTHER_PHONE, 2, 0)).await;
    assert_eq!(mark(stores, OTHER_PHONE, 2, 599).await, 1);
    assert_eq!(take(stores, bob, 600).await, None);
    assert_eq!(take(stores, bob, 6000).await, None);
    // It was refused for its expiry alone: the received row is still there before it.
    assert_eq!(take(stores, bob, 599).await, Some(OTHER_PHONE.to_owned()));
}

async fn a_new_check_replaces_the_old_and_clears_its_receipt(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    replace(stores, &check(alice, PHONE, 1, 0)).await;
    assert_eq!(mark(stores, PHONE, 1, 10).await, 1);

    // A new check from another phone, with a new code and a later expiry.
    replace(stores, &check(alice, OTHER_PHONE, 2, 20)).await;
    assert_eq!(
        take(stores, alice, 21).await,
        None,
        "the receipt was cleared"
    );
    assert_eq!(mark(stores, PHONE, 1, 22).await, 0, "the old check is gone");
    assert_eq!(mark(stores, OTHER_PHONE, 1, 23).await, 0, "the old code");
    // After the old expiry (600) and before the new one (620).
    assert_eq!(mark(stores, OTHER_PHONE, 2, 610).await, 1);
    assert_eq!(take(stores, alice, 611).await, Some(OTHER_PHONE.to_owned()));

    // Replacing with the very same phone and code still needs a new text.
    replace(stores, &check(alice, PHONE, 3, 700)).await;
    assert_eq!(mark(stores, PHONE, 3, 701).await, 1);
    replace(stores, &check(alice, PHONE, 3, 702)).await;
    assert_eq!(take(stores, alice, 703).await, None);
    assert_eq!(mark(stores, PHONE, 3, 704).await, 1);
    assert_eq!(take(stores, alice, 705).await, Some(PHONE.to_owned()));
}

async fn checks_belong_to_their_user(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    // Two users checking the same phone, each with their own code.
    replace(stores, &check(alice, PHONE, 1, 0)).await;
    replace(stores, &check(bob, PHONE, 2, 0)).await;

    assert_eq!(mark(stores, PHONE, 1, 1).await, 1);
    assert_eq!(take(stores, bob, 2).await, None, "Bob's was not received");
    assert_eq!(take(stores, UserId::random(), 2).await, None);
    assert_eq!(take(stores, alice, 3).await, Some(PHONE.to_owned()));
    // Alice's take left Bob's check in place.
    assert_eq!(mark(stores, PHONE, 2, 4).await, 1);
    assert_eq!(take(stores, bob, 5).await, Some(PHONE.to_owned()));
}

async fn a_check_needs_a_user(stores: &Stores) {
    let error = stores
        .codes
        .replace_inbound_check(&check(UserId::random(), PHONE, 1, 0))
        .await;
    assert!(error.is_err(), "a check for no user must be refused");
    assert_eq!(mark(stores, PHONE, 1, 1).await, 0);
}

async fn concurrent_receipts_of_one_check_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    replace(&stores, &check(alice, PHONE, 1, 0)).await;
    let outcomes = race(database, |stores, _| async move {
        stores
            .codes
            .mark_inbound_received(PHONE, &code_hash(1), at(1))
            .await
            .unwrap()
            == 1
    })
    .await;
    assert_eq!(winners(&outcomes), 1);
    assert_eq!(take(&stores, alice, 2).await, Some(PHONE.to_owned()));
}

async fn concurrent_takes_of_one_check_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    replace(&stores, &check(alice, PHONE, 1, 0)).await;
    assert_eq!(mark(&stores, PHONE, 1, 1).await, 1);
    let outcomes = race(database, move |stores, _| async move {
        stores
            .codes
            .take_received_inbound(alice, at(2))
            .await
            .unwrap()
            .is_some()
    })
    .await;
    assert_eq!(winners(&outcomes), 1);
    assert_eq!(take(&stores, alice, 3).await, None);
}
