//! `FactorStore` cases about recovery codes.

use twofold_core::store::Stores;

use crate::harness::{TestDatabase, at, code_hash, insert_user, race, winners};

conformance!(stores:
    replace_recovery_codes_then_count,
    a_recovery_code_is_consumed_once,
    recovery_codes_belong_to_their_user,
    replacing_recovery_codes_kills_the_old_set,
    a_released_code_works_again_only_when_released_from_its_own_use,
);

conformance!(database:
    concurrent_consumes_of_one_recovery_code_have_one_winner,
    concurrent_recovery_code_replacements_leave_one_set,
);

async fn replace_recovery_codes_then_count(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        0
    );
    let hashes: Vec<_> = (0..10).map(code_hash).collect();
    stores
        .factors
        .replace_recovery_codes(user_id, &hashes, at(0))
        .await
        .unwrap();
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        10
    );
    // An empty set is a valid replacement: it revokes every code.
    stores
        .factors
        .replace_recovery_codes(user_id, &[], at(1))
        .await
        .unwrap();
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        0
    );
}

async fn a_recovery_code_is_consumed_once(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let hashes: Vec<_> = (0..3).map(code_hash).collect();
    stores
        .factors
        .replace_recovery_codes(user_id, &hashes, at(0))
        .await
        .unwrap();
    let consume = |n, seconds| async move {
        stores
            .factors
            .consume_recovery_code(user_id, &code_hash(n), at(seconds))
            .await
    };
    assert!(consume(1, 10).await.unwrap());
    assert!(!consume(1, 11).await.unwrap());
    assert!(!consume(7, 12).await.unwrap(), "never issued");
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        2
    );
}

async fn recovery_codes_belong_to_their_user(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    // The same hash for both users is allowed: codes are only unique per user.
    stores
        .factors
        .replace_recovery_codes(alice, &[code_hash(1)], at(0))
        .await
        .unwrap();
    stores
        .factors
        .replace_recovery_codes(bob, &[code_hash(1), code_hash(2)], at(0))
        .await
        .unwrap();
    assert!(
        !stores
            .factors
            .consume_recovery_code(alice, &code_hash(2), at(1))
            .await
            .unwrap()
    );
    assert!(
        stores
            .factors
            .consume_recovery_code(alice, &code_hash(1), at(2))
            .await
            .unwrap()
    );
    assert_eq!(stores.factors.recovery_codes_left(alice).await.unwrap(), 0);
    assert_eq!(stores.factors.recovery_codes_left(bob).await.unwrap(), 2);
}

async fn a_released_code_works_again_only_when_released_from_its_own_use(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let factors = &stores.factors;
    factors
        .replace_recovery_codes(user_id, &[code_hash(1), code_hash(2)], at(0))
        .await
        .unwrap();
    assert!(
        factors
            .consume_recovery_code(user_id, &code_hash(1), at(5))
            .await
            .unwrap()
    );
    assert!(
        !factors
            .release_recovery_code(user_id, &code_hash(1), at(6))
            .await
            .unwrap(),
        "another use's time releases nothing"
    );
    assert!(
        !factors
            .release_recovery_code(user_id, &code_hash(2), at(5))
            .await
            .unwrap(),
        "an unused code is not released"
    );
    assert!(
        factors
            .release_recovery_code(user_id, &code_hash(1), at(5))
            .await
            .unwrap()
    );
    assert_eq!(factors.recovery_codes_left(user_id).await.unwrap(), 2);
    assert!(
        factors
            .consume_recovery_code(user_id, &code_hash(1), at(7))
            .await
            .unwrap(),
        "usable again"
    );
}

async fn replacing_recovery_codes_kills_the_old_set(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let old: Vec<_> = (0..5).map(code_hash).collect();
    let new: Vec<_> = (10..15).map(code_hash).collect();
    stores
        .factors
        .replace_recovery_codes(user_id, &old, at(0))
        .await
        .unwrap();
    assert!(
        stores
            .factors
            .consume_recovery_code(user_id, &old[0], at(1))
            .await
            .unwrap()
    );
    stores
        .factors
        .replace_recovery_codes(user_id, &new, at(2))
        .await
        .unwrap();
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        5
    );
    for hash in &old {
        assert!(
            !stores
                .factors
                .consume_recovery_code(user_id, hash, at(3))
                .await
                .unwrap()
        );
    }
    assert!(
        stores
            .factors
            .consume_recovery_code(user_id, &new[0], at(4))
            .await
            .unwrap()
    );
}

async fn concurrent_consumes_of_one_recovery_code_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    stores
        .factors
        .replace_recovery_codes(user_id, &[code_hash(1), code_hash(2)], at(0))
        .await
        .unwrap();

    let outcomes = race(database, |stores, _| async move {
        stores
            .factors
            .consume_recovery_code(user_id, &code_hash(1), at(5))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(winners(&outcomes), 1);
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        1
    );
}

async fn concurrent_recovery_code_replacements_leave_one_set(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;

    // Sixteen regenerations of five codes each, with no hash shared between them: whichever
    // committed last must be the only set left.
    race(database, |stores, n| async move {
        let set: Vec<_> = (0..5).map(|i| code_hash(n as u8 * 5 + i)).collect();
        stores
            .factors
            .replace_recovery_codes(user_id, &set, at(1))
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        stores.factors.recovery_codes_left(user_id).await.unwrap(),
        5
    );
}
