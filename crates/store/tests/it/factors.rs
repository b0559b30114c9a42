//! `FactorStore` cases about TOTP authenticators (pending, active, time steps), and about
//! removing all of a user's factors; recovery codes have `recovery_codes.rs`.

use twofold_core::store::{NewTotp, SealedSecret, StoreError, Stores, TotpRecord};
use twofold_core::user::UserId;
use uuid::Uuid;

use crate::harness::{TestDatabase, at, code_hash, insert_user, new_totp, race, winners};

conformance!(stores:
    pending_then_activate_makes_it_active,
    sealed_key_ids_lists_every_key_in_use,
    a_second_pending_replaces_the_first,
    a_new_pending_leaves_the_active_untouched,
    activating_replaces_the_old_active,
    activate_needs_a_pending_authenticator_of_that_user,
    sealed_secret_bytes_round_trip_exactly,
    an_invalid_authenticator_is_refused,
    consume_totp_step_accepts_only_later_steps,
    a_pending_authenticator_consumes_no_step,
    steps_beyond_bigint_are_errors,
    delete_all_factors_removes_everything,
);

conformance!(database:
    concurrent_activations_have_one_winner,
    concurrent_consumes_of_one_step_have_one_winner,
    concurrent_enrollments_leave_one_pending,
    deleting_a_user_deletes_its_factors,
    unparsable_totp_rows_are_errors,
);

/// Inserts `totp` as pending and activates it with `step`.
async fn insert_active(stores: &Stores, totp: &NewTotp, step: u64) {
    stores.factors.insert_pending_totp(totp).await.unwrap();
    assert!(
        stores
            .factors
            .activate_totp(totp.user_id, totp.id, step, at(60))
            .await
            .unwrap()
    );
}

async fn pending(stores: &Stores, user_id: UserId) -> Option<TotpRecord> {
    stores.factors.pending_totp(user_id).await.unwrap()
}

async fn active(stores: &Stores, user_id: UserId) -> Option<TotpRecord> {
    stores.factors.active_totp(user_id).await.unwrap()
}

async fn pending_then_activate_makes_it_active(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    assert_eq!(pending(stores, user_id).await, None);
    assert_eq!(active(stores, user_id).await, None);

    let totp = new_totp(user_id, at(10));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    let record = pending(stores, user_id).await.unwrap();
    assert_eq!(record.id, totp.id);
    assert_eq!(record.user_id, user_id);
    assert_eq!(record.secret, totp.secret);
    assert_eq!(record.algorithm, "SHA1");
    assert_eq!((record.digits, record.period_seconds), (6, 30));
    assert!(!record.active);
    assert_eq!(record.last_used_step, None);
    assert_eq!(record.created_at, at(10));
    assert_eq!(record.confirmed_at, None);
    assert_eq!(record.last_used_at, None);
    assert_eq!(active(stores, user_id).await, None);

    assert!(
        stores
            .factors
            .activate_totp(user_id, totp.id, 56_666_668, at(40))
            .await
            .unwrap()
    );
    assert_eq!(pending(stores, user_id).await, None);
    let record = active(stores, user_id).await.unwrap();
    assert_eq!(record.id, totp.id);
    assert!(record.active);
    assert_eq!(record.last_used_step, Some(56_666_668));
    assert_eq!(record.confirmed_at, Some(at(40)));
    assert_eq!(
        record.last_used_at,
        Some(at(40)),
        "the confirming code was a use"
    );
    assert_eq!(record.created_at, at(10));
    assert_eq!(record.secret, totp.secret);
}

async fn a_second_pending_replaces_the_first(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let first = new_totp(user_id, at(0));
    let second = new_totp(user_id, at(5));
    stores.factors.insert_pending_totp(&first).await.unwrap();
    stores.factors.insert_pending_totp(&second).await.unwrap();
    assert_eq!(pending(stores, user_id).await.unwrap().id, second.id);
    // The abandoned one is gone, not merely hidden.
    assert!(
        !stores
            .factors
            .activate_totp(user_id, first.id, 1, at(10))
            .await
            .unwrap()
    );
    assert_eq!(active(stores, user_id).await, None);
}

