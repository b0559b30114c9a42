//! `PolicyStore` cases: one saved policy, saved only over the version it was read at.

use twofold_core::store::{StoredPolicy, Stores};
use twofold_core::user::UserId;

use crate::harness::{TestDatabase, at, insert_user, race, winners};

conformance!(stores:
    nothing_is_saved_at_first,
    the_first_save_needs_version_zero,
    a_save_needs_the_version_it_read,
    the_saver_may_be_gone,
);

conformance!(database:
    concurrent_first_saves_have_one_winner,
    concurrent_saves_from_one_version_have_one_winner,
);

async fn load(stores: &Stores) -> Option<StoredPolicy> {
    stores.policy.load_policy().await.unwrap()
}

async fn nothing_is_saved_at_first(stores: &Stores) {
    assert_eq!(load(stores).await, None);
}

async fn the_first_save_needs_version_zero(stores: &Stores) {
    let admin = insert_user(stores, "admin@example.com").await;
    // A version that was never saved.
    assert_eq!(
        stores
            .policy
            .save_policy(r#"{"a":1}"#, 1, Some(admin), at(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(load(stores).await, None);

    assert_eq!(
        stores
            .policy
            .save_policy(r#"{"a":1}"#, 0, Some(admin), at(2))
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        load(stores).await,
        Some(StoredPolicy {
            document: r#"{"a":1}"#.to_owned(),
            version: 1,
            updated_at: at(2),
            updated_by: Some(admin),
        })
    );
}

async fn a_save_needs_the_version_it_read(stores: &Stores) {
    let admin = insert_user(stores, "admin@example.com").await;
    let save = |document: &'static str, expected: u64, by: Option<UserId>, seconds: i64| {
        let stores = stores.clone();
        async move {
            stores
                .policy
                .save_policy(document, expected, by, at(seconds))
                .await
                .unwrap()
        }
    };
    assert_eq!(save("first", 0, Some(admin), 1).await, Some(1));
    // A second first save lost to the one before.
    assert_eq!(save("stale", 0, None, 2).await, None);
    assert_eq!(save("second", 1, None, 3).await, Some(2));
    assert_eq!(save("stale", 1, Some(admin), 4).await, None);
    assert_eq!(save("stale", 3, Some(admin), 5).await, None);
    assert_eq!(
        load(stores).await,
        Some(StoredPolicy {
            document: "second".to_owned(),
            version: 2,
            updated_at: at(3),
            updated_by: None,
        })
    );
    assert_eq!(save("third", 2, Some(admin), 6).await, Some(3));
    let stored = load(stores).await.unwrap();
    assert_eq!(
        (stored.document.as_str(), stored.version, stored.updated_by),
        ("third", 3, Some(admin))
    );
}

/// Who saved the policy is a record, not a reference: an id of no (or no longer a) user is
/// kept.
async fn the_saver_may_be_gone(stores: &Stores) {
    let gone = UserId::random();
    assert_eq!(
        stores
            .policy
            .save_policy("{}", 0, Some(gone), at(1))
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(load(stores).await.unwrap().updated_by, Some(gone));
}

async fn concurrent_first_saves_have_one_winner(database: &TestDatabase) {
    let outcomes = race(database, |stores, n| async move {
        stores
            .policy
            .save_policy(&format!("{{\"n\":{n}}}"), 0, None, at(1))
            .await
            .unwrap()
    })
    .await;
    let won: Vec<bool> = outcomes.iter().map(Option::is_some).collect();
    assert_eq!(winners(&won), 1, "{outcomes:?}");
    assert!(outcomes.iter().flatten().all(|version| *version == 1));
    let stores = database.open().await;
    let stored = load(&stores).await.unwrap();
    assert_eq!(stored.version, 1);
    let winner = won.iter().position(|won| *won).unwrap();
    assert_eq!(stored.document, format!("{{\"n\":{winner}}}"));
}

async fn concurrent_saves_from_one_version_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    assert_eq!(
        stores
            .policy
            .save_policy("{}", 0, None, at(1))
            .await
            .unwrap(),
        Some(1)
    );
    let outcomes = race(database, |stores, n| async move {
        stores
            .policy
            .save_policy(&format!("{{\"n\":{n}}}"), 1, None, at(2))
            .await
            .unwrap()
    })
    .await;
    let won: Vec<bool> = outcomes.iter().map(Option::is_some).collect();
    assert_eq!(winners(&won), 1, "{outcomes:?}");
    assert!(outcomes.iter().flatten().all(|version| *version == 2));
    let stored = load(&stores).await.unwrap();
    assert_eq!(stored.version, 2);
    let winner = won.iter().position(|won| *won).unwrap();
    assert_eq!(stored.document, format!("{{\"n\":{winner}}}"));
}
