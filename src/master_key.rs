//! The master key files: 32 random bytes that encrypt second-factor secrets at rest (and key
//! the audit chain). The current key is `master_key_file`, created with mode 0600 on first
//! start; `twofold keys rotate` keeps each replaced key beside it as
//! `<master_key_file>.retired-<key id>`, because old audit entries (and secrets not yet
//! re-sealed) need it. A key file, current or retired, that others can read is refused.
//!
//! A running server follows a rotation without a restart through [`FileKeyLoader`]: it looks at
//! the files' identity at most every [`RECHECK`] when it seals, and at once when it meets a
//! secret under a key it has not loaded.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use twofold_core::sealing::{KeyLoader, KeyRing, MasterKey};
use zeroize::Zeroizing;

const KEY_BYTES: usize = 32;

/// How often, at most, a running server looks whether the key files changed when it seals.
pub const RECHECK: Duration = Duration::from_secs(2);

const RETIRED: &str = ".retired-";
const TEMPORARY: &str = ".tmp";

/// Loads the key, creating it when the file does not exist.
pub fn load_or_create(path: &Path) -> anyhow::Result<Zeroizing<[u8; KEY_BYTES]>> {
    if !path.exists() {
        create(path)?;
    }
    read_key(path, "master key file")
}

/// Reads a key file, refusing one that other users can read.
fn read_key(path: &Path, what: &str) -> anyhow::Result<Zeroizing<[u8; KEY_BYTES]>> {
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        bail!(
            "the {what} {} can be read by other users; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read the {what} {}", path.display()))?,
    );
    let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "the {what} {} is not {KEY_BYTES} bytes long",
            path.display()
        )
    })?;
    Ok(Zeroizing::new(key))
}

fn create(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::fill(key.as_mut())
        .map_err(|error| anyhow::anyhow!("the OS random generator failed: {error}"))?;
    // Written whole under a name of its own, then linked into place: a link never
    // replaces an existing file, so when instances sharing a data directory start together
    // exactly one key wins, and nobody ever reads a half-written one.
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce)
        .map_err(|error| anyhow::anyhow!("the OS random generator failed: {error}"))?;
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".creating-{}", u64::from_le_bytes(nonce)));
    let staging = PathBuf::from(staging);
    let _ = std::fs::remove_file(&staging);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)
        .with_context(|| format!("cannot create the master key file {}", staging.display()))?;
    file.write_all(key.as_ref())?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&staging, path);
    let _ = std::fs::remove_file(&staging);
    match linked {
        Ok(()) => {
            sync_parent(path)?;
            tracing::info!(path = %path.display(), "created a new master key");
            Ok(())
        }
        // Another process sharing the data directory created it first: theirs is the key.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error)
            .with_context(|| format!("cannot create the master key file {}", path.display())),
    }
}

/// Where the key with id `key_id` is kept once retired.
pub fn retired_path(path: &Path, key_id: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!("{RETIRED}{key_id}"));
    PathBuf::from(name)
}

