//! Backup and restore exactly as docs/operations.md tells operators to do them, on both
//! stores: a user enrolls an authenticator and the master key is rotated (so a retired key
//! exists), the installation is backed up while the server runs (SQLite: `twofold backup`;
//! PostgreSQL: `pg_dump` and a copy of the key files), stopped, wiped (database and key files)
//! and restored. Until the key files are back the server refuses to start; then the user signs
//! in with the password and a fresh TOTP code, and the audit chain, whose older entries need
//! the retired key, verifies.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::factors::{enroll, serve_to_completion};
use crate::keys::{mode, rotate, signs_in_with_totp};
use crate::on_both_backends;
use crate::process::{Installation, PASSWORD, installation, stderr, stdout};

on_both_backends!(a_wiped_installation_restored_from_its_backup_signs_in_with_totp);

const EMAIL: &str = "restore@example.com";
/// A user added after the backup: the restored installation must not know them.
const LATE_EMAIL: &str = "late@example.com";

async fn a_wiped_installation_restored_from_its_backup_signs_in_with_totp(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let server = install.serve().await;
    let enrolled = enroll(&install, &server, EMAIL).await;
    let rotated = rotate(&install).await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));

    // Back up while the server runs, the keys apart from the database.
    let backup = tempfile::tempdir().unwrap();
    let keys = backup.path().join("keys");
    let database_backup = if postgres {
        back_up_postgres(&install, backup.path(), &keys)
    } else {
        back_up_sqlite(&install, backup.path(), &keys)
    };
    let backed_up_keys = key_files(&keys);
    assert_eq!(backed_up_keys.len(), 2, "the current and the retired key");
    for file in &backed_up_keys {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    let added = install.run(
        &["user", "add", LATE_EMAIL, "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(added.status.success(), "{}", stderr(&added));

    // Stop, and lose everything: the database and the key files.
    server.kill();
    if postgres {
        recreate_postgres_database(&install);
    } else {
        for file in sqlite_files(&install) {
            if file.exists() {
                std::fs::remove_file(&file).unwrap();
            }
        }
    }
    for file in key_files(install.data_path()) {
        std::fs::remove_file(file).unwrap();
    }

    // Restore the database alone: the server refuses to start, and makes no key of its own.
    if postgres {
        run_tool(
            "pg_restore",
            &[
                "--exit-on-error",
                "--no-owner",
                &format!("--dbname={}", install.database.url()),
                path_text(&database_backup),
            ],
        );
    } else {
        std::fs::copy(&database_backup, &sqlite_files(&install)[0]).unwrap();
    }
    let refused = serve_to_completion(&install).await;
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("is missing") && message.contains("restore the file"),
        "{message}"
    );
    assert!(key_files(install.data_path()).is_empty());

    // Restore the key files: the authenticator signs in again.
    for file in &backed_up_keys {
        let copy = install.data_path().join(file.file_name().unwrap());
        std::fs::copy(file, &copy).unwrap();
        assert_eq!(mode(&copy), 0o600);
    }
    let server = install.serve().await;
    signs_in_with_totp(&server, EMAIL, &enrolled.secret).await;
    let verified = install.run(&["audit", "verify"], None);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let late = install.run(&["user", "show", LATE_EMAIL], None);
    assert!(
        !late.status.success(),
        "the database is the backup's: {}",
        stdout(&late)
    );
}

/// `twofold backup DIR --keys-to KEYS`; returns the database copy.
fn back_up_sqlite(install: &Installation, directory: &Path, keys: &Path) -> PathBuf {
    let target = directory.join("database");
    let output = install.run(
        &["backup", path_text(&target), "--keys-to", path_text(keys)],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().count(), 3, "{}", stdout(&output));
    assert_eq!(mode(&target), 0o700);
    let copy = target.join("twofold.db");
    assert_eq!(mode(&copy), 0o600);
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1, "one file");
    // A second backup into the same place is refused rather than mixing two backups.
    let again = install.run(&["backup", path_text(&target)], None);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    copy
}

/// `twofold backup` points at pg_dump; `pg_dump --format=custom`, and the key files copied
/// with their mode; returns the dump.
fn back_up_postgres(install: &Installation, directory: &Path, keys: &Path) -> PathBuf {
    let refused = install.run(&["backup", path_text(directory)], None);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("pg_dump"), "{}", stderr(&refused));
    let dump = directory.join("twofold.dump");
    run_tool(
        "pg_dump",
        &[
            "--format=custom",
            &format!("--file={}", dump.display()),
            &format!("--dbname={}", install.database.url()),
        ],
    );
    std::fs::create_dir(keys).unwrap();
    for file in key_files(install.data_path()) {
        std::fs::copy(&file, keys.join(file.file_name().unwrap())).unwrap();
    }
    dump
}

/// `dropdb --force` and `createdb`: the database is gone and comes back empty.
fn recreate_postgres_database(install: &Installation) {
    let mut maintenance = url::Url::parse(install.database.url()).unwrap();
    let name = maintenance.path().trim_start_matches('/').to_owned();
    maintenance.set_path("/postgres");
    let maintenance = format!("--maintenance-db={maintenance}");
    run_tool("dropdb", &["--force", &maintenance, &name]);
    run_tool("createdb", &[&maintenance, &name]);
}

fn run_tool(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The SQLite database file, then its WAL and shared-memory files.
fn sqlite_files(install: &Installation) -> [PathBuf; 3] {
    let path = install.database.url().strip_prefix("sqlite://").unwrap();
    [
        PathBuf::from(path),
        PathBuf::from(format!("{path}-wal")),
        PathBuf::from(format!("{path}-shm")),
    ]
}

/// `master.key` and `master.key.retired-*` in `directory`.
fn key_files(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name == "master.key" || name.starts_with("master.key.retired-")
        })
        .collect();
    files.sort();
    files
}

fn path_text(path: &Path) -> &str {
    path.to_str().unwrap()
}
