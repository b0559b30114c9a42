//! `MessageStore` cases: secure messages with their sealed content, the user's list, sending
//! and reading once, erasing, and their data keys under master-key rotation. Attachments and
//! invitations have modules of their own.

mod attachments;
mod invitations;

use time::{Duration, OffsetDateTime};
use twofold_core::store::{
    ErasedReason, MessageRecord, NewAttachment, NewMessage, SealedContent, SealedOwner, SealedRow,
    SealedSecret, Stores,
};
use twofold_core::user::UserId;
use uuid::Uuid;

use crate::harness::{TestDatabase, at, insert_user, race, winners};

conformance!(stores:
    a_message_reads_back_with_both_addresses,
    a_users_messages_are_sent_and_received_newest_first,
    a_draft_is_sent_once,
    a_message_is_read_once_and_its_expiry_only_moves_earlier,
    erasing_removes_the_content_and_attachments_once,
    expired_messages_are_those_due_and_not_erased,
    message_keys_are_sealed_rows_until_erased,
);

conformance!(database:
    concurrent_erases_have_one_winner,
    deleting_a_user_deletes_their_messages,
);

/// Every byte value, varied by `byte`, so a backend that mangles binary data shows it.
pub fn bytes(byte: u8) -> Vec<u8> {
    (0..=255).map(|n: u8| n ^ byte).collect()
}

pub fn wrapped(key_id: &str, byte: u8) -> SealedSecret {
    SealedSecret {
        key_id: key_id.to_owned(),
        ciphertext: bytes(byte),
    }
}

/// A message sent at `seconds`, alive for a week, with a key wrapped under `key-1`.
pub fn new_message(sender_id: UserId, recipient_id: UserId, seconds: i64) -> NewMessage {
    NewMessage {
        id: Uuid::new_v4(),
        sender_id,
        recipient_id,
        wrapped_key: wrapped("key-1", 1),
        sealed_subject: b"sealed subject".to_vec(),
        sealed_body: bytes(2),
        created_at: at(seconds),
        expires_at: at(seconds) + Duration::days(7),
        delete_after_read: false,
        sent_at: Some(at(seconds)),
    }
}

pub async fn insert(stores: &Stores, message: &NewMessage) -> Uuid {
    stores.messages.insert_message(message).await.unwrap();
    message.id
}

pub async fn read(stores: &Stores, id: Uuid) -> MessageRecord {
    stores.messages.message(id).await.unwrap().unwrap()
}

/// Alice and Bob, in that order.
pub async fn parties(stores: &Stores) -> (UserId, UserId) {
    (
        insert_user(stores, "alice@example.com").await,
        insert_user(stores, "bob@example.com").await,
    )
}

pub fn new_attachment(message_id: Uuid, seconds: i64) -> NewAttachment {
    NewAttachment {
        id: Uuid::new_v4(),
        message_id,
        sealed_name: b"sealed name".to_vec(),
        created_at: at(seconds),
    }
}

async fn ids_of(stores: &Stores, user_id: UserId, limit: u32) -> Vec<Uuid> {
    stores
        .messages
        .messages_of_user(user_id, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|message| message.id)
        .collect()
}

async fn a_message_reads_back_with_both_addresses(stores: &Stores) {
    let (alice, bob) = parties(stores).await;
    let mut message = new_message(alice, bob, 10);
    message.delete_after_read = true;
    insert(stores, &message).await;
    assert_eq!(
        read(stores, message.id).await,
        MessageRecord {
            id: message.id,
            sender_id: alice,
            sender_email: "alice@example.com".to_owned(),
            recipient_id: bob,
            recipient_email: "bob@example.com".to_owned(),
            content: Some(SealedContent {
                wrapped_key: wrapped("key-1", 1),
                sealed_subject: b"sealed subject".to_vec(),
                sealed_body: bytes(2),
            }),
            created_at: at(10),
            expires_at: at(10) + Duration::days(7),
            delete_after_read: true,
            sent_at: Some(at(10)),
            read_at: None,
            erased: None,
        }
    );
    let mut draft = new_message(bob, alice, 20);
    draft.sent_at = None;
    insert(stores, &draft).await;
    let stored = read(stores, draft.id).await;
    assert_eq!(stored.sent_at, None);
    assert_eq!(stored.sender_email, "bob@example.com");
    assert_eq!(stored.recipient_email, "alice@example.com");
    assert!(!stored.delete_after_read);
    assert_eq!(stores.messages.message(Uuid::new_v4()).await.unwrap(), None);
    // A message needs both of its parties.
    let orphan = new_message(alice, UserId::random(), 30);
    assert!(stores.messages.insert_message(&orphan).await.is_err());
}

