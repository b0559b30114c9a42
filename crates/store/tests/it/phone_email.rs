//! `UserStore::set_email_verified`, and the `FactorStore` cases about the phone and email
//! factors, including what `delete_all_factors` removes besides authenticators and recovery
//! codes.

use twofold_core::store::{NewInboundCheck, PhoneFactor, Stores};
use twofold_core::user::UserId;

use crate::harness::{TestDatabase, at, code_hash, insert_user, new_totp};

conformance!(stores:
    set_email_verified_marks_only_that_user,
    a_phone_factor_is_set_read_and_replaced,
    a_phone_factor_needs_a_user_and_an_e164_number,
    enabling_the_email_factor_twice_keeps_the_first_time,
    the_email_factor_needs_a_user,
    delete_all_factors_removes_phone_email_and_inbound_check,
);

conformance!(database:
    deleting_a_user_deletes_its_phone_email_and_inbound_check,
);

const ALICE_PHONE: &str = "+447700900123";
const BOB_PHONE: &str = "+447700900456";

async fn email_verified(stores: &Stores, user_id: UserId) -> bool {
    stores
        .users
        .user_by_id(user_id)
        .await
        .unwrap()
        .unwrap()
        .email_verified
}

async fn phone(stores: &Stores, user_id: UserId) -> Option<PhoneFactor> {
    stores.factors.phone_factor(user_id).await.unwrap()
}

fn inbound_check(user_id: UserId, phone: &str, hash: u8) -> NewInboundCheck {
    NewInboundCheck {
        user_id,
        phone: phone.to_owned(),
        code_hash: code_hash(hash),
        expires_at: at(600),
        created_at: at(0),
    }
}

async fn set_email_verified_marks_only_that_user(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    assert!(!email_verified(stores, alice).await);

    assert!(
        stores
            .users
            .set_email_verified(alice, at(10))
            .await
            .unwrap()
    );
    assert!(email_verified(stores, alice).await);
    assert!(!email_verified(stores, bob).await);
    // Verifying again changes nothing and still finds the user.
    assert!(
        stores
            .users
            .set_email_verified(alice, at(20))
            .await
            .unwrap()
    );
    assert!(email_verified(stores, alice).await);

    assert!(
        !stores
            .users
            .set_email_verified(UserId::random(), at(30))
            .await
            .unwrap()
    );
    assert_eq!(stores.users.count_users().await.unwrap(), 2);
}

async fn a_phone_factor_is_set_read_and_replaced(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    assert_eq!(phone(stores, alice).await, None);
    assert_eq!(phone(stores, UserId::random()).await, None);

    stores
        .factors
        .set_phone_factor(alice, ALICE_PHONE, at(10))
        .await
        .unwrap();
    assert_eq!(
        phone(stores, alice).await,
        Some(PhoneFactor {
            phone: ALICE_PHONE.to_owned(),
            verified_at: at(10),
        })
    );
    assert_eq!(phone(stores, bob).await, None);

    stores
        .factors
        .set_phone_factor(alice, BOB_PHONE, at(20))
        .await
        .unwrap();
    assert_eq!(
        phone(stores, alice).await,
        Some(PhoneFactor {
            phone: BOB_PHONE.to_owned(),
            verified_at: at(20),
        })
    );
    // Two users may verify the same number; each keeps their own.
    stores
        .factors
        .set_phone_factor(bob, BOB_PHONE, at(30))
        .await
        .unwrap();
    assert_eq!(phone(stores, bob).await.unwrap().verified_at, at(30));
    assert_eq!(phone(stores, alice).await.unwrap().verified_at, at(20));
}

async fn a_phone_factor_needs_a_user_and_an_e164_number(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let no_user = stores
        .factors
        .set_phone_factor(UserId::random(), ALICE_PHONE, at(0))
        .await;
    assert!(no_user.is_err(), "a phone for no user must be refused");
    let no_plus = stores
        .factors
        .set_phone_factor(alice, "447700900123", at(0))
        .await;
    assert!(no_plus.is_err(), "a number not in E.164 must be refused");
    assert_eq!(phone(stores, alice).await, None);
}

async fn enabling_the_email_factor_twice_keeps_the_first_time(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    assert_eq!(stores.factors.email_factor(alice).await.unwrap(), None);

    stores
        .factors
        .enable_email_factor(alice, at(10))
        .await
        .unwrap();
    assert_eq!(
        stores.factors.email_factor(alice).await.unwrap(),
        Some(at(10))
    );
    stores
        .factors
        .enable_email_factor(alice, at(20))
        .await
        .unwrap();
    assert_eq!(
        stores.factors.email_factor(alice).await.unwrap(),
        Some(at(10))
    );
    assert_eq!(stores.factors.email_factor(bob).await.unwrap(), None);
}

