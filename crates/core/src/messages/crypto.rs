//! Envelope encryption of secure messages: each message has a random 256-bit data key, sealed
//! (wrapped) under the master key; the subject, the body, the attachment names and every
//! attachment chunk are sealed under the data key with XChaCha20-Poly1305. The associated data
//! binds each ciphertext to its message, its field or attachment, and a chunk to its position
//! and to whether it is the last one, so ciphertexts cannot be swapped between messages,
//! reordered, or cut short without the open failing.
//!
//! Erasing a message deletes its wrapped key with the ciphertexts: a copy of the ciphertext
//! left where the key was not (a free page, a log frame) is unreadable. A backup taken before
//! the erasure holds the wrapped key too, and opens with the master key of its time: keep
//! backups no longer than messages may live.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::KeyInit;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::sealing::{SealError, Sealer, open_bytes, seal_bytes};
use crate::store::SealedSecret;

/// The bytes of an attachment sealed together; the last chunk may be shorter.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The associated data of a message's wrapped data key (also used by master-key rotation).
pub fn key_context(message_id: Uuid) -> Vec<u8> {
    format!("twofold message key {message_id}").into_bytes()
}

/// A message's data key, in memory only while a request needs it.
pub struct DataKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Which part of a message a ciphertext holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    Subject,
    Body,
}

impl DataKey {
    /// A new random key and its wrapped form for storage.
    pub(crate) fn generate(
        sealer: &Sealer,
        message_id: Uuid,
    ) -> Result<(DataKey, SealedSecret), SealError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| SealError::Random)?;
        let wrapped = sealer.seal(bytes.as_ref(), &key_context(message_id))?;
        Ok((Self::from_bytes(&bytes), wrapped))
    }

    /// Unwraps a stored key.
    pub(crate) fn unwrap(
        sealer: &Sealer,
        message_id: Uuid,
        wrapped: &SealedSecret,
    ) -> Result<DataKey, SealError> {
        let bytes = sealer.open(wrapped, &key_context(message_id))?;
        let key: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SealError::Corrupt)?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(bytes: &[u8; 32]) -> DataKey {
        DataKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    pub(crate) fn seal_field(
        &self,
        message_id: Uuid,
        field: Field,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        self.seal(plaintext, &field_context(message_id, field))
    }

    pub(crate) fn open_field(
        &self,
        message_id: Uuid,
        field: Field,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.open(sealed, &field_context(message_id, field))
    }

    pub(crate) fn seal_name(&self, attachment_id: Uuid, name: &str) -> Result<Vec<u8>, SealError> {
        self.seal(name.as_bytes(), &name_context(attachment_id))
    }

    pub(crate) fn open_name(
        &self,
        attachment_id: Uuid,
        sealed: &[u8],
    ) -> Result<String, SealError> {
        let plain = self.open(sealed, &name_context(attachment_id))?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Corrupt)
    }

    pub(crate) fn seal_chunk(
        &self,
        attachment_id: Uuid,
        seq: u32,
        last: bool,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        self.seal(plaintext, &chunk_context(attachment_id, seq, last))
    }

    pub(crate) fn open_chunk(
        &self,
        attachment_id: Uuid,
        seq: u32,
        last: bool,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.open(sealed, &chunk_context(attachment_id, seq, last))
    }

    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        seal_bytes(&self.cipher, plaintext, context)
    }

    fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        open_bytes(&self.cipher, sealed, context)
    }
}

fn field_context(message_id: Uuid, field: Field) -> Vec<u8> {
    let field = match field {
        Field::Subject => "subject",
        Field::Body => "body",
    };
    format!("twofold message {message_id} {field}").into_bytes()
}

fn name_context(attachment_id: Uuid) -> Vec<u8> {
    format!("twofold attachment {attachment_id} name").into_bytes()
}

fn chunk_context(attachment_id: Uuid, seq: u32, last: bool) -> Vec<u8> {
    format!(
        "twofold attachment {attachment_id} chunk {seq} {}",
        if last { "last" } else { "more" }
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealing::MasterKey;

    fn sealer() -> Sealer {
        Sealer::new(MasterKey::new(&Zeroizing::new([7; 32])))
    }

    #[test]
    fn a_field_opens_only_for_its_message_and_field() {
        let sealer = sealer();
        let id = Uuid::new_v4();
        let (key, wrapped) = DataKey::generate(&sealer, id).unwrap();
        let sealed = key.seal_field(id, Field::Body, b"the body").unwrap();
        let again = DataKey::unwrap(&sealer, id, &wrapped).unwrap();
        assert_eq!(
            again
                .open_field(id, Field::Body, &sealed)
                .unwrap()
                .as_slice(),
            b"the body"
        );
        assert!(again.open_field(id, Field::Subject, &sealed).is_err());
        assert!(
            again
                .open_field(Uuid::new_v4(), Field::Body, &sealed)
                .is_err()
        );
        assert!(
            DataKey::unwrap(&sealer, Uuid::new_v4(), &wrapped).is_err(),
            "a wrapped key is bound to its message"
        );
    }

    #[test]
    fn chunks_cannot_be_reordered_or_cut_short() {
        let sealer = sealer();
        let id = Uuid::new_v4();
        let (key, _) = DataKey::generate(&sealer, id).unwrap();
        let first = key.seal_chunk(id, 0, false, b"one").unwrap();
        let last = key.seal_chunk(id, 1, true, b"two").unwrap();
        assert_eq!(
            key.open_chunk(id, 0, false, &first).unwrap().as_slice(),
            b"one"
        );
        assert_eq!(
            key.open_chunk(id, 1, true, &last).unwrap().as_slice(),
            b"two"
        );
        assert!(key.open_chunk(id, 1, true, &first).is_err(), "moved");
        assert!(
            key.open_chunk(id, 0, true, &first).is_err(),
            "truncated after it"
        );
        assert!(key.open_name(id, &first).is_err());
    }
}
