//! `twofold backup DIR`: a backup of a SQLite installation, taken while servers run — a
//! consistent copy of the database (`twofold_store::sqlite::backup`) and copies of the master
//! key files, without which the sealed secrets in it cannot be opened. PostgreSQL is backed up
//! with `pg_dump` instead (docs/operations.md).
//!
//! The backup checks itself: the key files it wrote must hold every key the copied database's
//! sealed secrets need, or the command fails. It never opens the live database through the
//! store (which would run migrations: a new binary must not upgrade the database it is asked
//! to back up before an upgrade).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use twofold_store::DatabaseUrl;
use twofold_store::sqlite::SqliteLocation;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::master_key;

#[derive(Debug, Args)]
pub struct BackupArguments {
    /// Where the copy of the database goes (created with mode 0700 if missing; the files the
    /// backup writes must not exist in it yet).
    #[arg(value_name = "DIR")]
    directory: PathBuf,
    /// Where the copies of the master key files go instead of DIR, to store them apart from
    /// the database copy.
    #[arg(long, value_name = "KEYDIR")]
    keys_to: Option<PathBuf>,
}

pub async fn run(config: Config, arguments: BackupArguments) -> anyhow::Result<()> {
    let source = match DatabaseUrl::parse(&config.database_url)? {
        DatabaseUrl::Sqlite(SqliteLocation::File(path)) => path,
        DatabaseUrl::Sqlite(SqliteLocation::Memory) => {
            bail!("an in-memory database cannot be backed up")
        }
        DatabaseUrl::Postgres(_) => bail!(
            "twofold backup copies SQLite databases; back up PostgreSQL with `pg_dump --format=custom` and copy the master key files beside it (see docs/operations.md)"
        ),
    };
    let key_file = &config.master_key_file;
    if !key_file.exists() {
        bail!(
            "the master key file {} is missing; without it a backup cannot be restored (point TWOFOLD_MASTER_KEY_FILE at it)",
            key_file.display()
        );
    }
    let Some(database_name) = source.file_name() else {
        bail!("the database path {} names no file", source.display());
    };
    let keys_directory = arguments
        .keys_to
        .clone()
        .unwrap_or_else(|| arguments.directory.clone());
    create_private_directory(&arguments.directory)?;
    create_private_directory(&keys_directory)?;

    let database_copy = arguments.directory.join(database_name);
    let needed = twofold_store::sqlite::backup(source.clone(), database_copy.clone())
        .await
        .with_context(|| format!("cannot back up {}", source.display()))?;
    out!("{} -> {}", source.display(), database_copy.display());

    // The current key first, then the retired ones: a rotation in between retires the copied
    // key before it replaces it, so the listing that follows still finds it.
    let key_copy = copy_key(key_file, &keys_directory)?;
    for retired in master_key::retired_files(key_file)? {
        copy_key(&retired, &keys_directory)?;
    }
    let copied = master_key::load_ring(&key_copy).with_context(|| {
        format!(
            "cannot read the copied keys in {}",
            keys_directory.display()
        )
    })?;
    if let Some(missing) = needed
        .iter()
        .find(|id| !copied.key_ids().any(|held| held == id.as_str()))
    {
        bail!(
            "the database copy holds secrets sealed with key {missing}, which no key file beside {} holds; the backup is incomplete",
            key_file.display()
        );
    }
    Ok(())
}

/// Copies a key file into `directory` under its own name, mode 0600, synced; returns the copy.
fn copy_key(file: &Path, directory: &Path) -> anyhow::Result<PathBuf> {
    let Some(name) = file.file_name() else {
        bail!("the key file {} names no file", file.display());
    };
    let copy = directory.join(name);
    let bytes = Zeroizing::new(
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&copy)
        .with_context(|| format!("cannot create {}", copy.display()))?;
    output
        .write_all(&bytes)
        .and_then(|()| output.sync_all())
        .with_context(|| format!("cannot write {}", copy.display()))?;
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .with_context(|| format!("cannot sync {}", directory.display()))?;
    out!("{} -> {}", file.display(), copy.display());
    Ok(copy)
}

/// Creates `directory` (and its missing parents) with mode 0700; an existing one is used as it
/// is.
fn create_private_directory(directory: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .with_context(|| format!("cannot create {}", directory.display()))
}
