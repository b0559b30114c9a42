//! Cases that only SQLite has: its durability settings, file locations, the in-memory
//! database, and what an erase leaves in the file.

use twofold_core::store::ErasedReason;
use twofold_store::sqlite::{SqliteLocation, SqliteStore};

use crate::harness::{TestDatabase, insert_user};
use crate::messages::{new_attachment, new_message, parties};

#[tokio::test]
async fn connections_are_durable_and_enforce_foreign_keys() {
    let directory = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteLocation::File(directory.path().join("twofold.db")))
        .await
        .unwrap();
    let pragmas = store.pragmas().await.unwrap();
    assert_eq!(pragmas.len(), 5, "one writer and four readers");
    for (index, connection) in pragmas.iter().enumerate() {
        assert_eq!(connection.journal_mode, "wal");
        assert_eq!(connection.synchronous, 2, "synchronous=FULL");
        assert_eq!(connection.foreign_keys, 1);
        assert_eq!(connection.secure_delete, 1, "deleted content is zeroed");
        // The writer waits through its own handler (polling every millisecond), which the
        // pragma cannot show; the readers through SQLite's timeout.
        assert_eq!(
            connection.busy_timeout_ms,
            if index == 0 { 0 } else { 5000 }
        );
        assert_eq!(
            connection.read_only,
            index > 0,
            "only the first is the writer"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_waits_for_another_process_holding_the_write_lock() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("twofold.db");
    let store = SqliteStore::open(SqliteLocation::File(path.clone()))
        .await
        .unwrap();
    // Another process's connection takes the write lock and keeps it for 300 ms.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        connection.execute_batch("COMMIT").unwrap();
    });
    is_locked.recv().unwrap();
    let started = std::time::Instant::now();
    let stores = store.stores();
    insert_user(&stores, "alice@example.com").await;
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(200),
        "the write went through while the lock was held"
    );
    other.join().unwrap();
    assert!(
        stores
            .users
            .user_by_email(&crate::harness::email("alice@example.com"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn open_creates_missing_parent_directories() {
    let database = TestDatabase::sqlite();
    assert!(database.is_sqlite());
    let stores = database.open().await;
    insert_user(&stores, "alice@example.com").await;
    let path = database.url().trim_start_matches("sqlite://");
    assert!(std::path::Path::new(path).is_file());
}

#[tokio::test]
async fn an_in_memory_database_works() {
    let stores = twofold_store::open("sqlite::memory:").await.unwrap();
    let id = insert_user(&stores, "alice@example.com").await;
    assert!(stores.users.user_by_id(id).await.unwrap().is_some());
    stores.health.ping().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_postgres_fails_to_open() {
    // Port 1 on loopback refuses at once, so this neither hangs nor needs a server.
    let result = twofold_store::open("postgres://postgres@127.0.0.1:1/twofold").await;
    assert!(result.is_err());
}

#[tokio::test]
async fn closing_the_store_checkpoints_and_removes_the_wal() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("twofold.db");
    let stores = twofold_store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    insert_user(&stores, "alice@example.com").await;
    assert!(directory.path().join("twofold.db-wal").exists());
    drop(stores);
    assert!(!directory.path().join("twofold.db-wal").exists());
}

/// Whether `needle` occurs in the file at `path`.
fn file_contains(path: &std::path::Path, needle: &[u8]) -> bool {
    let haystack = std::fs::read(path).unwrap();
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// `secure_delete`: once an erased message's pages are checkpointed into the database file,
/// the file holds none of its ciphertexts (not even in free space), only zeros where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_message_leaves_no_ciphertext_in_the_database_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("twofold.db");
    let url = format!("sqlite://{}", path.display());
    // Distinctive bytes: a body long enough for overflow pages, a short subject kept inside
    // the row's own page, a wrapped key, and an attachment chunk.
    let body: Vec<u8> = b"BODY-CANARY-7f3a9c-".repeat(600);
    let subject = b"SUBJECT-CANARY-51e2d8".to_vec();
    let key = b"WRAPPED-KEY-CANARY-c04b77".to_vec();
    let chunk: Vec<u8> = b"CHUNK-CANARY-e9d1a0-".repeat(400);
    let canaries: [&[u8]; 4] = [
        b"BODY-CANARY-7f3a9c-",
        b"SUBJECT-CANARY-51e2d8",
        b"WRAPPED-KEY-CANARY-c04b77",
        b"CHUNK-CANARY-e9d1a0-",
    ];

    let stores = twofold_store::open(&url).await.unwrap();
    let (alice, bob) = parties(&stores).await;
    let mut message = new_message(alice, bob, 0);
    message.sealed_body = body;
    message.sealed_subject = subject;
    message.wrapped_key.ciphertext = key;
    stores.messages.insert_message(&message).await.unwrap();
    // Another message stays, so the file keeps pages in use around the erased ones.
    stores
        .messages
        .insert_message(&new_message(bob, alice, 1))
        .await
        .unwrap();
    let attachment = new_attachment(message.id, 1);
    assert!(
        stores
            .messages
            .insert_attachment(&attachment)
            .await
            .unwrap()
    );
    stores
        .messages
        .insert_chunk(attachment.id, 0, &chunk)
        .await
        .unwrap();
    assert!(
        stores
            .messages
            .finish_attachment(attachment.id, 8000, 1)
            .await
            .unwrap()
    );
    // Closing checkpoints the log into the file: the ciphertexts are there now, so the check
    // below means something.
    drop(stores);
    for canary in canaries {
        assert!(
            file_contains(&path, canary),
            "{} was never written to the file",
            String::from_utf8_lossy(canary)
        );
    }

    let stores = twofold_store::open(&url).await.unwrap();
    assert!(
        stores
            .messages
            .erase_message(message.id, ErasedReason::Deleted, crate::harness::at(10))
            .await
            .unwrap()
    );
    drop(stores);
    assert!(!directory.path().join("twofold.db-wal").exists());
    for canary in canaries {
        assert!(
            !file_contains(&path, canary),
            "{} is still in the database file",
            String::from_utf8_lossy(canary)
        );
    }
}

/// `secure_delete` zeroes the database file's pages, not the log's frames: an erase also has
/// the checkpointer truncate the log, so the ciphertexts leave it while the store stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_message_leaves_the_log_while_the_store_runs() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("twofold.db");
    let wal = directory.path().join("twofold.db-wal");
    let url = format!("sqlite://{}", path.display());
    let canary: &[u8] = b"LOG-CANARY-4d92e1-";
    let stores = twofold_store::open(&url).await.unwrap();
    let (alice, bob) = parties(&stores).await;
    let mut message = new_message(alice, bob, 0);
    message.sealed_body = canary.repeat(2000);
    stores.messages.insert_message(&message).await.unwrap();
    // Writes after it, so that its frames sit in the middle of the log.
    for n in 1..20 {
        stores
            .messages
            .insert_message(&new_message(bob, alice, n))
            .await
            .unwrap();
    }
    assert!(
        file_contains(&wal, canary) || file_contains(&path, canary),
        "the body was written"
    );
    assert!(
        stores
            .messages
            .erase_message(message.id, ErasedReason::Deleted, crate::harness::at(10))
            .await
            .unwrap()
    );
    let mut gone = false;
    for _ in 0..100 {
        if !file_contains(&wal, canary) && !file_contains(&path, canary) {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the erased body is still in the log or the file");
    drop(stores);
}