async fn a_new_pending_leaves_the_active_untouched(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let old = new_totp(user_id, at(0));
    insert_active(stores, &old, 100).await;
    let new = new_totp(user_id, at(5));
    stores.factors.insert_pending_totp(&new).await.unwrap();
    assert_eq!(active(stores, user_id).await.unwrap().id, old.id);
    assert_eq!(pending(stores, user_id).await.unwrap().id, new.id);
}

async fn activating_replaces_the_old_active(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let old = new_totp(user_id, at(0));
    insert_active(stores, &old, 100).await;
    let new = new_totp(user_id, at(5));
    insert_active(stores, &new, 200).await;

    let record = active(stores, user_id).await.unwrap();
    assert_eq!(record.id, new.id);
    assert_eq!(record.last_used_step, Some(200));
    assert_eq!(pending(stores, user_id).await, None);
    // The old authenticator is deleted: its codes are accepted nowhere.
    assert!(
        !stores
            .factors
            .consume_totp_step(old.id, 300, at(90))
            .await
            .unwrap()
    );
}

async fn activate_needs_a_pending_authenticator_of_that_user(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    let alice_active = new_totp(alice, at(0));
    insert_active(stores, &alice_active, 100).await;

    // Already active: a second confirm of the same authenticator changes nothing.
    assert!(
        !stores
            .factors
            .activate_totp(alice, alice_active.id, 150, at(70))
            .await
            .unwrap()
    );
    // No such authenticator.
    assert!(
        !stores
            .factors
            .activate_totp(alice, Uuid::new_v4(), 150, at(70))
            .await
            .unwrap()
    );
    // Another user's pending authenticator.
    let bob_pending = new_totp(bob, at(0));
    stores
        .factors
        .insert_pending_totp(&bob_pending)
        .await
        .unwrap();
    assert!(
        !stores
            .factors
            .activate_totp(alice, bob_pending.id, 150, at(70))
            .await
            .unwrap()
    );

    // Every refusal was rolled back: Alice's active authenticator survived, unchanged.
    let record = active(stores, alice).await.unwrap();
    assert_eq!(record.id, alice_active.id);
    assert_eq!(record.last_used_step, Some(100));
    assert_eq!(record.confirmed_at, Some(at(60)));
    assert_eq!(pending(stores, bob).await.unwrap().id, bob_pending.id);
    assert_eq!(active(stores, bob).await, None);
}

async fn sealed_secret_bytes_round_trip_exactly(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let mut totp = new_totp(user_id, at(0));
    // Every byte value, with NUL and 0xff at both ends: nothing may be read as text.
    let mut ciphertext = vec![0x00, 0xff];
    ciphertext.extend(0..=255u8);
    ciphertext.extend([0xff, 0x00]);
    totp.secret = SealedSecret {
        key_id: "2025-01 master key".to_owned(),
        ciphertext,
    };
    totp.algorithm = "SHA512".to_owned();
    totp.digits = 8;
    totp.period_seconds = 60;
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    let record = pending(stores, user_id).await.unwrap();
    assert_eq!(record.secret, totp.secret);
    assert_eq!(record.algorithm, "SHA512");
    assert_eq!((record.digits, record.period_seconds), (8, 60));
}

async fn an_invalid_authenticator_is_refused(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let good = new_totp(user_id, at(0));
    let invalid = [
        NewTotp {
            algorithm: "MD5".to_owned(),
            ..good.clone()
        },
        NewTotp {
            digits: 9,
            ..good.clone()
        },
        NewTotp {
            digits: 5,
            ..good.clone()
        },
        NewTotp {
            period_seconds: 0,
            ..good.clone()
        },
        NewTotp {
            user_id: UserId::random(),
            ..good.clone()
        },
    ];
    for totp in invalid {
        let error = stores.factors.insert_pending_totp(&totp).await.unwrap_err();
        assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
    }
    assert_eq!(pending(stores, user_id).await, None);
}

