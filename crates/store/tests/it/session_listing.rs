//! `SessionStore::sessions_of_user` cases: what a user's session list is built from.

use twofold_core::session::SessionState::{Authenticated, SecondFactor};
use twofold_core::store::Stores;

use crate::harness::{at, insert_user, new_session, session_hash};

conformance!(stores:
    sessions_of_user_lists_only_that_users_sessions_most_recent_first,
    sessions_of_user_follow_rotation_and_deletion,
);

async fn sessions_of_user_lists_only_that_users_sessions_most_recent_first(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    assert!(
        stores
            .sessions
            .sessions_of_user(alice)
            .await
            .unwrap()
            .is_empty()
    );
    for (n, created) in [(1, 10), (2, 20), (3, 30)] {
        stores
            .sessions
            .insert_session(&new_session(
                alice,
                session_hash(n),
                Authenticated,
                at(created),
            ))
            .await
            .unwrap();
    }
    stores
        .sessions
        .insert_session(&new_session(bob, session_hash(4), SecondFactor, at(40)))
        .await
        .unwrap();
    // The oldest session was used last.
    stores
        .sessions
        .touch_session(&session_hash(1), at(50))
        .await
        .unwrap();

    let listed = stores.sessions.sessions_of_user(alice).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|record| record.id_hash).collect();
    assert_eq!(ids, [session_hash(1), session_hash(3), session_hash(2)]);
    assert!(listed.iter().all(|record| record.user_id == alice));
    assert_eq!(listed[0].created_at, at(10));
    assert_eq!(listed[0].last_seen_at, at(50));
    assert_eq!(listed[0].state, Authenticated);

    let bobs = stores.sessions.sessions_of_user(bob).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].state, SecondFactor);
}

async fn sessions_of_user_follow_rotation_and_deletion(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    for n in 1..=2 {
        stores
            .sessions
            .insert_session(&new_session(alice, session_hash(n), SecondFactor, at(0)))
            .await
            .unwrap();
    }
    assert!(
        stores
            .sessions
            .rotate_session(
                &session_hash(1),
                SecondFactor,
                &session_hash(9),
                Authenticated,
                at(5)
            )
            .await
            .unwrap()
    );
    assert!(
        stores
            .sessions
            .delete_session(&session_hash(2))
            .await
            .unwrap()
    );

    let listed = stores.sessions.sessions_of_user(alice).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id_hash, session_hash(9));
    assert_eq!(listed[0].state, Authenticated);
}
