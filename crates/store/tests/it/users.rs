//! `UserStore` cases.

use twofold_core::store::{StoreError, Stores};
use twofold_core::user::UserId;

use crate::harness::{at, email, insert_user, new_user};

conformance!(stores:
    insert_then_get_by_email_and_id,
    taken_email_is_a_conflict,
    first_user_is_inserted_only_once,
    concurrent_first_users_with_one_email_have_one_winner,
    concurrent_first_users_with_different_emails_have_one_winner,
    set_password_replaces_hash_and_flag,
    set_password_needs_the_hash_it_replaces,
    replace_password_hash_only_when_unchanged,
    set_require_2fa_sets_the_flag,
    record_login_sets_last_login,
    count_users_counts,
    ping_answers,
);

async fn insert_then_get_by_email_and_id(stores: &Stores) {
    let mut user = new_user("alice@example.com");
    user.password_change_required = true;
    user.is_admin = true;
    stores.users.insert_user(&user).await.unwrap();

    let by_email = stores
        .users
        .user_by_email(&email("alice@example.com"))
        .await
        .unwrap()
        .unwrap();
    let by_id = stores.users.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(by_email, by_id);
    assert_eq!(by_id.id, user.id);
    assert_eq!(by_id.email, user.email);
    assert_eq!(by_id.password_hash, user.password_hash);
    assert!(by_id.password_change_required);
    assert!(by_id.is_admin);
    assert!(!by_id.require_2fa);
    assert!(!by_id.email_verified);
    assert!(!by_id.disabled);
    assert_eq!(by_id.created_at, at(0));
    assert_eq!(by_id.last_login_at, None);

    assert_eq!(
        stores
            .users
            .user_by_email(&email("bob@example.com"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        stores.users.user_by_id(UserId::random()).await.unwrap(),
        None
    );
}

async fn taken_email_is_a_conflict(stores: &Stores) {
    stores
        .users
        .insert_user(&new_user("alice@example.com"))
        .await
        .unwrap();
    // Email::parse normalises case, so this is the same address.
    let again = new_user("ALICE@example.com");
    let error = stores.users.insert_user(&again).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict), "{error:?}");
    assert_eq!(stores.users.user_by_id(again.id).await.unwrap(), None);
    stores
        .users
        .insert_user(&new_user("bob@example.com"))
        .await
        .unwrap();
    assert_eq!(stores.users.count_users().await.unwrap(), 2);
}

async fn first_user_is_inserted_only_once(stores: &Stores) {
    let admin = new_user("admin@localhost");
    assert!(stores.users.insert_first_user(&admin).await.unwrap());
    assert!(!stores.users.insert_first_user(&admin).await.unwrap());
    assert!(
        !stores
            .users
            .insert_first_user(&new_user("other@localhost"))
            .await
            .unwrap()
    );
    assert_eq!(stores.users.count_users().await.unwrap(), 1);
    assert!(stores.users.user_by_id(admin.id).await.unwrap().is_some());
}