async fn a_users_messages_are_sent_and_received_newest_first(stores: &Stores) {
    let (alice, bob) = parties(stores).await;
    let carol = insert_user(stores, "carol@example.com").await;
    let first = insert(stores, &new_message(alice, bob, 10)).await;
    let reply = insert(stores, &new_message(bob, alice, 20)).await;
    let mut draft = new_message(alice, bob, 30);
    draft.sent_at = None;
    let draft = insert(stores, &draft).await;
    let other = insert(stores, &new_message(carol, bob, 40)).await;

    assert_eq!(ids_of(stores, alice, 10).await, [draft, reply, first]);
    assert_eq!(
        ids_of(stores, bob, 10).await,
        [other, reply, first],
        "another's draft is not received"
    );
    assert_eq!(ids_of(stores, carol, 10).await, [other]);
    assert_eq!(ids_of(stores, alice, 2).await, [draft, reply]);
    assert!(ids_of(stores, UserId::random(), 10).await.is_empty());

    assert!(stores.messages.mark_sent(draft, at(50)).await.unwrap());
    assert_eq!(ids_of(stores, bob, 10).await, [other, draft, reply, first]);
    let listed = stores.messages.messages_of_user(bob, 1).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sender_email, "carol@example.com");
    assert_eq!(listed[0].recipient_email, "bob@example.com");
}

async fn a_draft_is_sent_once(stores: &Stores) {
    let (alice, bob) = parties(stores).await;
    let mut draft = new_message(alice, bob, 10);
    draft.sent_at = None;
    insert(stores, &draft).await;
    assert!(stores.messages.mark_sent(draft.id, at(20)).await.unwrap());
    assert!(!stores.messages.mark_sent(draft.id, at(30)).await.unwrap());
    assert_eq!(read(stores, draft.id).await.sent_at, Some(at(20)));
    let sent = insert(stores, &new_message(alice, bob, 10)).await;
    assert!(!stores.messages.mark_sent(sent, at(30)).await.unwrap());
    assert_eq!(read(stores, sent).await.sent_at, Some(at(10)));
    assert!(
        !stores
            .messages
            .mark_sent(Uuid::new_v4(), at(30))
            .await
            .unwrap()
    );

    // An erased draft can no longer be sent.
    let mut erased = new_message(alice, bob, 10);
    erased.sent_at = None;
    insert(stores, &erased).await;
    assert!(
        stores
            .messages
            .erase_message(erased.id, ErasedReason::Deleted, at(15))
            .await
            .unwrap()
    );
    assert!(!stores.messages.mark_sent(erased.id, at(20)).await.unwrap());
    assert_eq!(read(stores, erased.id).await.sent_at, None);
}

async fn a_message_is_read_once_and_its_expiry_only_moves_earlier(stores: &Stores) {
    let (alice, bob) = parties(stores).await;
    let mut message = new_message(alice, bob, 0);
    message.expires_at = at(1000);
    insert(stores, &message).await;
    assert!(
        stores
            .messages
            .mark_read(message.id, at(100), Some(at(500)))
            .await
            .unwrap()
    );
    let stored = read(stores, message.id).await;
    assert_eq!(
        (stored.read_at, stored.expires_at),
        (Some(at(100)), at(500))
    );
    // Read before: no change at all.
    assert!(
        !stores
            .messages
            .mark_read(message.id, at(200), Some(at(300)))
            .await
            .unwrap()
    );
    let stored = read(stores, message.id).await;
    assert_eq!(
        (stored.read_at, stored.expires_at),
        (Some(at(100)), at(500))
    );

    // A deadline later than the expiry leaves the expiry.
    let mut soon = new_message(alice, bob, 0);
    soon.expires_at = at(300);
    insert(stores, &soon).await;
    assert!(
        stores
            .messages
            .mark_read(soon.id, at(100), Some(at(500)))
            .await
            .unwrap()
    );
    assert_eq!(read(stores, soon.id).await.expires_at, at(300));

    // No deadline: only the receipt.
    let plain = insert(stores, &new_message(alice, bob, 0)).await;
    assert!(
        stores
            .messages
            .mark_read(plain, at(100), None)
            .await
            .unwrap()
    );
    let stored = read(stores, plain).await;
    assert_eq!(
        (stored.read_at, stored.expires_at),
        (Some(at(100)), at(0) + Duration::days(7))
    );
    assert!(
        !stores
            .messages
            .mark_read(Uuid::new_v4(), at(100), None)
            .await
            .unwrap()
    );
}

