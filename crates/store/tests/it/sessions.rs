//! `SessionStore` cases.

use std::sync::Arc;

use twofold_core::session::SessionState::{Authenticated, SecondFactor};
use twofold_core::store::{StoreError, Stores};
use twofold_core::user::UserId;

use crate::harness::{at, insert_user, new_session, session_hash};

conformance!(stores:
    insert_then_look_up_session,
    session_of_an_unknown_user_is_refused,
    rotation_succeeds_once_and_the_old_id_is_gone,
    rotation_needs_the_expected_state,
    concurrent_rotations_have_one_winner,
    touch_moves_last_seen_forward_only,
    delete_reports_whether_the_session_existed,
    delete_user_sessions_keeps_the_one_asked_for,
    delete_expired_sessions_by_idle_and_absolute_cutoffs,
);

async fn insert_then_look_up_session(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let session = new_session(user_id, session_hash(1), SecondFactor, at(10));
    stores.sessions.insert_session(&session).await.unwrap();

    let record = stores
        .sessions
        .session_by_id_hash(&session_hash(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.id_hash, session_hash(1));
    assert_eq!(record.user_id, user_id);
    assert_eq!(record.state, SecondFactor);
    assert_eq!(record.created_at, at(10));
    assert_eq!(record.last_seen_at, at(10));

    assert_eq!(
        stores
            .sessions
            .session_by_id_hash(&session_hash(2))
            .await
            .unwrap(),
        None
    );
}

async fn session_of_an_unknown_user_is_refused(stores: &Stores) {
    let session = new_session(UserId::random(), session_hash(1), Authenticated, at(0));
    let error = stores.sessions.insert_session(&session).await.unwrap_err();
    assert!(matches!(error, StoreError::Unexpected(_)), "{error:?}");
}

async fn rotation_succeeds_once_and_the_old_id_is_gone(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let (old, new) = (session_hash(1), session_hash(2));
    stores
        .sessions
        .insert_session(&new_session(user_id, old, SecondFactor, at(0)))
        .await
        .unwrap();

    assert!(
        stores
            .sessions
            .rotate_session(&old, SecondFactor, &new, Authenticated, at(30))
            .await
            .unwrap()
    );
    assert_eq!(
        stores.sessions.session_by_id_hash(&old).await.unwrap(),
        None
    );
    let record = stores
        .sessions
        .session_by_id_hash(&new)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, Authenticated);
    assert_eq!(record.user_id, user_id);
    assert_eq!(
        record.created_at,
        at(0),
        "the absolute timeout counts across rotations"
    );
    assert_eq!(record.last_seen_at, at(30));

    let third = session_hash(3);
    assert!(
        !stores
            .sessions
            .rotate_session(&old, SecondFactor, &third, Authenticated, at(31))
            .await
            .unwrap()
    );
    assert_eq!(
        stores.sessions.session_by_id_hash(&third).await.unwrap(),
        None
    );
}

async fn rotation_needs_the_expected_state(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let (old, new) = (session_hash(1), session_hash(2));
    stores
        .sessions
        .insert_session(&new_session(user_id, old, Authenticated, at(0)))
        .await
        .unwrap();
    assert!(
        !stores
            .sessions
            .rotate_session(&old, SecondFactor, &new, Authenticated, at(1))
            .await
            .unwrap()
    );
    let record = stores
        .sessions
        .session_by_id_hash(&old)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, Authenticated);
    assert_eq!(record.last_seen_at, at(0));
}

