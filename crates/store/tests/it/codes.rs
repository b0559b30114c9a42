//! `CodeStore` cases: one-time codes sent by email or SMS, and the sends their resend throttle
//! counts.

use time::Duration;
use twofold_core::codes::{CODE_TTL, MAX_TRIES};
use twofold_core::store::{CodeCheck, NewCode, Stores};
use twofold_core::user::UserId;

use crate::harness::{TestDatabase, at, code_hash, insert_user, race};

conformance!(stores:
    the_right_code_is_accepted_once,
    no_code_was_ever_sent,
    a_code_expires_after_its_ttl,
    wrong_codes_count_down_the_tries,
    after_five_wrong_tries_even_the_right_code_is_refused,
    a_new_code_replaces_the_old_and_resets_the_tries,
    a_used_code_is_replaced_by_a_fresh_one,
    codes_belong_to_their_user_and_purpose,
    codes_go_with_their_user,
    sends_are_counted_by_key_and_window,
    old_sends_are_deleted,
);

conformance!(database:
    concurrent_consumes_of_one_code_have_one_winner,
    concurrent_wrong_tries_are_all_counted,
);

const PURPOSE: &str = "login_sms";
const DESTINATION: &str = "+447700900123";

fn new_code(user_id: UserId, purpose: &str, hash: u8, created_at: i64) -> NewCode<'_> {
    NewCode {
        user_id,
        purpose,
        destination: DESTINATION.to_owned(),
        code_hash: code_hash(hash),
        expires_at: at(created_at) + CODE_TTL,
        created_at: at(created_at),
    }
}

async fn consume(stores: &Stores, user_id: UserId, hash: u8, seconds: i64) -> CodeCheck {
    stores
        .codes
        .consume_code(user_id, PURPOSE, &code_hash(hash), at(seconds))
        .await
        .unwrap()
}

fn accepted() -> CodeCheck {
    CodeCheck::Accepted {
        destination: DESTINATION.to_owned(),
    }
}

async fn the_right_code_is_accepted_once(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 0))
        .await
        .unwrap();
    assert_eq!(consume(stores, user_id, 1, 10).await, accepted());
    assert_eq!(consume(stores, user_id, 1, 11).await, CodeCheck::NoCode);
    // A used code takes no more tries, right or wrong.
    assert_eq!(consume(stores, user_id, 2, 12).await, CodeCheck::NoCode);
}

async fn no_code_was_ever_sent(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    assert_eq!(consume(stores, user_id, 1, 0).await, CodeCheck::NoCode);
    assert_eq!(
        stores
            .codes
            .consume_code(UserId::random(), PURPOSE, &code_hash(1), at(0))
            .await
            .unwrap(),
        CodeCheck::NoCode,
        "no such user"
    );
}

async fn a_code_expires_after_its_ttl(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let ttl = CODE_TTL.whole_seconds();
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 0))
        .await
        .unwrap();
    // At the expiry instant the code is dead: accepted strictly before it.
    assert_eq!(consume(stores, user_id, 1, ttl).await, CodeCheck::NoCode);
    assert_eq!(consume(stores, user_id, 2, ttl).await, CodeCheck::NoCode);

    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 100))
        .await
        .unwrap();
    assert_eq!(consume(stores, user_id, 1, 100 + ttl - 1).await, accepted());
}

async fn wrong_codes_count_down_the_tries(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 0))
        .await
        .unwrap();
    for (n, tries_left) in (0..MAX_TRIES).rev().enumerate() {
        assert_eq!(
            consume(stores, user_id, 2, 10 + n as i64).await,
            CodeCheck::Wrong { tries_left },
        );
    }
    assert_eq!(consume(stores, user_id, 2, 20).await, CodeCheck::NoCode);
}

async fn after_five_wrong_tries_even_the_right_code_is_refused(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    for user_id in [alice, bob] {
        stores
            .codes
            .replace_code(&new_code(user_id, PURPOSE, 1, 0))
            .await
            .unwrap();
    }
    // Four wrong tries leave one: the right code still works.
    for n in 0..MAX_TRIES - 1 {
        consume(stores, bob, 2, 10 + i64::from(n)).await;
    }
    assert_eq!(consume(stores, bob, 1, 20).await, accepted());
    // Five, and it is dead.
    for n in 0..MAX_TRIES {
        consume(stores, alice, 2, 10 + i64::from(n)).await;
    }
    assert_eq!(consume(stores, alice, 1, 20).await, CodeCheck::NoCode);
}

async fn a_new_code_replaces_the_old_and_resets_the_tries(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 0))
        .await
        .unwrap();
    for n in 0..MAX_TRIES {
        consume(stores, user_id, 9, 1 + i64::from(n)).await;
    }
    let mut replacement = new_code(user_id, PURPOSE, 2, 60);
    replacement.destination = "+447700900999".to_owned();
    stores.codes.replace_code(&replacement).await.unwrap();

    // The old code is dead; the wrong try against the new one starts from a full count.
    assert_eq!(
        consume(stores, user_id, 1, 61).await,
        CodeCheck::Wrong {
            tries_left: MAX_TRIES - 1
        }
    );
    assert_eq!(
        consume(stores, user_id, 2, 62).await,
        CodeCheck::Accepted {
            destination: "+447700900999".to_owned()
        }
    );
}

async fn a_used_code_is_replaced_by_a_fresh_one(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 0))
        .await
        .unwrap();
    assert_eq!(consume(stores, user_id, 1, 1).await, accepted());
    // Even a new code with the same hash is live again: replacing clears the use.
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 60))
        .await
        .unwrap();
    assert_eq!(consume(stores, user_id, 1, 61).await, accepted());
}

