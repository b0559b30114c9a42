//! Group commit: writes queued together share one transaction, each keeps its own outcome.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::params;
use twofold_core::store::StoreError;

use super::{Database, open_reader, open_writer};

fn database() -> (tempfile::TempDir, Database) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("batch.db");
    let writer = open_writer(Some(&path)).unwrap();
    writer
        .execute_batch("CREATE TABLE items (name TEXT PRIMARY KEY)")
        .unwrap();
    let reader = open_reader(&path).unwrap();
    (
        directory,
        Database::new(writer, vec![reader], Some(&path)).unwrap(),
    )
}

async fn names(database: &Database) -> Vec<String> {
    database
        .read("names", |connection| {
            connection
                .prepare("SELECT name FROM items ORDER BY name")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
        .await
        .unwrap()
}

fn insert(database: &Database, name: String) -> tokio::task::JoinHandle<Result<(), StoreError>> {
    let database = database.clone();
    tokio::spawn(async move {
        database
            .write("insert", move |connection| {
                connection
                    .execute("INSERT INTO items (name) VALUES (?1)", params![name])
                    .map(drop)
            })
            .await
    })
}

/// Holds the writer thread until `release` is sent, so the writes queued meanwhile form one
/// batch.
fn hold_writer(database: &Database) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, wait) = mpsc::channel::<()>();
    let database = database.clone();
    let held = tokio::spawn(async move {
        database
            .write("hold", move |_| {
                let _ = wait.recv_timeout(Duration::from_secs(10));
                Ok(())
            })
            .await
            .unwrap();
    });
    (release, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_together_share_one_commit() {
    let (_directory, database) = database();
    let (release, held) = hold_writer(&database);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = database.commits();
    let writes: Vec<_> = (0..100)
        .map(|index| insert(&database, format!("item {index:03}")))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.send(()).unwrap();
    held.await.unwrap();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert_eq!(names(&database).await.len(), 100);
    // The held write's own commit, then one or two for the hundred (never one each).
    let commits = database.commits() - before;
    assert!(
        (1..=3).contains(&commits),
        "100 queued writes took {commits} commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_is_undone_alone_and_its_batch_commits() {
    let (_directory, database) = database();
    insert(&database, "taken".to_owned())
        .await
        .unwrap()
        .unwrap();
    let (release, held) = hold_writer(&database);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let first = insert(&database, "first".to_owned());
    // Inserts one row, then fails on the second: the first row must go too.
    let failing = {
        let database = database.clone();
        tokio::spawn(async move {
            database
                .write("half", |connection| {
                    connection.execute("INSERT INTO items (name) VALUES ('half')", [])?;
                    connection.execute("INSERT INTO items (name) VALUES ('taken')", [])?;
                    Ok(())
                })
                .await
        })
    };
    let last = insert(&database, "last".to_owned());
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.send(()).unwrap();
    held.await.unwrap();
    first.await.unwrap().unwrap();
    assert!(failing.await.unwrap().is_err());
    last.await.unwrap().unwrap();
    assert_eq!(names(&database).await, ["first", "last", "taken"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_write_fails_alone_and_the_writer_lives_on() {
    let (_directory, database) = database();
    let outcome = database
        .write("panics", |connection| -> rusqlite::Result<()> {
            connection.execute("INSERT INTO items (name) VALUES ('before the panic')", [])?;
            std::panic::panic_any("boom")
        })
        .await;
    assert!(outcome.is_err());
    insert(&database, "after".to_owned())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names(&database).await, ["after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_write_is_committed_and_seen_by_a_reader() {
    let (_directory, database) = database();
    for index in 0..20 {
        insert(&database, format!("row {index:02}"))
            .await
            .unwrap()
            .unwrap();
        // The reader sees it at once: the answer came after the commit.
        assert_eq!(names(&database).await.len(), index + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_may_nest_savepoints() {
    let (_directory, database) = database();
    database
        .write("nested", |connection| {
            let inner = connection.savepoint()?;
            inner.execute("INSERT INTO items (name) VALUES ('kept')", [])?;
            inner.commit()?;
            let mut undone = connection.savepoint()?;
            undone.execute("INSERT INTO items (name) VALUES ('undone')", [])?;
            undone.rollback()?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(names(&database).await, ["kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_into_the_database_file_off_the_writer() {
    let (directory, database) = database();
    let file = directory.path().join("batch.db");
    let before = std::fs::metadata(&file).unwrap().len();
    // About 2 MB of rows: far below the writer's own checkpoint limit (10,000 pages), so only
    // the checkpointer can move them into the database file while the store is open.
    for batch in 0..20 {
        database
            .write("fill", move |connection| {
                for row in 0..100 {
                    connection.execute(
                        "INSERT INTO items (name) VALUES (?1)",
                        params![format!("{batch:02}-{row:03}-{}", "x".repeat(1000))],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    let mut grown = std::fs::metadata(&file).unwrap().len();
    for _ in 0..50 {
        if grown > before + 1_500_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        grown = std::fs::metadata(&file).unwrap().len();
    }
    assert!(
        grown > before + 1_500_000,
        "the database file stayed at {grown} bytes (from {before})"
    );
    assert_eq!(names(&database).await.len(), 2000);
}
