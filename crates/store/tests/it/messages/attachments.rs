//! `MessageStore` cases about attachments: an upload in sealed chunks, listed once complete,
//! deleted when it fails or goes stale, and refused once its message is erased.

use twofold_core::store::{AttachmentRecord, ErasedReason, Stores};
use uuid::Uuid;

use super::{bytes, insert, new_attachment, new_message, parties};
use crate::harness::{TestDatabase, at};

conformance!(stores:
    an_attachment_is_listed_and_read_once_complete,
    complete_attachments_are_listed_oldest_first,
    stale_uploads_are_deleted,
    attachments_are_refused_once_the_message_is_erased,
);

conformance!(database:
    a_deleted_attachment_takes_its_chunks,
    erasing_deletes_every_chunk,
    an_upload_racing_an_erase_never_outlives_it,
);

/// Inserts a message from Alice to Bob; returns its id.
async fn message(stores: &Stores) -> Uuid {
    let (alice, bob) = parties(stores).await;
    insert(stores, &new_message(alice, bob, 0)).await
}

/// Starts an upload at `seconds` and stores `chunks` chunks; returns the attachment's id.
async fn upload(stores: &Stores, message_id: Uuid, seconds: i64, chunks: u32) -> Uuid {
    let attachment = new_attachment(message_id, seconds);
    assert!(
        stores
            .messages
            .insert_attachment(&attachment)
            .await
            .unwrap()
    );
    for seq in 0..chunks {
        stores
            .messages
            .insert_chunk(attachment.id, seq, &bytes(seq as u8))
            .await
            .unwrap();
    }
    attachment.id
}

async fn chunk(stores: &Stores, attachment_id: Uuid, seq: u32) -> Option<Vec<u8>> {
    stores
        .messages
        .attachment_chunk(attachment_id, seq)
        .await
        .unwrap()
}

