//! The store trait of secure messages (see `crate::messages`): the messages with their sealed
//! content, their attachments stored in sealed chunks, and the invitations that let a recipient
//! without a password in.
//!
//! Content is sealed before it reaches the store: the store sees a wrapped data key and
//! ciphertexts. Erasing a message removes the wrapped key, every ciphertext and every
//! attachment chunk in one transaction; the row stays, so the recipient and the sender are
//! told "expired" or "deleted" (410) rather than "not found".

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SealedSecret, StoreError};
use crate::user::UserId;

/// A message being stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub sender_id: UserId,
    pub recipient_id: UserId,
    /// The message's data key, sealed under the master key.
    pub wrapped_key: SealedSecret,
    /// Subject and body, each sealed under the data key.
    pub sealed_subject: Vec<u8>,
    pub sealed_body: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Erase the message soon after the recipient first opens it.
    pub delete_after_read: bool,
    /// `Some`: sent at once (the recipient is notified); `None`: a draft the sender may still
    /// add attachments to before sending.
    pub sent_at: Option<OffsetDateTime>,
}

/// Why a message's content was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasedReason {
    Expired,
    Deleted,
}

impl ErasedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ErasedReason::Expired => "expired",
            ErasedReason::Deleted => "deleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "expired" => Some(ErasedReason::Expired),
            "deleted" => Some(ErasedReason::Deleted),
            _ => None,
        }
    }
}

/// A stored message. Its content is `None` once erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: Uuid,
    pub sender_id: UserId,
    pub sender_email: String,
    pub recipient_id: UserId,
    pub recipient_email: String,
    pub content: Option<SealedContent>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub delete_after_read: bool,
    pub sent_at: Option<OffsetDateTime>,
    /// When the recipient first opened it (the read receipt).
    pub read_at: Option<OffsetDateTime>,
    pub erased: Option<(ErasedReason, OffsetDateTime)>,
}

/// The sealed parts of a message that has not been erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedContent {
    pub wrapped_key: SealedSecret,
    pub sealed_subject: Vec<u8>,
    pub sealed_body: Vec<u8>,
}

/// An attachment whose upload is starting.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub id: Uuid,
    pub message_id: Uuid,
    /// The file name, sealed under the message's data key.
    pub sealed_name: Vec<u8>,
    pub created_at: OffsetDateTime,
}

/// A complete attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    pub id: Uuid,
    pub message_id: Uuid,
    pub sealed_name: Vec<u8>,
    /// Bytes of the file (before sealing).
    pub size: u64,
    /// How many chunks hold it, numbered from 0.
    pub chunks: u32,
    pub created_at: OffsetDateTime,
}

/// An invitation: a link that lets a recipient who cannot sign in yet take a first session.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// SHA-256 of the token in the link; the token itself is never stored.
    pub token_hash: [u8; 32],
    pub user_id: UserId,
    pub message_id: Uuid,
    /// The recipient chooses a password first (`true`), or the message itself carries their
    /// temporary password and they go straight to enrolling a second factor (`false`).
    pub choose_password: bool,
    pub expires_at: OffsetDateTime,
}

/// A live invitation, as its link's page sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    pub user_id: UserId,
    pub message_id: Uuid,
    pub choose_password: bool,
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    async fn insert_message(&self, message: &NewMessage) -> Result<(), StoreError>;

    /// The message with both parties' addresses, erased or not.
    async fn message(&self, id: Uuid) -> Result<Option<MessageRecord>, StoreError>;

    /// The messages a user sent (drafts included) and those sent to them (not drafts),
    /// newest first, at most `limit`.
    async fn messages_of_user(
        &self,
        user_id: UserId,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError>;

    /// Sends a draft: sets `sent_at` while it is unset and the message is not erased. `false`
    /// otherwise.
    async fn mark_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// The first read: sets `read_at` (and, when given, brings `expires_at` forward to at most
    /// `expire_by`) while `read_at` is unset. `false` when it was read before.
    async fn mark_read(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        expire_by: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;

    /// Erases the content: the wrapped key, the sealed subject and body, every attachment with
    /// its chunks, and the message's invitation links, in one transaction; records why and when. `false` when it was erased
    /// already (or does not exist).
    async fn erase_message(
        &self,
        id: Uuid,
        reason: ErasedReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Messages not yet erased whose `expires_at` is at or before `now`, at most `limit`.
    async fn expired_messages(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Starts an attachment upload, only while the message is not erased. `false` otherwise.
    async fn insert_attachment(&self, attachment: &NewAttachment) -> Result<bool, StoreError>;

    /// Stores chunk `seq` of an attachment being uploaded.
    async fn insert_chunk(
        &self,
        attachment_id: Uuid,
        seq: u32,
        sealed: &[u8],
    ) -> Result<(), StoreError>;

    /// Marks an upload complete with its size and chunk count, only while its message is not
    /// erased. `false` otherwise.
    async fn finish_attachment(
        &self,
        attachment_id: Uuid,
        size: u64,
        chunks: u32,
    ) -> Result<bool, StoreError>;

    /// The complete attachments of a message, oldest first.
    async fn attachments(&self, message_id: Uuid) -> Result<Vec<AttachmentRecord>, StoreError>;

    /// One chunk of a complete attachment.
    async fn attachment_chunk(
        &self,
        attachment_id: Uuid,
        seq: u32,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes an attachment and its chunks (an upload that failed or was refused).
    async fn delete_attachment(&self, attachment_id: Uuid) -> Result<(), StoreError>;

    /// Deletes uploads never completed that began before `before` (a process killed while
    /// receiving a file); returns how many.
    async fn delete_stale_uploads(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    async fn insert_invitation(&self, invitation: &NewInvitation) -> Result<(), StoreError>;

    /// A live invitation (not expired at `now`), without using it.
    async fn invitation(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<InvitationRecord>, StoreError>;

    /// Whether the user holds a live (unexpired, unused) invitation: only such a person — an
    /// account made by a message and not yet taken up — is sent further invitation links.
    async fn has_live_invitation(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Uses an invitation: deletes it, and every other invitation of the same user, in one
    /// statement whose result decides, and returns it when it was live. Two requests with one
    /// link: exactly one gets `Some`.
    async fn take_invitation(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<InvitationRecord>, StoreError>;

    /// Deletes invitations that expired before `now`; returns how many.
    async fn delete_expired_invitations(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
