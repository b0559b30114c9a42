//! `MessageStore` cases about invitations: links that let a recipient who cannot sign in yet
//! take a first session, looked up freely, used once, and gone with every other of the user's.

use twofold_core::store::{InvitationRecord, NewInvitation, Stores};
use twofold_core::user::UserId;
use uuid::Uuid;

use super::{insert, new_message, parties};
use crate::harness::{TestDatabase, at, code_hash, insert_user, race};

conformance!(stores:
    an_invitation_is_looked_up_without_being_used,
    taking_an_invitation_deletes_the_users_others,
    an_expired_invitation_is_neither_found_nor_taken,
    expired_invitations_are_deleted,
);

conformance!(database:
    two_takes_of_one_link_have_one_winner,
    concurrent_takes_across_instances_have_one_winner,
);

fn new_invitation(user_id: UserId, message_id: Uuid, token: u8, expires: i64) -> NewInvitation {
    NewInvitation {
        token_hash: code_hash(token),
        user_id,
        message_id,
        choose_password: token.is_multiple_of(2),
        expires_at: at(expires),
    }
}

fn record(invitation: &NewInvitation) -> InvitationRecord {
    InvitationRecord {
        user_id: invitation.user_id,
        message_id: invitation.message_id,
        choose_password: invitation.choose_password,
        expires_at: invitation.expires_at,
    }
}

/// Inserts a message from Alice to Bob and an invitation of Bob's to it, expiring at
/// `expires`, with token `token`.
async fn invite(stores: &Stores, token: u8, expires: i64) -> NewInvitation {
    let (alice, bob) = parties(stores).await;
    let message = insert(stores, &new_message(alice, bob, 0)).await;
    let invitation = new_invitation(bob, message, token, expires);
    stores
        .messages
        .insert_invitation(&invitation)
        .await
        .unwrap();
    invitation
}

async fn find(stores: &Stores, token: u8, seconds: i64) -> Option<InvitationRecord> {
    stores
        .messages
        .invitation(&code_hash(token), at(seconds))
        .await
        .unwrap()
}

async fn take(stores: &Stores, token: u8, seconds: i64) -> Option<InvitationRecord> {
    stores
        .messages
        .take_invitation(&code_hash(token), at(seconds))
        .await
        .unwrap()
}

async fn an_invitation_is_looked_up_without_being_used(stores: &Stores) {
    let invitation = invite(stores, 2, 600).await;
    for _ in 0..2 {
        assert_eq!(find(stores, 2, 10).await, Some(record(&invitation)));
    }
    assert_eq!(find(stores, 3, 10).await, None, "another token");
    assert_eq!(take(stores, 2, 20).await, Some(record(&invitation)));
    assert_eq!(find(stores, 2, 30).await, None);
    assert_eq!(take(stores, 2, 30).await, None, "used once");
}

async fn taking_an_invitation_deletes_the_users_others(stores: &Stores) {
    let first = invite(stores, 1, 600).await;
    let bob = first.user_id;
    let alice = stores
        .messages
        .message(first.message_id)
        .await
        .unwrap()
        .unwrap()
        .sender_id;
    let carol = insert_user(stores, "carol@example.com").await;
    let second_message = insert(stores, &new_message(alice, bob, 5)).await;
    let second = new_invitation(bob, second_message, 2, 900);
    let expired = new_invitation(bob, second_message, 4, 5);
    let carols_message = insert(stores, &new_message(alice, carol, 5)).await;
    let carols = new_invitation(carol, carols_message, 3, 600);
    for invitation in [&second, &expired, &carols] {
        stores.messages.insert_invitation(invitation).await.unwrap();
    }

    assert_eq!(take(stores, 2, 10).await, Some(record(&second)));
    assert_eq!(
        find(stores, 1, 10).await,
        None,
        "the user's others went too"
    );
    assert_eq!(take(stores, 1, 10).await, None);
    assert_eq!(
        stores
            .messages
            .delete_expired_invitations(at(1000))
            .await
            .unwrap(),
        1,
        "even the expired one went: only Carol's is left"
    );
    assert_eq!(find(stores, 3, 10).await, None, "purged");
    let live = new_invitation(carol, carols_message, 5, 2000);
    stores.messages.insert_invitation(&live).await.unwrap();
    assert_eq!(take(stores, 5, 1500).await, Some(record(&live)));
}

async fn an_expired_invitation_is_neither_found_nor_taken(stores: &Stores) {
    let invitation = invite(stores, 1, 100).await;
    assert_eq!(find(stores, 1, 99).await, Some(record(&invitation)));
    assert_eq!(find(stores, 1, 100).await, None);
    assert_eq!(take(stores, 1, 100).await, None);
    assert_eq!(take(stores, 1, 500).await, None);
    // Not taken: the row is still there for the purge.
    assert_eq!(
        stores
            .messages
            .delete_expired_invitations(at(500))
            .await
            .unwrap(),
        1
    );
}

async fn expired_invitations_are_deleted(stores: &Stores) {
    let (alice, bob) = parties(stores).await;
    let message = insert(stores, &new_message(alice, bob, 0)).await;
    for (token, expires) in [(1, 100), (2, 200), (3, 300)] {
        stores
            .messages
            .insert_invitation(&new_invitation(bob, message, token, expires))
            .await
            .unwrap();
    }
    assert_eq!(
        stores
            .messages
            .delete_expired_invitations(at(99))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        stores
            .messages
            .delete_expired_invitations(at(200))
            .await
            .unwrap(),
        2
    );
    assert!(find(stores, 3, 250).await.is_some());
    assert_eq!(
        stores
            .messages
            .delete_expired_invitations(at(200))
            .await
            .unwrap(),
        0
    );
}

/// One link opened twice at the same moment, on two instances: one session, never two.
async fn two_takes_of_one_link_have_one_winner(database: &TestDatabase) {
    let (first, second) = (database.open().await, database.open().await);
    let (alice, bob) = parties(&first).await;
    let message = insert(&first, &new_message(alice, bob, 0)).await;
    for token in 0..10u8 {
        first
            .messages
            .insert_invitation(&new_invitation(bob, message, token, 600))
            .await
            .unwrap();
        let (a, b) = tokio::join!(take(&first, token, 10), take(&second, token, 10));
        assert_eq!(
            usize::from(a.is_some()) + usize::from(b.is_some()),
            1,
            "token {token}: {a:?} {b:?}"
        );
    }
}

async fn concurrent_takes_across_instances_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let invitation = invite(&stores, 7, 600).await;
    let outcomes = race(
        database,
        |stores, _| async move { take(&stores, 7, 10).await },
    )
    .await;
    let taken: Vec<_> = outcomes.iter().flatten().collect();
    assert_eq!(taken, [&record(&invitation)], "{outcomes:?}");
}