async fn the_email_factor_needs_a_user(stores: &Stores) {
    let error = stores
        .factors
        .enable_email_factor(UserId::random(), at(0))
        .await;
    assert!(
        error.is_err(),
        "an email factor for no user must be refused"
    );
    assert_eq!(
        stores.factors.email_factor(UserId::random()).await.unwrap(),
        None
    );
}

/// Gives `user_id` every kind of factor, and a received inbound check from `phone`.
async fn enroll_everything(stores: &Stores, user_id: UserId, phone: &str, hash: u8) {
    let totp = new_totp(user_id, at(0));
    stores.factors.insert_pending_totp(&totp).await.unwrap();
    assert!(
        stores
            .factors
            .activate_totp(user_id, totp.id, 100, at(1))
            .await
            .unwrap()
    );
    stores
        .factors
        .insert_pending_totp(&new_totp(user_id, at(2)))
        .await
        .unwrap();
    stores
        .factors
        .replace_recovery_codes(user_id, &[code_hash(1), code_hash(2)], at(3))
        .await
        .unwrap();
    stores
        .factors
        .set_phone_factor(user_id, phone, at(4))
        .await
        .unwrap();
    stores
        .factors
        .enable_email_factor(user_id, at(5))
        .await
        .unwrap();
    stores
        .codes
        .replace_inbound_check(&inbound_check(user_id, phone, hash))
        .await
        .unwrap();
    assert_eq!(
        stores
            .codes
            .mark_inbound_received(phone, &code_hash(hash), at(6))
            .await
            .unwrap(),
        1
    );
}

async fn delete_all_factors_removes_phone_email_and_inbound_check(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    enroll_everything(stores, alice, ALICE_PHONE, 7).await;
    enroll_everything(stores, bob, BOB_PHONE, 8).await;

    stores.factors.delete_all_factors(alice).await.unwrap();
    assert_eq!(phone(stores, alice).await, None);
    assert_eq!(stores.factors.email_factor(alice).await.unwrap(), None);
    assert_eq!(
        stores
            .codes
            .take_received_inbound(alice, at(7))
            .await
            .unwrap(),
        None
    );
    assert_eq!(stores.factors.active_totp(alice).await.unwrap(), None);
    assert_eq!(stores.factors.pending_totp(alice).await.unwrap(), None);
    assert_eq!(stores.factors.recovery_codes_left(alice).await.unwrap(), 0);

    // Bob keeps all of his.
    assert_eq!(phone(stores, bob).await.unwrap().phone, BOB_PHONE);
    assert_eq!(stores.factors.email_factor(bob).await.unwrap(), Some(at(5)));
    assert!(stores.factors.active_totp(bob).await.unwrap().is_some());
    assert!(stores.factors.pending_totp(bob).await.unwrap().is_some());
    assert_eq!(stores.factors.recovery_codes_left(bob).await.unwrap(), 2);
    assert_eq!(
        stores
            .codes
            .take_received_inbound(bob, at(7))
            .await
            .unwrap(),
        Some(BOB_PHONE.to_owned())
    );
}

async fn deleting_a_user_deletes_its_phone_email_and_inbound_check(database: &TestDatabase) {
    let stores = database.open().await;
    let alice = insert_user(&stores, "alice@example.com").await;
    let bob = insert_user(&stores, "bob@example.com").await;
    for (user_id, phone) in [(alice, ALICE_PHONE), (bob, BOB_PHONE)] {
        stores
            .factors
            .set_phone_factor(user_id, phone, at(0))
            .await
            .unwrap();
        stores
            .factors
            .enable_email_factor(user_id, at(0))
            .await
            .unwrap();
        stores
            .codes
            .replace_inbound_check(&inbound_check(user_id, phone, 1))
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
    for table in ["phone_factors", "email_factors", "inbound_phone_checks"] {
        assert_eq!(left(table, alice).await, 0, "{table} of the deleted user");
        assert_eq!(left(table, bob).await, 1, "{table} of the other user");
    }
    assert_eq!(phone(&stores, alice).await, None);
    assert_eq!(
        stores
            .codes
            .mark_inbound_received(ALICE_PHONE, &code_hash(1), at(1))
            .await
            .unwrap(),
        0
    );
}
