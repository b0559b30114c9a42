//! Secrets at rest: second-factor secrets are sealed with XChaCha20-Poly1305 under the master
//! key before they reach the database. The key's id is stored beside each ciphertext so that the
//! key can rotate (old keys stay able to open what they sealed), and the ciphertext is bound to
//! its owner and row through the associated data, so it cannot be moved to another account.

use std::sync::{Arc, PoisonError, RwLock};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::store::SealedSecret;

const NONCE_BYTES: usize = 24;

/// A 256-bit master key and its id (derived from the key, so it needs no storage of its own).
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
    /// The key of the audit log's chain hashes, derived from the master key.
    audit_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn new(key: &Zeroizing<[u8; 32]>) -> Self {
        // The id is a hash of the key, never the key: it names the key without revealing it.
        let digest = Sha256::new_with_prefix(b"twofold master key id\0")
            .chain_update(key.as_ref())
            .finalize();
        let id = digest[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let mut mac = crate::audit::hmac_sha256(key);
        hmac::Mac::update(&mut mac, b"twofold audit chain key v1");
        let audit_key = Zeroizing::new(hmac::Mac::finalize(mac).into_bytes().into());
        Self {
            id,
            cipher: XChaCha20Poly1305::new(key.as_ref().into()),
            audit_key,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no master key with id {0} is loaded")]
    UnknownKey(String),
    #[error("the sealed secret does not open (wrong key, wrong owner or tampered)")]
    Corrupt,
    #[error("the OS random generator failed")]
    Random,
}

/// The master keys a [`Sealer`] holds at one moment: the current one seals, every one opens.
#[derive(Debug)]
pub struct KeyRing {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl KeyRing {
    /// `previous` are retired keys: they only open (and check old audit entries).
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// The ids of every loaded key, the current one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys().map(MasterKey::id)
    }

    /// The id and chain key of the current master key, for appending to the audit log.
    pub fn current_audit_key(&self) -> (&str, &[u8; 32]) {
        (&self.current.id, &self.current.audit_key)
    }

    /// The chain key of a loaded master key, for checking the audit log.
    pub fn audit_key(&self, key_id: &str) -> Option<&[u8; 32]> {
        self.find(key_id).map(|key| &*key.audit_key)
    }

    fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    fn find(&self, key_id: &str) -> Option<&MasterKey> {
        self.keys().find(|key| key.id == key_id)
    }
}

/// Where a running process finds its master keys again after `twofold keys rotate` changed
/// them. `core` does no file I/O: the binary implements this over the key files.
pub trait KeyLoader: Send + Sync {
    /// The keys as they are now, or `None` when nothing changed since the last load. With
    /// `now = false` the loader may skip looking at all (it bounds how often it looks, e.g. once
    /// every few seconds); with `now = true` (a sealed secret names a key that is not loaded) it
    /// looks at once. An error leaves the keys the sealer holds in place.
    fn reload(&self, now: bool) -> Result<Option<KeyRing>, String>;
}

/// Seals with the current key, opens with any loaded key. With a [`KeyLoader`] the keys follow
/// a rotation without a restart: new seals move to the new key soon after (the loader bounds
/// how soon), and a secret sealed under a key not yet loaded makes the sealer look at once.
pub struct Sealer {
    ring: RwLock<Arc<KeyRing>>,
    loader: Option<Box<dyn KeyLoader>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &*self.snapshot())
            .field("reloads", &self.loader.is_some())
            .finish()
    }
}

impl Sealer {
    pub fn new(current: MasterKey) -> Self {
        Self::from_ring(KeyRing::new(current, Vec::new()))
    }

    pub fn from_ring(ring: KeyRing) -> Self {
        Self {
            ring: RwLock::new(Arc::new(ring)),
            loader: None,
        }
    }

    /// Adds keys that only open (after a rotation).
    pub fn with_previous(self, keys: Vec<MasterKey>) -> Self {
        let current = self.snapshot().current.clone();
        Self {
            ring: RwLock::new(Arc::new(KeyRing::new(current, keys))),
            loader: self.loader,
        }
    }