async fn codes_belong_to_their_user_and_purpose(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    stores
        .codes
        .replace_code(&new_code(alice, PURPOSE, 1, 0))
        .await
        .unwrap();
    let mut email_code = new_code(alice, "email_verify", 2, 0);
    email_code.destination = "alice@example.com".to_owned();
    stores.codes.replace_code(&email_code).await.unwrap();

    // Bob has no code; Alice's SMS code does not answer for her email code or the reverse.
    assert_eq!(consume(stores, bob, 1, 1).await, CodeCheck::NoCode);
    assert_eq!(
        consume(stores, alice, 2, 2).await,
        CodeCheck::Wrong {
            tries_left: MAX_TRIES - 1
        }
    );
    assert_eq!(
        stores
            .codes
            .consume_code(alice, "email_verify", &code_hash(2), at(3))
            .await
            .unwrap(),
        CodeCheck::Accepted {
            destination: "alice@example.com".to_owned()
        }
    );
    assert_eq!(consume(stores, alice, 1, 4).await, accepted());
}

async fn codes_go_with_their_user(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let error = stores
        .codes
        .replace_code(&new_code(UserId::random(), PURPOSE, 1, 0))
        .await;
    assert!(error.is_err(), "a code for no user must be refused");
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 0))
        .await
        .unwrap();
    assert_eq!(consume(stores, user_id, 1, 1).await, accepted());
}

async fn sends_are_counted_by_key_and_window(stores: &Stores) {
    let codes = &stores.codes;
    assert_eq!(codes.sends_since("user:a", at(0)).await.unwrap(), 0);
    assert_eq!(
        codes.earliest_send_since("user:a", at(0)).await.unwrap(),
        None
    );
    for seconds in [0, 60, 120, 3_000] {
        codes.record_send("user:a", at(seconds)).await.unwrap();
    }
    codes.record_send("dest:b", at(60)).await.unwrap();

    // `since` is inclusive.
    assert_eq!(codes.sends_since("user:a", at(0)).await.unwrap(), 4);
    assert_eq!(codes.sends_since("user:a", at(60)).await.unwrap(), 3);
    assert_eq!(codes.sends_since("user:a", at(61)).await.unwrap(), 2);
    assert_eq!(codes.sends_since("user:a", at(3_001)).await.unwrap(), 0);
    assert_eq!(codes.sends_since("dest:b", at(0)).await.unwrap(), 1);
    assert_eq!(codes.sends_since("dest:c", at(0)).await.unwrap(), 0);
    assert_eq!(
        codes.earliest_send_since("user:a", at(61)).await.unwrap(),
        Some(at(120))
    );
    assert_eq!(
        codes
            .earliest_send_since("user:a", at(3_000) - Duration::hours(1))
            .await
            .unwrap(),
        Some(at(0))
    );
    // Two sends in the same second both count.
    codes.record_send("user:a", at(3_000)).await.unwrap();
    assert_eq!(codes.sends_since("user:a", at(3_000)).await.unwrap(), 2);
}

async fn old_sends_are_deleted(stores: &Stores) {
    let codes = &stores.codes;
    for seconds in [0, 10, 20] {
        codes.record_send("user:a", at(seconds)).await.unwrap();
        codes.record_send("dest:b", at(seconds)).await.unwrap();
    }
    assert_eq!(codes.delete_sends_before(at(10)).await.unwrap(), 2);
    assert_eq!(codes.sends_since("user:a", at(0)).await.unwrap(), 2);
    assert_eq!(codes.sends_since("dest:b", at(0)).await.unwrap(), 2);
    assert_eq!(codes.delete_sends_before(at(10)).await.unwrap(), 0);
    assert_eq!(codes.delete_sends_before(at(21)).await.unwrap(), 4);
}

async fn concurrent_consumes_of_one_code_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 0))
        .await
        .unwrap();
    let outcomes = race(database, |stores, _| async move {
        stores
            .codes
            .consume_code(user_id, PURPOSE, &code_hash(1), at(10))
            .await
            .unwrap()
    })
    .await;
    let winners = outcomes
        .iter()
        .filter(|outcome| **outcome == accepted())
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    // The losers saw a used code: none of them counted as a wrong try.
    assert!(
        outcomes
            .iter()
            .all(|outcome| *outcome == accepted() || *outcome == CodeCheck::NoCode),
        "{outcomes:?}"
    );
}

async fn concurrent_wrong_tries_are_all_counted(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    stores
        .codes
        .replace_code(&new_code(user_id, PURPOSE, 1, 0))
        .await
        .unwrap();
    let outcomes = race(database, |stores, n| async move {
        stores
            .codes
            .consume_code(user_id, PURPOSE, &code_hash(100 + n as u8), at(10))
            .await
            .unwrap()
    })
    .await;
    // Exactly MAX_TRIES tries were counted, each with its own remaining count.
    let mut tries_left: Vec<u32> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            CodeCheck::Wrong { tries_left } => Some(*tries_left),
            _ => None,
        })
        .collect();
    tries_left.sort_unstable();
    assert_eq!(
        tries_left,
        (0..MAX_TRIES).collect::<Vec<_>>(),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|outcome| **outcome == CodeCheck::NoCode)
            .count(),
        16 - MAX_TRIES as usize
    );
    assert_eq!(consume(&stores, user_id, 1, 11).await, CodeCheck::NoCode);
}