/// The retired key files beside `path`, in name order.
pub fn retired_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        bail!("the master key file {} has no usable name", path.display());
    };
    let prefix = format!("{name}{RETIRED}");
    let directory = directory_of(path);
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory)
        .with_context(|| format!("cannot list {}", directory.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", directory.display()))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if file_name.starts_with(&prefix) && !file_name.ends_with(TEMPORARY) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// The current key and every retired one. The current file must exist.
pub fn load_ring(path: &Path) -> anyhow::Result<KeyRing> {
    let current = MasterKey::new(&read_key(path, "master key file")?);
    let mut retired = Vec::new();
    for file in retired_files(path)? {
        let key = MasterKey::new(&read_key(&file, "retired master key file")?);
        if file != retired_path(path, key.id()) {
            bail!(
                "the retired master key file {} holds key {}, not the key its name says; rename it to {}",
                file.display(),
                key.id(),
                retired_path(path, key.id()).display()
            );
        }
        if key.id() != current.id() {
            retired.push(key);
        }
    }
    Ok(KeyRing::new(current, retired))
}

/// What changes whenever the key files would load differently: each file's name, inode, size,
/// change time and mode (a rotation renames a new file over the current one and adds a retired
/// one; a `chmod` changes the mode).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Stamp(Vec<(PathBuf, u64, u64, u64, i64, i64, u32)>);

fn stamp(path: &Path) -> anyhow::Result<Stamp> {
    let mut files = vec![path.to_owned()];
    files.extend(retired_files(path)?);
    let mut stamp = Vec::with_capacity(files.len());
    for file in files {
        let metadata =
            std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?;
        stamp.push((
            file,
            metadata.dev(),
            metadata.ino(),
            metadata.size(),
            metadata.ctime(),
            metadata.ctime_nsec(),
            metadata.mode(),
        ));
    }
    Ok(Stamp(stamp))
}

/// Re-reads the key files for a running [`twofold_core::sealing::Sealer`] when they changed.
pub struct FileKeyLoader {
    path: PathBuf,
    state: Mutex<LoaderState>,
}

struct LoaderState {
    stamp: Stamp,
    checked_at: Instant,
}

impl FileKeyLoader {
    /// Loads the keys and a loader that follows their changes. The files' identity is taken
    /// before they are read, so a rotation in between is seen at the next look.
    pub fn start(path: &Path) -> anyhow::Result<(KeyRing, FileKeyLoader)> {
        let stamp = stamp(path)?;
        let ring = load_ring(path)?;
        let loader = FileKeyLoader {
            path: path.to_owned(),
            state: Mutex::new(LoaderState {
                stamp,
                checked_at: Instant::now(),
            }),
        };
        Ok((ring, loader))
    }
}

impl KeyLoader for FileKeyLoader {
    fn reload(&self, now: bool) -> Result<Option<KeyRing>, String> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !now && state.checked_at.elapsed() < RECHECK {
            return Ok(None);
        }
        state.checked_at = Instant::now();
        let stamp = stamp(&self.path).map_err(|error| format!("{error:#}"))?;
        if stamp == state.stamp {
            return Ok(None);
        }
        let ring = load_ring(&self.path).map_err(|error| format!("{error:#}"))?;
        state.stamp = stamp;
        Ok(Some(ring))
    }
}

/// The outcome of [`rotate`]. It holds the rotation lock until dropped, so that re-sealing
/// under the new key is part of the one rotation at a time (a review ran two at once).
pub struct Rotated {
    pub old_id: String,
    pub new_id: String,
    pub retired_file: PathBuf,
    _lock: RotationLock,
}

/// Retires the current key and puts a new random one in its place: first the current key is
/// written (and synced) to its retired file, then a new key replaces `path` atomically (a
/// synced temporary file renamed over it, then the directory synced). A crash at any point
/// leaves either the old key current (with, perhaps, its retired copy already there) or the new
/// one current with the old one retired: never a key lost.
pub fn rotate(path: &Path) -> anyhow::Result<Rotated> {
    if !path.exists() {
        bail!(
            "the master key file {} is missing; there is no key to rotate (point TWOFOLD_MASTER_KEY_FILE at it)",
            path.display()
        );
    }
    let lock = RotationLock::take(path)?;
    let old = read_key(path, "master key file")?;
    let old_id = MasterKey::new(&old).id().to_owned();
    let retired_file = retired_path(path, &old_id);
    if retired_file.exists() {
        // An earlier rotation stopped after retiring this key: the copy must be the same key.
        if *read_key(&retired_file, "retired master key file")? != *old {
            bail!(
                "{} exists but does not hold key {old_id}; move it away",
                retired_file.display()
            );
        }
    } else {
        write_private(&retired_file, &old)?;
    }
    let mut new = Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::fill(new.as_mut())
        .map_err(|error| anyhow::anyhow!("the OS random generator failed: {error}"))?;
    write_private(path, &new)?;
    let new_id = MasterKey::new(&new).id().to_owned();
    tracing::info!(old = %old_id, new = %new_id, "master key rotated");
    Ok(Rotated {
        old_id,
        new_id,
        retired_file,
        _lock: lock,
    })
}

/// Writes `key` to `path` with mode 0600 through a synced temporary file renamed into place,
/// then syncs the directory, so `path` holds either its old contents or all of `key`.
fn write_private(path: &Path, key: &[u8; KEY_BYTES]) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(TEMPORARY);
    let temporary = PathBuf::from(temporary);
    // A leftover of an interrupted rotation (we hold the rotation lock).
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(key)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    drop(file);
    std::fs::rename(&temporary, path).with_context(|| {
        format!(
            "cannot rename {} to {}",
            temporary.display(),
            path.display()
        )
    })?;
    sync_parent(path)
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let directory = directory_of(path);
    std::fs::File::open(directory)
        .and_then(|directory| directory.sync_all())
        .with_context(|| format!("cannot sync {}", directory.display()))
}

