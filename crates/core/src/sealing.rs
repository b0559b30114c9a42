//! Secrets at rest: second-factor secrets are sealed with XChaCha20-Poly1305 under the master
//! key before they reach the database. The key's id is stored beside each ciphertext so that the
//! key can rotate (old keys stay able to open what they sealed), and the ciphertext is bound to
//! its owner and row through the associated data, so it cannot be moved to another account.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::store::SealedSecret;

const NONCE_BYTES: usize = 24;

/// A 256-bit master key and its id (derived from the key, so it needs no storage of its own).
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

/// Seals with the current key, opens with any loaded key.
#[derive(Debug)]
pub struct Sealer {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Sealer {
    pub fn new(current: MasterKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds keys that only open (after a rotation).
    pub fn with_previous(mut self, keys: Vec<MasterKey>) -> Self {
        self.previous = keys;
        self
    }

    /// The id and chain key of the current master key, for appending to the audit log.
    pub fn current_audit_key(&self) -> (&str, &[u8; 32]) {
        (&self.current.id, &self.current.audit_key)
    }

    /// The chain key of a loaded master key, for checking the audit log.
    pub fn audit_key(&self, key_id: &str) -> Option<&[u8; 32]> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == key_id)
            .map(|key| &*key.audit_key)
    }

    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. owner and row id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<SealedSecret, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let ciphertext = self
            .current
            .cipher
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
        Ok(SealedSecret {
            key_id: self.current.id.clone(),
            ciphertext: sealed,
        })
    }

    /// Decrypts a sealed secret; fails unless `context` is the one it was sealed with.
    pub fn open(
        &self,
        sealed: &SealedSecret,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|key| key.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.ciphertext.len() < NONCE_BYTES {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.ciphertext.split_at(NONCE_BYTES);
        key.cipher
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
}