    /// Makes the sealer follow key rotations through `loader`.
    pub fn with_loader(mut self, loader: Box<dyn KeyLoader>) -> Self {
        self.loader = Some(loader);
        self
    }

    /// The keys as loaded now, without looking for changes.
    pub fn snapshot(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The keys to seal (or append to the audit log) with: looks for a rotation first, as
    /// often as the loader allows.
    pub fn keys(&self) -> Arc<KeyRing> {
        self.refresh(false);
        self.snapshot()
    }

    /// The keys, re-read at once if `key_id` is not among them (a secret or an audit entry
    /// written by a process that already uses a newer key).
    pub fn keys_knowing(&self, key_id: &str) -> Arc<KeyRing> {
        let ring = self.snapshot();
        if ring.find(key_id).is_some() || !self.refresh(true) {
            return ring;
        }
        self.snapshot()
    }

    /// Asks the loader for new keys; `true` when they changed.
    fn refresh(&self, now: bool) -> bool {
        let Some(loader) = &self.loader else {
            return false;
        };
        match loader.reload(now) {
            Ok(Some(ring)) => {
                tracing::info!(
                    current = ring.current_key_id(),
                    keys = ring.previous.len() + 1,
                    "master keys reloaded"
                );
                *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
                true
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(error = %error, "cannot reload the master keys; keeping the loaded ones");
                false
            }
        }
    }

    pub fn current_key_id(&self) -> String {
        self.keys().current_key_id().to_owned()
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. owner and row id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<SealedSecret, SealError> {
        seal_with(&self.keys().current, plaintext, context)
    }

    /// Decrypts a sealed secret; fails unless `context` is the one it was sealed with.
    pub fn open(
        &self,
        sealed: &SealedSecret,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let ring = self.keys_knowing(&sealed.key_id);
        let key = ring
            .find(&sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        open_with(key, sealed, context)
    }

    /// Opens `sealed` and seals its plaintext again under the current key (master-key
    /// rotation). `None` when it is under the current key already.
    pub fn reseal(
        &self,
        sealed: &SealedSecret,
        context: &[u8],
    ) -> Result<Option<SealedSecret>, SealError> {
        let ring = self.keys_knowing(&sealed.key_id);
        if sealed.key_id == ring.current.id {
            return Ok(None);
        }
        let key = ring
            .find(&sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        let plaintext = open_with(key, sealed, context)?;
        seal_with(&ring.current, &plaintext, context).map(Some)
    }
}

fn seal_with(key: &MasterKey, plaintext: &[u8], context: &[u8]) -> Result<SealedSecret, SealError> {
    Ok(SealedSecret {
        key_id: key.id.clone(),
        ciphertext: seal_bytes(&key.cipher, plaintext, context)?,
    })
}

fn open_with(
    key: &MasterKey,
    sealed: &SealedSecret,
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    open_bytes(&key.cipher, &sealed.ciphertext, context)
}

/// XChaCha20-Poly1305 under `cipher` with a random nonce: the nonce followed by the
/// ciphertext and tag, bound to `context`. Also the format of secure messages' content under
/// their data keys.
pub(crate) fn seal_bytes(
    cipher: &XChaCha20Poly1305,
    plaintext: &[u8],
    context: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .map_err(|_| SealError::Corrupt)?;
    let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// Opens what [`seal_bytes`] made; fails unless `context` is the one it was sealed with.
pub(crate) fn open_bytes(
    cipher: &XChaCha20Poly1305,
    sealed: &[u8],
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() < NONCE_BYTES {
        return Err(SealError::Corrupt);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: context,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::new(&Zeroizing::new([byte; 32]))
    }

    #[test]
    fn seal_then_open_with_the_same_context() {
        let sealer = Sealer::new(key(1));
        let sealed = sealer
            .seal(b"JBSWY3DPEHPK3PXP", b"user-1/factor-1")
            .unwrap();
        assert_eq!(sealed.key_id, sealer.current_key_id());
        assert!(
            !sealed
                .ciphertext
                .windows(16)
                .any(|window| window == b"JBSWY3DPEHPK3PXP")
        );
        assert_eq!(
            sealer.open(&sealed, b"user-1/factor-1").unwrap().as_slice(),
            b"JBSWY3DPEHPK3PXP"
        );
    }

    #[test]
    fn another_owner_a_tampered_byte_or_an_unknown_key_do_not_open() {
        let sealer = Sealer::new(key(1));
        let sealed = sealer.seal(b"secret", b"user-1").unwrap();
        assert!(matches!(
            sealer.open(&sealed, b"user-2"),
            Err(SealError::Corrupt)
        ));
        let mut tampered = sealed.clone();
        let last = tampered.ciphertext.len() - 1;
        tampered.ciphertext[last] ^= 1;
        assert!(matches!(
            sealer.open(&tampered, b"user-1"),
            Err(SealError::Corrupt)
        ));
        assert!(matches!(
            Sealer::new(key(2)).open(&sealed, b"user-1"),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn previous_keys_still_open_after_a_rotation() {
        let old = Sealer::new(key(1));
        let sealed = old.seal(b"secret", b"ctx").unwrap();
        let rotated = Sealer::new(key(2)).with_previous(vec![key(1)]);
        assert_eq!(rotated.open(&sealed, b"ctx").unwrap().as_slice(), b"secret");
        assert_ne!(
            rotated.seal(b"secret", b"ctx").unwrap().key_id,
            sealed.key_id
        );
    }

    #[test]
    fn nonces_differ_so_equal_secrets_seal_differently() {
        let sealer = Sealer::new(key(1));
        assert_ne!(
            sealer.seal(b"same", b"ctx").unwrap(),
            sealer.seal(b"same", b"ctx").unwrap()
        );
    }

    /// A loader that hands out the ring it is given, once.
    struct Handing(
        std::sync::Mutex<Option<KeyRing>>,
        std::sync::atomic::AtomicUsize,
    );

    impl KeyLoader for Handing {
        fn reload(&self, now: bool) -> Result<Option<KeyRing>, String> {
            if now {
                self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(self.0.lock().unwrap().take())
        }
    }

    #[test]
    fn a_secret_under_a_key_not_loaded_makes_the_sealer_reload() {
        let newer = Sealer::new(key(2));
        let sealed = newer.seal(b"secret", b"ctx").unwrap();
        let loader = Handing(
            std::sync::Mutex::new(Some(KeyRing::new(key(2), vec![key(1)]))),
            Default::default(),
        );
        let sealer = Sealer::new(key(1));
        assert!(matches!(
            sealer.open(&sealed, b"ctx"),
            Err(SealError::UnknownKey(_))
        ));
        let sealer = sealer.with_loader(Box::new(loader));
        assert_eq!(sealer.open(&sealed, b"ctx").unwrap().as_slice(), b"secret");
        // New seals use the new key; the old one still opens and checks the audit chain.
        assert_eq!(sealer.seal(b"x", b"ctx").unwrap().key_id, key(2).id());
        assert!(sealer.snapshot().audit_key(key(1).id()).is_some());
    }

    #[test]
    fn reseal_moves_a_secret_to_the_current_key() {
        let sealed = Sealer::new(key(1)).seal(b"secret", b"ctx").unwrap();
        let rotated = Sealer::new(key(2)).with_previous(vec![key(1)]);
        let resealed = rotated.reseal(&sealed, b"ctx").unwrap().unwrap();
        assert_eq!(resealed.key_id, key(2).id());
        assert_eq!(
            Sealer::new(key(2))
                .open(&resealed, b"ctx")
                .unwrap()
                .as_slice(),
            b"secret"
        );
        assert!(rotated.reseal(&resealed, b"ctx").unwrap().is_none());
        assert!(matches!(
            rotated.reseal(&sealed, b"other"),
            Err(SealError::Corrupt)
        ));
    }
}