async fn consume_totp_step_accepts_only_later_steps(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let totp = new_totp(user_id, at(0));
    insert_active(stores, &totp, 100).await;
    let consume = |step, seconds| stores.factors.consume_totp_step(totp.id, step, at(seconds));

    assert!(!consume(100, 61).await.unwrap(), "the confirming step");
    assert!(consume(101, 62).await.unwrap(), "a later step");
    assert!(!consume(101, 63).await.unwrap(), "the same step again");
    assert!(!consume(99, 64).await.unwrap(), "an earlier step");
    assert!(consume(150, 65).await.unwrap(), "a much later step");

    let record = active(stores, user_id).await.unwrap();
    assert_eq!(record.last_used_step, Some(150));
    assert_eq!(record.last_used_at, Some(at(65)));
    assert!(
        !stores
            .factors
            .consume_totp_step(Uuid::new_v4(), 1000, at(66))
            .await
            .unwrap()
    );
}

async fn a_pending_authenticator_consumes_no_step(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let totp = new_totp(user_id, at(0));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    assert!(
        !stores
            .factors
            .consume_totp_step(totp.id, 100, at(10))
            .await
            .unwrap()
    );
    let record = pending(stores, user_id).await.unwrap();
    assert_eq!(record.last_used_step, None);
    assert_eq!(record.last_used_at, None);
}

async fn steps_beyond_bigint_are_errors(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let totp = new_totp(user_id, at(0));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    let too_large = i64::MAX as u64 + 1;
    let error = stores
        .factors
        .activate_totp(user_id, totp.id, too_large, at(1))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
    assert!(pending(stores, user_id).await.is_some());

    let largest = i64::MAX as u64;
    assert!(
        stores
            .factors
            .activate_totp(user_id, totp.id, largest - 1, at(2))
            .await
            .unwrap()
    );
    assert!(
        stores
            .factors
            .consume_totp_step(totp.id, largest, at(3))
            .await
            .unwrap()
    );
    let error = stores
        .factors
        .consume_totp_step(totp.id, u64::MAX, at(4))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
    assert_eq!(
        active(stores, user_id).await.unwrap().last_used_step,
        Some(largest)
    );
}

async fn delete_all_factors_removes_everything(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    for user_id in [alice, bob] {
        insert_active(stores, &new_totp(user_id, at(0)), 100).await;
        stores
            .factors
            .insert_pending_totp(&new_totp(user_id, at(1)))
            .await
            .unwrap();
        stores
            .factors
            .replace_recovery_codes(user_id, &[code_hash(1), code_hash(2)], at(2))
            .await
            .unwrap();
    }

    stores.factors.delete_all_factors(alice).await.unwrap();
    assert_eq!(active(stores, alice).await, None);
    assert_eq!(pending(stores, alice).await, None);
    assert_eq!(stores.factors.recovery_codes_left(alice).await.unwrap(), 0);
    // Only Alice's.
    assert!(active(stores, bob).await.is_some());
    assert!(pending(stores, bob).await.is_some());
    assert_eq!(stores.factors.recovery_codes_left(bob).await.unwrap(), 2);
    // Nothing left to delete is not an error.
    stores.factors.delete_all_factors(alice).await.unwrap();
    stores
        .factors
        .delete_all_factors(UserId::random())
        .await
        .unwrap();
}