/// One rotation at a time: `<master_key_file>.rotating`, created exclusively and removed when
/// the rotation ends.
struct RotationLock(PathBuf);

impl RotationLock {
    fn take(path: &Path) -> anyhow::Result<RotationLock> {
        let mut lock = path.as_os_str().to_owned();
        lock.push(".rotating");
        let lock = PathBuf::from(lock);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&lock)
            .with_context(|| {
                format!(
                    "cannot create {}: another `twofold keys rotate` is running (if none is, one was interrupted: remove the file and run it again)",
                    lock.display()
                )
            })?;
        Ok(RotationLock(lock))
    }
}

impl Drop for RotationLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_starting_together_all_get_the_one_key_created() {
        for _ in 0..20 {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("master.key");
            let keys: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|_| scope.spawn(|| load_or_create(&path)))
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().unwrap().unwrap())
                    .collect()
            });
            assert!(keys.iter().all(|key| key.as_slice() == keys[0].as_slice()));
            assert_eq!(
                read_key(&path, "key").unwrap().as_slice(),
                keys[0].as_slice()
            );
            let names: Vec<_> = std::fs::read_dir(directory.path())
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            assert_eq!(names, ["master.key"], "left behind: {names:?}");
        }
    }

    #[test]
    fn created_once_with_mode_0600_then_reused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("sub/master.key");
        let first = load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let second = load_or_create(&path).unwrap();
        assert_eq!(*first, *second);
    }

    #[test]
    fn a_readable_key_file_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("master.key");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
    }

    #[test]
    fn rotation_retires_the_old_key_and_the_loader_follows() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("master.key");
        let old = load_or_create(&path).unwrap();
        let (ring, loader) = FileKeyLoader::start(&path).unwrap();
        let old_id = ring.current_key_id().to_owned();
        assert!(loader.reload(true).unwrap().is_none(), "nothing changed");

        let rotated = rotate(&path).unwrap();
        assert_eq!(rotated.old_id, old_id);
        assert_eq!(rotated.retired_file, retired_path(&path, &old_id));
        assert_eq!(std::fs::read(&rotated.retired_file).unwrap(), old.to_vec());
        for file in [&path, &rotated.retired_file] {
            assert_eq!(
                std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // Within RECHECK only a forced look sees it.
        assert!(loader.reload(false).unwrap().is_none());
        let ring = loader.reload(true).unwrap().unwrap();
        assert_eq!(ring.current_key_id(), rotated.new_id);
        assert_eq!(
            ring.key_ids().collect::<Vec<_>>(),
            [&*rotated.new_id, &*old_id]
        );
        assert!(
            path.with_extension("key.rotating").exists(),
            "held while re-sealing"
        );
        drop(rotated);
        assert!(!path.with_extension("key.rotating").exists());
    }

    #[test]
    fn a_readable_or_misnamed_retired_key_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("master.key");
        load_or_create(&path).unwrap();
        let rotated = rotate(&path).unwrap();
        std::fs::set_permissions(
            &rotated.retired_file,
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let error = format!("{:#}", load_ring(&path).unwrap_err());
        assert!(
            error.contains("retired master key file") && error.contains("chmod 600"),
            "{error}"
        );
        std::fs::set_permissions(
            &rotated.retired_file,
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::rename(&rotated.retired_file, retired_path(&path, "0000")).unwrap();
        let error = format!("{:#}", load_ring(&path).unwrap_err());
        assert!(error.contains("not the key its name says"), "{error}");
    }

    #[test]
    fn one_rotation_at_a_time() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("master.key");
        load_or_create(&path).unwrap();
        let held = RotationLock::take(&path).unwrap();
        let error = format!("{:#}", rotate(&path).err().unwrap());
        assert!(error.contains("another `twofold keys rotate`"), "{error}");
        drop(held);
        // The lock lasts as long as the rotation's outcome (while it re-seals), not just the
        // swap of the files.
        let rotated = rotate(&path).unwrap();
        let error = format!("{:#}", rotate(&path).err().unwrap());
        assert!(error.contains("another `twofold keys rotate`"), "{error}");
        drop(rotated);
        rotate(&path).unwrap();
    }
}