async fn an_attachment_is_listed_and_read_once_complete(stores: &Stores) {
    let message_id = message(stores).await;
    let id = upload(stores, message_id, 5, 2).await;
    assert!(
        stores
            .messages
            .attachments(message_id)
            .await
            .unwrap()
            .is_empty(),
        "an upload in progress is not listed"
    );
    assert_eq!(chunk(stores, id, 0).await, None);

    assert!(
        stores
            .messages
            .finish_attachment(id, 300_000, 2)
            .await
            .unwrap()
    );
    assert!(
        !stores.messages.finish_attachment(id, 1, 1).await.unwrap(),
        "finished once"
    );
    assert_eq!(
        stores.messages.attachments(message_id).await.unwrap(),
        [AttachmentRecord {
            id,
            message_id,
            sealed_name: b"sealed name".to_vec(),
            size: 300_000,
            chunks: 2,
            created_at: at(5),
        }]
    );
    assert_eq!(chunk(stores, id, 0).await, Some(bytes(0)));
    assert_eq!(chunk(stores, id, 1).await, Some(bytes(1)));
    assert_eq!(chunk(stores, id, 2).await, None);
    assert_eq!(chunk(stores, Uuid::new_v4(), 0).await, None);
    // A complete attachment takes no more chunks, and a chunk is stored once.
    assert!(
        stores
            .messages
            .insert_chunk(id, 2, &bytes(9))
            .await
            .is_err()
    );
    let other = upload(stores, message_id, 6, 1).await;
    assert!(
        stores
            .messages
            .insert_chunk(other, 0, &bytes(9))
            .await
            .is_err()
    );
    assert!(
        !stores
            .messages
            .finish_attachment(Uuid::new_v4(), 1, 1)
            .await
            .unwrap()
    );

    stores.messages.delete_attachment(id).await.unwrap();
    assert!(
        stores
            .messages
            .attachments(message_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(chunk(stores, id, 0).await, None);
    // Deleting what is gone is no error.
    stores.messages.delete_attachment(id).await.unwrap();
}

async fn complete_attachments_are_listed_oldest_first(stores: &Stores) {
    let message_id = message(stores).await;
    let later = upload(stores, message_id, 20, 1).await;
    let earlier = upload(stores, message_id, 10, 1).await;
    let unfinished = upload(stores, message_id, 5, 1).await;
    for id in [later, earlier] {
        assert!(stores.messages.finish_attachment(id, 10, 1).await.unwrap());
    }
    let listed: Vec<Uuid> = stores
        .messages
        .attachments(message_id)
        .await
        .unwrap()
        .into_iter()
        .map(|attachment| attachment.id)
        .collect();
    assert_eq!(listed, [earlier, later]);
    assert!(!listed.contains(&unfinished));
    assert!(
        stores
            .messages
            .attachments(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn stale_uploads_are_deleted(stores: &Stores) {
    let message_id = message(stores).await;
    let stale = upload(stores, message_id, 0, 2).await;
    let fresh = upload(stores, message_id, 100, 1).await;
    let complete = upload(stores, message_id, 0, 1).await;
    assert!(
        stores
            .messages
            .finish_attachment(complete, 10, 1)
            .await
            .unwrap()
    );
    assert_eq!(
        stores.messages.delete_stale_uploads(at(50)).await.unwrap(),
        1
    );
    assert!(
        !stores
            .messages
            .finish_attachment(stale, 10, 2)
            .await
            .unwrap()
    );
    assert!(
        stores
            .messages
            .finish_attachment(fresh, 10, 1)
            .await
            .unwrap()
    );
    assert_eq!(
        stores.messages.attachments(message_id).await.unwrap().len(),
        2
    );
    assert_eq!(
        stores
            .messages
            .delete_stale_uploads(at(1000))
            .await
            .unwrap(),
        0,
        "complete attachments are never stale"
    );
}

async fn attachments_are_refused_once_the_message_is_erased(stores: &Stores) {
    let message_id = message(stores).await;
    let started = upload(stores, message_id, 1, 1).await;
    assert!(
        stores
            .messages
            .erase_message(message_id, ErasedReason::Deleted, at(2))
            .await
            .unwrap()
    );
    assert!(
        !stores
            .messages
            .insert_attachment(&new_attachment(message_id, 3))
            .await
            .unwrap()
    );
    assert!(
        !stores
            .messages
            .finish_attachment(started, 10, 1)
            .await
            .unwrap()
    );
    assert!(
        stores
            .messages
            .insert_chunk(started, 1, &bytes(1))
            .await
            .is_err(),
        "the upload went with the message's content"
    );
    assert!(
        stores
            .messages
            .attachments(message_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !stores
            .messages
            .insert_attachment(&new_attachment(Uuid::new_v4(), 3))
            .await
            .unwrap(),
        "no message, no attachment"
    );
}

async fn a_deleted_attachment_takes_its_chunks(database: &TestDatabase) {
    let stores = database.open().await;
    let message_id = message(&stores).await;
    let deleted = upload(&stores, message_id, 0, 3).await;
    let kept = upload(&stores, message_id, 0, 2).await;
    stores.messages.delete_attachment(deleted).await.unwrap();
    let count =
        |id: Uuid| format!("SELECT COUNT(*) FROM message_chunks WHERE attachment_id = '{id}'");
    assert_eq!(database.query_i64(&count(deleted)).await, 0);
    assert_eq!(database.query_i64(&count(kept)).await, 2);
    stores.messages.delete_stale_uploads(at(10)).await.unwrap();
    assert_eq!(database.query_i64(&count(kept)).await, 0);
}

async fn erasing_deletes_every_chunk(database: &TestDatabase) {
    let stores = database.open().await;
    let message_id = message(&stores).await;
    let complete = upload(&stores, message_id, 0, 3).await;
    assert!(
        stores
            .messages
            .finish_attachment(complete, 10, 3)
            .await
            .unwrap()
    );
    upload(&stores, message_id, 0, 2).await;
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM message_chunks")
            .await,
        5
    );
    assert!(
        stores
            .messages
            .erase_message(message_id, ErasedReason::Expired, at(10))
            .await
            .unwrap()
    );
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM message_chunks")
            .await,
        0
    );
    assert_eq!(
        database
            .query_i64("SELECT COUNT(*) FROM message_attachments")
            .await,
        0
    );
    assert_eq!(
        database
            .query_i64(
                "SELECT COUNT(*) FROM messages WHERE wrapped_key IS NULL \
                 AND sealed_subject IS NULL AND sealed_body IS NULL AND key_id IS NULL"
            )
            .await,
        1
    );
}

/// An erase on one instance and an upload on another at the same moment: whichever comes
/// first, nothing of the upload is left once the erase has returned.
async fn an_upload_racing_an_erase_never_outlives_it(database: &TestDatabase) {
    let (first, second) = (database.open().await, database.open().await);
    let (alice, bob) = parties(&first).await;
    for round in 0..20 {
        let message_id = insert(&first, &new_message(alice, bob, round)).await;
        let started = upload(&first, message_id, round, 1).await;
        let attachment = new_attachment(message_id, round);
        let sealed = bytes(1);
        let (erased, inserted, chunk) = tokio::join!(
            first
                .messages
                .erase_message(message_id, ErasedReason::Deleted, at(round)),
            second.messages.insert_attachment(&attachment),
            second.messages.insert_chunk(started, 1, &sealed),
        );
        assert!(erased.unwrap());
        // Either outcome may win the race; neither may leave anything behind.
        let (_, _) = (inserted.unwrap(), chunk.is_ok());
        let left =
            format!("SELECT COUNT(*) FROM message_attachments WHERE message_id = '{message_id}'");
        assert_eq!(database.query_i64(&left).await, 0, "round {round}");
        let chunks =
            format!("SELECT COUNT(*) FROM message_chunks WHERE attachment_id = '{started}'");
        assert_eq!(database.query_i64(&chunks).await, 0, "round {round}");
    }
}
