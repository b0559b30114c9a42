//! Reading a message and downloading its attachments: only its recipient, only once it was
//! sent, only with a second factor enabled; everyone else is told it does not exist.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::crypto::{DataKey, Field};
use super::{MessageError, READ_GRACE};
use crate::audit::{Event, EventKind};
use crate::service::Service;
use crate::store::{MessageRecord, MessageStore};
use crate::user::{Method, User};

/// An attachment as a message lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    pub id: Uuid,
    pub name: String,
    pub size: u64,
}

/// A message opened by its recipient.
#[derive(Debug, Clone)]
pub struct OpenedMessage {
    pub id: Uuid,
    pub from: String,
    pub subject: String,
    pub body: Zeroizing<String>,
    pub attachments: Vec<AttachmentInfo>,
    pub sent_at: Option<OffsetDateTime>,
    /// When the content will be erased (earlier than first set once a "delete after reading"
    /// message is opened).
    pub expires_at: OffsetDateTime,
    pub delete_after_read: bool,
}

/// An attachment being downloaded, chunk by chunk.
pub struct AttachmentDownload {
    pub name: String,
    pub size: u64,
    store: Arc<dyn MessageStore>,
    key: DataKey,
    attachment_id: Uuid,
    chunks: u32,
    next: u32,
}

