//! The master key file: 32 random bytes that encrypt second-factor secrets at rest. Created with
//! mode 0600 on first start; a key file that others can read is refused.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use zeroize::Zeroizing;

const KEY_BYTES: usize = 32;

/// Loads the key, creating it when the file does not exist.
pub fn load_or_create(path: &Path) -> anyhow::Result<Zeroizing<[u8; KEY_BYTES]>> {
    if !path.exists() {
        create(path)?;
    }
    let metadata = std::fs::metadata(path)
        .with_context(|| format!("cannot read the master key file {}", path.display()))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        bail!(
            "the master key file {} can be read by other users; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read the master key file {}", path.display()))?,
    );
    let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "the master key file {} is not {KEY_BYTES} bytes long",
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
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the master key file {}", path.display()))?;
    file.write_all(key.as_ref())?;
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    tracing::info!(path = %path.display(), "created a new master key");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