/// Runs `insert_first_user` from 8 tasks at once; returns how many reported success.
async fn race_first_users(stores: &Stores, addresses: Vec<String>) -> usize {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(addresses.len()));
    let tasks: Vec<_> = addresses
        .into_iter()
        .map(|address| {
            let (stores, barrier) = (stores.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                stores
                    .users
                    .insert_first_user(&new_user(&address))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    winners
}

async fn concurrent_first_users_with_one_email_have_one_winner(stores: &Stores) {
    let addresses = vec!["admin@localhost".to_owned(); 8];
    assert_eq!(race_first_users(stores, addresses).await, 1);
    assert_eq!(stores.users.count_users().await.unwrap(), 1);
}

async fn concurrent_first_users_with_different_emails_have_one_winner(stores: &Stores) {
    let addresses = (0..8).map(|n| format!("admin{n}@localhost")).collect();
    assert_eq!(race_first_users(stores, addresses).await, 1);
    assert_eq!(stores.users.count_users().await.unwrap(), 1);
}

async fn set_password_replaces_hash_and_flag(stores: &Stores) {
    let id = insert_user(stores, "alice@example.com").await;
    let original = stores
        .users
        .user_by_id(id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(
        stores
            .users
            .set_password(id, &original, "new-hash", true, at(60))
            .await
            .unwrap()
    );
    let user = stores.users.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(user.password_hash, "new-hash");
    assert!(user.password_change_required);

    assert!(
        stores
            .users
            .set_password(id, "new-hash", "newer-hash", false, at(120))
            .await
            .unwrap()
    );
    let user = stores.users.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(user.password_hash, "newer-hash");
    assert!(!user.password_change_required);

    assert!(
        !stores
            .users
            .set_password(UserId::random(), "x", "x", false, at(0))
            .await
            .unwrap()
    );
}

/// Of two password changes that both read the same hash, only the first may land.
async fn set_password_needs_the_hash_it_replaces(stores: &Stores) {
    let id = insert_user(stores, "alice@example.com").await;
    let original = stores
        .users
        .user_by_id(id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(
        stores
            .users
            .set_password(id, &original, "first", false, at(1))
            .await
            .unwrap()
    );
    assert!(
        !stores
            .users
            .set_password(id, &original, "second", false, at(2))
            .await
            .unwrap()
    );
    assert_eq!(
        stores
            .users
            .user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "first"
    );
}

async fn replace_password_hash_only_when_unchanged(stores: &Stores) {
    let user = new_user("alice@example.com");
    stores.users.insert_user(&user).await.unwrap();
    // A password change happened meanwhile: the rehash must not undo it.
    assert!(
        stores
            .users
            .set_password(user.id, &user.password_hash, "changed", false, at(1))
            .await
            .unwrap()
    );
    assert!(
        !stores
            .users
            .replace_password_hash(user.id, &user.password_hash, "rehashed")
            .await
            .unwrap()
    );
    assert_eq!(
        stores
            .users
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "changed"
    );

    assert!(
        stores
            .users
            .replace_password_hash(user.id, "changed", "rehashed")
            .await
            .unwrap()
    );
    assert_eq!(
        stores
            .users
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "rehashed"
    );
    assert!(
        !stores
            .users
            .replace_password_hash(UserId::random(), "changed", "x")
            .await
            .unwrap()
    );
}

async fn set_require_2fa_sets_the_flag(stores: &Stores) {
    let id = insert_user(stores, "alice@example.com").await;
    assert!(stores.users.set_require_2fa(id, true, at(5)).await.unwrap());
    assert!(
        stores
            .users
            .user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .require_2fa
    );
    assert!(
        stores
            .users
            .set_require_2fa(id, false, at(6))
            .await
            .unwrap()
    );
    assert!(
        !stores
            .users
            .user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .require_2fa
    );
    assert!(
        !stores
            .users
            .set_require_2fa(UserId::random(), true, at(7))
            .await
            .unwrap()
    );
}

async fn record_login_sets_last_login(stores: &Stores) {
    let id = insert_user(stores, "alice@example.com").await;
    stores.users.record_login(id, at(300)).await.unwrap();
    assert_eq!(
        stores
            .users
            .user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .last_login_at,
        Some(at(300))
    );
    stores.users.record_login(id, at(400)).await.unwrap();
    assert_eq!(
        stores
            .users
            .user_by_id(id)
            .await
            .unwrap()
            .unwrap()
            .last_login_at,
        Some(at(400))
    );
    // Nothing to record for a user that is gone; that is not an error.
    stores
        .users
        .record_login(UserId::random(), at(500))
        .await
        .unwrap();
}

async fn count_users_counts(stores: &Stores) {
    assert_eq!(stores.users.count_users().await.unwrap(), 0);
    for n in 0..3 {
        insert_user(stores, &format!("user{n}@example.com")).await;
    }
    assert_eq!(stores.users.count_users().await.unwrap(), 3);
}

async fn ping_answers(stores: &Stores) {
    stores.health.ping().await.unwrap();
}