impl std::fmt::Debug for AttachmentDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentDownload")
            .field("size", &self.size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl AttachmentDownload {
    /// The next piece of the file; `None` at the end. A chunk that is missing or does not open
    /// (the message was erased meanwhile, or the data was tampered with) is an error, so a
    /// download never ends early looking complete.
    pub async fn next_chunk(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, MessageError> {
        if self.next >= self.chunks {
            return Ok(None);
        }
        let seq = self.next;
        let sealed = self
            .store
            .attachment_chunk(self.attachment_id, seq)
            .await?
            .ok_or_else(|| anyhow::anyhow!("chunk {seq} of an attachment is missing"))?;
        let last = seq + 1 == self.chunks;
        let plain = self
            .key
            .open_chunk(self.attachment_id, seq, last, &sealed)?;
        self.next += 1;
        Ok(Some(plain))
    }
}

impl Service {
    /// Opens a message for its recipient. The first opening records the read receipt (and
    /// tells the sender); a "delete after reading" message then expires [`READ_GRACE`] later.
    #[tracing::instrument(skip_all, fields(user = %reader.id, message = %id))]
    pub async fn read_message(
        &self,
        reader: &User,
        id: Uuid,
    ) -> Result<OpenedMessage, MessageError> {
        let mut record = self.readable(reader, id).await?;
        let key = self.data_key(&record)?;
        let content = record.content.as_ref().ok_or(MessageError::NotFound)?;
        let subject = utf8(key.open_field(id, Field::Subject, &content.sealed_subject)?)?;
        let body = utf8(key.open_field(id, Field::Body, &content.sealed_body)?)?;
        let mut attachments = Vec::new();
        for attachment in self.stores.messages.attachments(id).await? {
            attachments.push(AttachmentInfo {
                id: attachment.id,
                name: key.open_name(attachment.id, &attachment.sealed_name)?,
                size: attachment.size,
            });
        }
        if let Some(expires_at) = self.first_read(reader, &record, &subject).await? {
            record.expires_at = expires_at;
        }
        Ok(OpenedMessage {
            id,
            from: record.sender_email.clone(),
            subject: subject.to_string(),
            body,
            attachments,
            sent_at: record.sent_at,
            expires_at: record.expires_at,
            delete_after_read: record.delete_after_read,
        })
    }

    /// Starts the download of one attachment for the message's recipient (recorded in the
    /// audit log).
    #[tracing::instrument(skip_all, fields(user = %reader.id, message = %id))]
    pub async fn open_attachment(
        &self,
        reader: &User,
        id: Uuid,
        attachment_id: Uuid,
    ) -> Result<AttachmentDownload, MessageError> {
        let record = self.readable(reader, id).await?;
        let attachment = self
            .stores
            .messages
            .attachments(id)
            .await?
            .into_iter()
            .find(|attachment| attachment.id == attachment_id)
            .ok_or(MessageError::NotFound)?;
        let key = self.data_key(&record)?;
        let name = key.open_name(attachment.id, &attachment.sealed_name)?;
        self.audit(
            Event::own(EventKind::MessageDownloaded, reader.id)
                .with("message_id", id.to_string())
                .with("attachment_id", attachment_id.to_string())
                .with("size", attachment.size),
        )
        .await?;
        if record.read_at.is_none() {
            let subject = self.subject_of(&record)?.unwrap_or_default();
            self.first_read(reader, &record, &subject).await?;
        }
        Ok(AttachmentDownload {
            name,
            size: attachment.size,
            store: Arc::clone(&self.stores.messages),
            key,
            attachment_id,
            chunks: attachment.chunks,
            next: 0,
        })
    }

    /// The message, if `reader` is its recipient, it was sent, its content is still there and
    /// the reader has a second factor the policy allows.
    async fn readable(&self, reader: &User, id: Uuid) -> Result<MessageRecord, MessageError> {
        let record = self
            .stores
            .messages
            .message(id)
            .await?
            .filter(|record| record.recipient_id == reader.id && record.sent_at.is_some())
            .ok_or(MessageError::NotFound)?;
        let record = self.live(record).await?;
        let policy = self.policy().await?;
        let usable = self.allowed_enrolled(reader, &policy).await?;
        if !opens_messages(&usable, |method| policy.policy.allows(method)) {
            return Err(MessageError::TwoFactorRequired);
        }
        Ok(record)
    }

    /// Records the first reading, once across requests and instances; returns the new expiry
    /// of a "delete after reading" message.
    async fn first_read(
        &self,
        reader: &User,
        record: &MessageRecord,
        subject: &str,
    ) -> Result<Option<OffsetDateTime>, MessageError> {
        if record.read_at.is_some() {
            return Ok(None);
        }
        let now = self.clock.now();
        let expire_by = record
            .delete_after_read
            .then(|| (now + READ_GRACE).min(record.expires_at));
        if !self
            .stores
            .messages
            .mark_read(record.id, now, expire_by)
            .await?
        {
            return Ok(None);
        }
        self.audit(
            Event::own(EventKind::MessageRead, reader.id)
                .with("message_id", record.id.to_string())
                .with("sender_id", record.sender_id.to_string()),
        )
        .await?;
        if let Some(sender) = self.stores.users.user_by_id(record.sender_id).await? {
            self.send_read_receipt(&sender, reader.email.as_str(), subject, now)
                .await;
        }
        Ok(expire_by)
    }
}

/// Whether these usable factors open secure messages. The link to a message arrives by email,
/// so email codes alone would make the mailbox both factors: an authenticator app or a phone
/// is needed, unless the policy allows neither (then email codes do).
fn opens_messages(usable: &[Method], allowed: impl Fn(Method) -> bool) -> bool {
    if usable
        .iter()
        .any(|method| matches!(method, Method::Totp | Method::Sms))
    {
        return true;
    }
    usable.contains(&Method::Email) && !allowed(Method::Totp) && !allowed(Method::Sms)
}

fn utf8(bytes: Zeroizing<Vec<u8>>) -> Result<Zeroizing<String>, MessageError> {
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|error| MessageError::Unexpected(anyhow::Error::new(error)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_codes_alone_open_messages_only_when_nothing_else_is_allowed() {
        let all = |_: Method| true;
        let email_only = |method: Method| method == Method::Email;
        assert!(opens_messages(&[Method::Totp], all));
        assert!(opens_messages(&[Method::Sms, Method::RecoveryCode], all));
        assert!(!opens_messages(&[Method::Email], all));
        assert!(!opens_messages(&[Method::Email, Method::RecoveryCode], all));
        assert!(!opens_messages(&[], all));
        assert!(opens_messages(&[Method::Email], email_only));
        assert!(!opens_messages(&[], email_only));
    }
}