async fn concurrent_activations_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    let old = new_totp(user_id, at(0));
    insert_active(&stores, &old, 100).await;
    let totp = new_totp(user_id, at(10));
    stores.factors.insert_pending_totp(&totp).await.unwrap();

    let outcomes = race(database, |stores, n| async move {
        stores
            .factors
            .activate_totp(user_id, totp.id, 200 + n as u64, at(20))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(winners(&outcomes), 1);
    let record = active(&stores, user_id).await.unwrap();
    assert_eq!(record.id, totp.id);
    assert_eq!(pending(&stores, user_id).await, None);
}

async fn concurrent_consumes_of_one_step_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    let totp = new_totp(user_id, at(0));
    insert_active(&stores, &totp, 100).await;

    let outcomes = race(database, |stores, _| async move {
        stores
            .factors
            .consume_totp_step(totp.id, 101, at(90))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(winners(&outcomes), 1);
    assert_eq!(
        active(&stores, user_id).await.unwrap().last_used_step,
        Some(101)
    );
}

async fn concurrent_enrollments_leave_one_pending(database: &TestDatabase) {
    let stores = database.open().await;
    let user_id = insert_user(&stores, "alice@example.com").await;
    let active_totp = new_totp(user_id, at(0));
    insert_active(&stores, &active_totp, 100).await;

    // Every enrollment succeeds (each replaces the one before); none fails on the
    // one-pending-per-user index.
    race(database, |stores, n| async move {
        stores
            .factors
            .insert_pending_totp(&new_totp(user_id, at(n as i64)))
            .await
            .unwrap();
    })
    .await;
    assert!(pending(&stores, user_id).await.is_some());
    assert_eq!(active(&stores, user_id).await.unwrap().id, active_totp.id);
    let rows = database
        .query_i64(&format!(
            "SELECT COUNT(*) FROM totp_authenticators WHERE user_id = '{user_id}'"
        ))
        .await;
    assert_eq!(rows, 2);
}

async fn deleting_a_user_deletes_its_factors(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    let bob = insert_user(&stores, "bob@example.com").await;
    for user_id in [alice, bob] {
        insert_active(&stores, &new_totp(user_id, at(0)), 100).await;
        stores
            .factors
            .insert_pending_totp(&new_totp(user_id, at(1)))
            .await
            .unwrap();
        stores
            .factors
            .replace_recovery_codes(user_id, &[code_hash(1)], at(2))
            .await
            .unwrap();
    }

    database
        .execute_raw(&format!("DELETE FROM users WHERE id = '{alice}'"))
        .await;
    let left = |table: &'static str, user_id: UserId| async move {
        database
            .query_i64(&format!(
                "SELECT COUNT(*) FROM {table} WHERE user_id = '{user_id}'"
            ))
            .await
    };
    assert_eq!(left("totp_authenticators", alice).await, 0);
    assert_eq!(left("recovery_codes", alice).await, 0);
    assert_eq!(left("totp_authenticators", bob).await, 2);
    assert_eq!(left("recovery_codes", bob).await, 1);
    assert_eq!(active(&stores, alice).await, None);
    assert_eq!(stores.factors.recovery_codes_left(alice).await.unwrap(), 0);
}

async fn unparsable_totp_rows_are_errors(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    let bob = insert_user(&stores, "bob@example.com").await;
    let alice_totp = new_totp(alice, at(0));
    insert_active(&stores, &alice_totp, 100).await;
    let bob_totp = new_totp(bob, at(0));
    stores.factors.insert_pending_totp(&bob_totp).await.unwrap();
    // The schema's CHECKs keep a bad step and an unknown algorithm out, so the corruption is
    // one they cannot see.
    database
        .execute_raw(&format!(
            "UPDATE totp_authenticators SET id = 'not-a-uuid' WHERE id = '{}'",
            alice_totp.id
        ))
        .await;
    database
        .execute_raw(&format!(
            "UPDATE totp_authenticators SET created_at = 9223372036854775807 WHERE id = '{}'",
            bob_totp.id
        ))
        .await;

    let alice = stores.factors.active_totp(alice).await;
    assert!(matches!(alice, Err(StoreError::Unexpected(_))), "{alice:?}");
    let bob = stores.factors.pending_totp(bob).await;
    assert!(matches!(bob, Err(StoreError::Unexpected(_))), "{bob:?}");
}

async fn sealed_key_ids_lists_every_key_in_use(stores: &Stores) {
    assert!(stores.factors.sealed_key_ids().await.unwrap().is_empty());
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    stores
        .factors
        .insert_pending_totp(&new_totp(alice, at(0)))
        .await
        .unwrap();
    let mut rotated = new_totp(bob, at(0));
    rotated.secret.key_id = "key-2".to_owned();
    stores.factors.insert_pending_totp(&rotated).await.unwrap();
    stores
        .factors
        .insert_pending_totp(&new_totp(bob, at(1)))
        .await
        .unwrap();
    assert_eq!(stores.factors.sealed_key_ids().await.unwrap(), ["key-1"]);
    stores.factors.insert_pending_totp(&rotated).await.unwrap();
    assert_eq!(
        stores.factors.sealed_key_ids().await.unwrap(),
        ["key-1", "key-2"]
    );
}