async fn erasing_removes_the_content_and_attachments_once(stores: &Stores) {
    let (alice, bob) = parties(stores).await;
    let message = insert(stores, &new_message(alice, bob, 0)).await;
    let kept = insert(stores, &new_message(alice, bob, 0)).await;
    let mut attachments = Vec::new();
    for target in [message, kept] {
        let attachment = new_attachment(target, 1);
        assert!(
            stores
                .messages
                .insert_attachment(&attachment)
                .await
                .unwrap()
        );
        stores
            .messages
            .insert_chunk(attachment.id, 0, &bytes(3))
            .await
            .unwrap();
        assert!(
            stores
                .messages
                .finish_attachment(attachment.id, 10, 1)
                .await
                .unwrap()
        );
        attachments.push(attachment.id);
    }
    let upload = new_attachment(message, 2);
    assert!(stores.messages.insert_attachment(&upload).await.unwrap());

    assert!(
        stores
            .messages
            .erase_message(message, ErasedReason::Expired, at(100))
            .await
            .unwrap()
    );
    let erased = read(stores, message).await;
    assert_eq!(erased.content, None);
    assert_eq!(erased.erased, Some((ErasedReason::Expired, at(100))));
    assert_eq!(erased.sender_email, "alice@example.com");
    assert!(
        stores
            .messages
            .attachments(message)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        stores
            .messages
            .attachment_chunk(attachments[0], 0)
            .await
            .unwrap(),
        None
    );
    assert!(
        !stores
            .messages
            .finish_attachment(upload.id, 0, 0)
            .await
            .unwrap()
    );
    // Still listed, so both parties learn it is gone.
    assert_eq!(ids_of(stores, bob, 10).await.len(), 2);

    // Once only: the second erase changes nothing, not even the reason.
    assert!(
        !stores
            .messages
            .erase_message(message, ErasedReason::Deleted, at(200))
            .await
            .unwrap()
    );
    assert_eq!(
        read(stores, message).await.erased,
        Some((ErasedReason::Expired, at(100)))
    );
    assert!(
        !stores
            .messages
            .erase_message(Uuid::new_v4(), ErasedReason::Deleted, at(200))
            .await
            .unwrap()
    );

    // The other message is untouched.
    assert!(read(stores, kept).await.content.is_some());
    assert_eq!(stores.messages.attachments(kept).await.unwrap().len(), 1);
    assert_eq!(
        stores
            .messages
            .attachment_chunk(attachments[1], 0)
            .await
            .unwrap(),
        Some(bytes(3))
    );
}

async fn expired_messages_are_those_due_and_not_erased(stores: &Stores) {
    let (alice, bob) = parties(stores).await;
    let mut ids = Vec::new();
    for expires in [200, 100, 300, 50] {
        let mut message = new_message(alice, bob, 0);
        message.expires_at = at(expires);
        ids.push(insert(stores, &message).await);
    }
    let [at_200, at_100, _at_300, at_50] = ids[..] else {
        unreachable!()
    };
    assert!(
        stores
            .messages
            .erase_message(at_50, ErasedReason::Expired, at(60))
            .await
            .unwrap()
    );
    let expired = |now: OffsetDateTime, limit: u32| async move {
        stores.messages.expired_messages(now, limit).await.unwrap()
    };
    assert_eq!(expired(at(200), 10).await, [at_100, at_200]);
    assert_eq!(expired(at(200), 1).await, [at_100]);
    assert_eq!(expired(at(199), 10).await, [at_100]);
    assert!(expired(at(99), 10).await.is_empty());
}

