//! A consistent copy of a SQLite database that servers keep using, for `twofold backup`.
//!
//! Copying the file is not enough: in WAL mode recent commits live in `-wal` until a
//! checkpoint, and a copy taken during a write may be torn. `VACUUM INTO` instead writes every
//! page of one read snapshot, the WAL's committed frames included, into a new compact file, on
//! a read-only connection that waits for no writer and holds none up.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

use super::connection::open_reader;
use crate::sealed_rows::KEY_ID_SOURCES;

/// Writes a consistent snapshot of the database file `source` to `destination`, which must not
/// exist, with mode 0600 (it holds password hashes), synced to disk before this returns. The
/// copy is written beside `destination` first and renamed into place, so a failed backup never
/// leaves a file that looks whole. It is an ordinary database file (not in WAL mode): restoring
/// it means putting it where `source` was, with no `-wal` or `-shm` file beside it.
///
/// Returns the ids of the master keys the copy's sealed secrets need, read from the copy: a
/// backup is only whole with those keys beside it.
pub async fn backup(source: PathBuf, destination: PathBuf) -> anyhow::Result<Vec<String>> {
    tokio::task::spawn_blocking(move || backup_blocking(&source, &destination))
        .await
        .context("the SQLite backup task failed")?
}

fn backup_blocking(source: &Path, destination: &Path) -> anyhow::Result<Vec<String>> {
    if destination.exists() {
        bail!("{} exists already", destination.display());
    }
    // Read-only, without the create flag: a mistyped path fails instead of backing up an
    // empty new database.
    let connection = open_reader(source)?;
    let mut partial = destination.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // VACUUM INTO fills an empty file and keeps its mode; one left by a failed run is replaced.
    if partial.exists() {
        std::fs::remove_file(&partial)
            .with_context(|| format!("cannot remove {}", partial.display()))?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let Some(target) = partial.to_str() else {
        bail!("{} is not a UTF-8 path", partial.display());
    };
    connection
        .execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("cannot copy {} to {}", source.display(), partial.display()))?;
    drop(connection);
    File::open(&partial)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("cannot sync {}", partial.display()))?;
    std::fs::rename(&partial, destination)
        .with_context(|| format!("cannot rename {} into place", partial.display()))?;
    if let Some(directory) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(directory)
            .and_then(|directory| directory.sync_all())
            .with_context(|| format!("cannot sync {}", directory.display()))?;
    }
    let copy = Connection::open_with_flags(destination, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("cannot open the copy {}", destination.display()))?;
    let key_ids = sealed_key_ids(&copy)
        .with_context(|| format!("cannot read the key ids in {}", destination.display()))?;
    Ok(key_ids)
}

/// The key ids the sealed secrets in `copy` need, from the sealed tables it has: a database
/// last migrated by an older build lacks the newer ones (a backup never migrates).
fn sealed_key_ids(copy: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut selects = Vec::new();
    for (table, select) in KEY_ID_SOURCES {
        let present: bool = copy.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [table],
            |row| row.get(0),
        )?;
        if present {
            selects.push(select);
        }
    }
    if selects.is_empty() {
        return Ok(Vec::new());
    }
    copy.prepare(&format!("{} ORDER BY 1", selects.join(" UNION ")))?
        .query_map([], |row| row.get(0))?
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::sqlite::connection::open_writer;

    #[tokio::test]
    async fn the_copy_holds_commits_still_in_the_wal_and_is_private() {
        let directory = tempfile::tempdir().unwrap();
        let source = directory.path().join("live.db");
        // With automatic checkpoints off, the commits stay in the WAL while the writer is open.
        let writer = open_writer(Some(&source)).unwrap();
        writer
            .execute_batch(
                "PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('kept');
                 CREATE TABLE totp_authenticators (key_id TEXT);
                 CREATE TABLE deliveries (key_id TEXT);
                 INSERT INTO totp_authenticators VALUES ('k2'), ('k1');
                 INSERT INTO deliveries VALUES ('k1'), (NULL);",
            )
            .unwrap();
        let wal = directory.path().join("live.db-wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 0,
            "the rows are in the WAL"
        );
        let destination = directory.path().join("copy.db");
        let key_ids = backup(source.clone(), destination.clone()).await.unwrap();
        assert_eq!(key_ids, ["k1", "k2"]);

        let mode = std::fs::metadata(&destination)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let copy = rusqlite::Connection::open(&destination).unwrap();
        let value: String = copy
            .query_row("SELECT x FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(value, "kept");
        // The copy above had no `messages` table (as a database older builds left); with one,
        // its keys count too.
        writer
            .execute_batch(
                "CREATE TABLE messages (key_id TEXT); INSERT INTO messages VALUES ('k3'), (NULL);",
            )
            .unwrap();
        let with_messages = directory.path().join("copy-with-messages.db");
        let key_ids = backup(source.clone(), with_messages).await.unwrap();
        assert_eq!(key_ids, ["k1", "k2", "k3"]);
        drop(writer);

        let again = backup(source, destination.clone()).await.unwrap_err();
        assert!(format!("{again:#}").contains("exists already"), "{again:#}");
        let missing = backup(
            directory.path().join("nothing.db"),
            directory.path().join("x.db"),
        )
        .await
        .unwrap_err();
        assert!(!directory.path().join("nothing.db").exists(), "{missing:#}");
    }
}