async fn concurrent_rotations_have_one_winner(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let old = session_hash(0);
    stores
        .sessions
        .insert_session(&new_session(user_id, old, SecondFactor, at(0)))
        .await
        .unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (1..=16)
        .map(|n| {
            let (stores, barrier) = (stores.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                stores
                    .sessions
                    .rotate_session(&old, SecondFactor, &session_hash(n), Authenticated, at(1))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += u32::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);

    let mut surviving = 0;
    for n in 0..=16 {
        surviving += u32::from(
            stores
                .sessions
                .session_by_id_hash(&session_hash(n))
                .await
                .unwrap()
                .is_some(),
        );
    }
    assert_eq!(surviving, 1);
}

async fn touch_moves_last_seen_forward_only(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let id = session_hash(1);
    stores
        .sessions
        .insert_session(&new_session(user_id, id, Authenticated, at(0)))
        .await
        .unwrap();

    stores.sessions.touch_session(&id, at(100)).await.unwrap();
    assert_eq!(
        stores
            .sessions
            .session_by_id_hash(&id)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        at(100)
    );
    // A slow request finishing late must not make the session look idle for longer.
    stores.sessions.touch_session(&id, at(50)).await.unwrap();
    let record = stores
        .sessions
        .session_by_id_hash(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.last_seen_at, at(100));
    assert_eq!(record.created_at, at(0));

    stores
        .sessions
        .touch_session(&session_hash(9), at(100))
        .await
        .unwrap();
}

async fn delete_reports_whether_the_session_existed(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let id = session_hash(1);
    stores
        .sessions
        .insert_session(&new_session(user_id, id, Authenticated, at(0)))
        .await
        .unwrap();
    assert!(stores.sessions.delete_session(&id).await.unwrap());
    assert_eq!(stores.sessions.session_by_id_hash(&id).await.unwrap(), None);
    assert!(!stores.sessions.delete_session(&id).await.unwrap());
}

async fn delete_user_sessions_keeps_the_one_asked_for(stores: &Stores) {
    let alice = insert_user(stores, "alice@example.com").await;
    let bob = insert_user(stores, "bob@example.com").await;
    for n in 1..=3 {
        stores
            .sessions
            .insert_session(&new_session(alice, session_hash(n), Authenticated, at(0)))
            .await
            .unwrap();
    }
    stores
        .sessions
        .insert_session(&new_session(bob, session_hash(4), Authenticated, at(0)))
        .await
        .unwrap();

    assert_eq!(
        stores
            .sessions
            .delete_user_sessions(alice, Some(&session_hash(2)))
            .await
            .unwrap(),
        2
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&session_hash(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&session_hash(2))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&session_hash(3))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&session_hash(4))
            .await
            .unwrap()
            .is_some()
    );

    assert_eq!(
        stores
            .sessions
            .delete_user_sessions(alice, None)
            .await
            .unwrap(),
        1
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&session_hash(2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&session_hash(4))
            .await
            .unwrap()
            .is_some()
    );
}

async fn delete_expired_sessions_by_idle_and_absolute_cutoffs(stores: &Stores) {
    let user_id = insert_user(stores, "alice@example.com").await;
    let (idle, old_but_active, fresh) = (session_hash(1), session_hash(2), session_hash(3));
    stores
        .sessions
        .insert_session(&new_session(user_id, idle, Authenticated, at(0)))
        .await
        .unwrap();
    stores
        .sessions
        .insert_session(&new_session(user_id, old_but_active, Authenticated, at(0)))
        .await
        .unwrap();
    stores
        .sessions
        .touch_session(&old_but_active, at(1000))
        .await
        .unwrap();
    stores
        .sessions
        .insert_session(&new_session(user_id, fresh, Authenticated, at(900)))
        .await
        .unwrap();

    // Idle cut-off only: the session last seen at 0 goes.
    assert_eq!(
        stores
            .sessions
            .delete_expired_sessions(at(500), at(-1))
            .await
            .unwrap(),
        1
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&idle)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&old_but_active)
            .await
            .unwrap()
            .is_some()
    );

    // Absolute cut-off: the session begun at 0 goes although it was active at 1000.
    assert_eq!(
        stores
            .sessions
            .delete_expired_sessions(at(500), at(100))
            .await
            .unwrap(),
        1
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&old_but_active)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        stores
            .sessions
            .session_by_id_hash(&fresh)
            .await
            .unwrap()
            .is_some()
    );

    // Both cut-offs are strict: a session exactly at them stays.
    assert_eq!(
        stores
            .sessions
            .delete_expired_sessions(at(900), at(900))
            .await
            .unwrap(),
        0
    );
}