async fn message_keys_are_sealed_rows_until_erased(stores: &Stores) {
    let (alice, bob) = parties(stores).await;
    let message = insert(stores, &new_message(alice, bob, 0)).await;
    let mut current = new_message(alice, bob, 0);
    current.wrapped_key = wrapped("key-2", 4);
    insert(stores, &current).await;
    let erased = insert(stores, &new_message(alice, bob, 0)).await;
    let erased_read = SealedRow {
        id: erased,
        owner: SealedOwner::Message,
        secret: wrapped("key-1", 1),
    };
    assert!(
        stores
            .messages
            .erase_message(erased, ErasedReason::Deleted, at(1))
            .await
            .unwrap()
    );

    let rows = stores
        .factors
        .sealed_rows_not_under("key-2", 10)
        .await
        .unwrap();
    let row = SealedRow {
        id: message,
        owner: SealedOwner::Message,
        secret: wrapped("key-1", 1),
    };
    assert_eq!(
        rows,
        std::slice::from_ref(&row),
        "neither the current nor the erased"
    );
    assert_eq!(
        stores.factors.sealed_counts().await.unwrap(),
        [("key-1".to_owned(), 1), ("key-2".to_owned(), 1)]
    );
    assert_eq!(
        stores.factors.sealed_key_ids().await.unwrap(),
        ["key-1", "key-2"]
    );

    // Same key id, other bytes: no change.
    let mut other_bytes = row.clone();
    other_bytes.secret.ciphertext[0] ^= 0xff;
    assert!(
        !stores
            .factors
            .replace_sealed(&other_bytes, &wrapped("key-2", 9))
            .await
            .unwrap()
    );
    assert!(
        stores
            .factors
            .replace_sealed(&row, &wrapped("key-2", 5))
            .await
            .unwrap()
    );
    assert!(
        !stores
            .factors
            .replace_sealed(&row, &wrapped("key-2", 6))
            .await
            .unwrap(),
        "a stale read swaps nothing"
    );
    let content = read(stores, message).await.content.unwrap();
    assert_eq!(content.wrapped_key, wrapped("key-2", 5));
    assert_eq!(content.sealed_body, bytes(2), "only the key is re-sealed");
    assert!(
        stores
            .factors
            .sealed_rows_not_under("key-2", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        stores.factors.sealed_counts().await.unwrap(),
        [("key-2".to_owned(), 2)]
    );
    // An erased message's key is gone and never comes back.
    assert!(
        !stores
            .factors
            .replace_sealed(&erased_read, &wrapped("key-2", 7))
            .await
            .unwrap()
    );
    assert_eq!(read(stores, erased).await.content, None);
}

async fn concurrent_erases_have_one_winner(database: &TestDatabase) {
    let stores = database.open().await;
    let (alice, bob) = parties(&stores).await;
    let message = insert(&stores, &new_message(alice, bob, 0)).await;
    let outcomes = race(database, move |stores, n| async move {
        let reason = if n % 2 == 0 {
            ErasedReason::Deleted
        } else {
            ErasedReason::Expired
        };
        stores
            .messages
            .erase_message(message, reason, at(100 + n as i64))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(winners(&outcomes), 1, "{outcomes:?}");
    let winner = outcomes.iter().position(|won| *won).unwrap();
    let erased = read(&stores, message).await.erased.unwrap();
    assert_eq!(erased.1, at(100 + winner as i64));
}

async fn deleting_a_user_deletes_their_messages(database: &TestDatabase) {
    let stores = database.open().await;
    let (alice, bob) = parties(&stores).await;
    let carol = insert_user(&stores, "carol@example.com").await;
    let to_bob = insert(&stores, &new_message(alice, bob, 0)).await;
    let from_bob = insert(&stores, &new_message(bob, carol, 0)).await;
    let between_others = insert(&stores, &new_message(alice, carol, 0)).await;
    let attachment = new_attachment(to_bob, 1);
    assert!(
        stores
            .messages
            .insert_attachment(&attachment)
            .await
            .unwrap()
    );
    stores
        .messages
        .insert_chunk(attachment.id, 0, &bytes(3))
        .await
        .unwrap();
    database
        .execute_raw("DELETE FROM users WHERE email = 'bob@example.com'")
        .await;
    assert_eq!(stores.messages.message(to_bob).await.unwrap(), None);
    assert_eq!(stores.messages.message(from_bob).await.unwrap(), None);
    assert!(read(&stores, between_others).await.content.is_some());
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM message_chunks")
            .await,
        0
    );
}
