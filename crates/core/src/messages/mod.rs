//! Secure messages (seed 000): sensitive data — a temporary password, a document — handed to
//! a person behind two-factor sign-in instead of in an email. The email only says who sent
//! what subject and links to the message; reading it needs the recipient's full session with
//! a second factor enabled. A recipient without an account is invited: the link carries a
//! single-use token that lets them choose a password, after which they must enroll a second
//! factor before anything is shown.
//!
//! Content is sealed under a per-message data key, itself sealed under the master key
//! (`crypto`). A message expires (7 days by default, at most 90), or is deleted by its sender
//! or recipient, or — when the sender asked — is erased [`READ_GRACE`] after its first
//! opening; its key and every ciphertext are then erased and it answers "gone" (410).

mod crypto;
mod erase;
mod invitations;
mod notices;
mod read;
mod upload;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub use crypto::{CHUNK_BYTES, key_context};
pub use invitations::{InvitationView, MessagedAccount};
pub use read::{AttachmentDownload, AttachmentInfo, OpenedMessage};
pub use upload::AttachmentUpload;

use crate::audit::{Event, EventKind};
use crate::email::{Email, InvalidEmail};
use crate::service::Service;
use crate::store::{ErasedReason, MessageRecord, NewMessage, SendLimit, StoreError};
use crate::user::User;
use crypto::{DataKey, Field};

/// How long a message lasts when the sender does not say.
pub const DEFAULT_EXPIRY_DAYS: u32 = 7;
/// The longest a message may last.
pub const MAX_EXPIRY_DAYS: u32 = 90;
pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_BODY_BYTES: usize = 50_000;
/// Recipients of one send (each gets a message of their own).
pub const MAX_RECIPIENTS: usize = 20;
pub const MAX_ATTACHMENTS: usize = 20;
/// The default size limit of one attachment: 25 MiB.
pub const DEFAULT_ATTACHMENT_LIMIT_BYTES: u64 = 25 * 1024 * 1024;
/// A message to be erased after its first reading stays readable this long after it, so the
/// recipient can still download its attachments.
pub const READ_GRACE: Duration = Duration::minutes(15);
/// At most this many messages per sender per [`SEND_WINDOW`], on every instance together: a
/// signed-in account cannot be used to flood addresses with invitations.
pub const SEND_MAX: u32 = 100;
pub const SEND_WINDOW: Duration = Duration::hours(1);
/// The most messages a list holds.
pub const LIST_LIMIT: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    InvalidRecipient(#[from] InvalidEmail),
    /// The message itself is not acceptable (empty subject, too long a body, ...).
    #[error("{0}")]
    Invalid(&'static str),
    /// No such message, or not one this user may see: one answer for both.
    #[error("no such message")]
    NotFound,
    /// The message expired or was deleted; its content is erased.
    #[error("this message has {}; its content is erased", .0.past_tense())]
    Gone(ErasedReason),
    /// The recipient must enable a second factor (an authenticator app or a phone; email codes
    /// only where the policy allows nothing else) before reading.
    #[error("set up an authenticator app or text-message codes to read secure messages")]
    TwoFactorRequired,
    /// An administrator's new account: the address has an account already.
    #[error("an account with this email address exists")]
    EmailTaken,
    #[error("the message has been sent already")]
    AlreadySent,
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("a message has at most 20 attachments")]
    TooManyAttachments,
    /// The invitation link was used, has expired, or was never valid.
    #[error("this link is no longer valid; sign in instead")]
    InvitationInvalid,
    #[error("too many messages sent; wait before sending more")]
    Throttled { retry_after: Duration },
    #[error("the server is busy; try again shortly")]
    Overloaded,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ErasedReason {
    fn past_tense(self) -> &'static str {
        match self {
            ErasedReason::Expired => "expired",
            ErasedReason::Deleted => "been deleted",
        }
    }
}

impl From<StoreError> for MessageError {
    fn from(error: StoreError) -> Self {
        MessageError::Unexpected(anyhow::Error::new(error))
    }
}

impl From<crate::sealing::SealError> for MessageError {
    fn from(error: crate::sealing::SealError) -> Self {
        MessageError::Unexpected(anyhow::Error::new(error))
    }
}

impl From<crate::login::LoginError> for MessageError {
    fn from(error: crate::login::LoginError) -> Self {
        match error {
            crate::login::LoginError::Overloaded => MessageError::Overloaded,
            other => MessageError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<crate::accounts::AccountError> for MessageError {
    fn from(error: crate::accounts::AccountError) -> Self {
        match error {
            crate::accounts::AccountError::InvalidEmail(invalid) => {
                MessageError::InvalidRecipient(invalid)
            }
            crate::accounts::AccountError::EmailTaken => MessageError::EmailTaken,
            crate::accounts::AccountError::Overloaded => MessageError::Overloaded,
            other => MessageError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<crate::delivery::DeliveryError> for MessageError {
    fn from(error: crate::delivery::DeliveryError) -> Self {
        MessageError::Unexpected(anyhow::Error::new(error))
    }
}

/// What a sender writes.
#[derive(Debug, Clone, Copy)]
pub struct MessageDraft<'a> {
    /// One or more email addresses; each recipient gets a message of their own.
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
    /// `None`: [`DEFAULT_EXPIRY_DAYS`].
    pub expires_in_days: Option<u32>,
    pub delete_after_read: bool,
    /// `false`: keep it as a draft (attachments may be added), sent later with
    /// [`Service::send_draft`].
    pub send: bool,
}

/// A message made for one recipient.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub id: Uuid,
    pub recipient: Email,
    /// The recipient had no account and was invited.
    pub invited: bool,
}

/// Which way a listed message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received,
    Sent,
}

/// Where a message stands, as its lists show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Draft,
    Sent,
    Read,
    Expired,
    Deleted,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Draft => "draft",
            MessageStatus::Sent => "sent",
            MessageStatus::Read => "read",
            MessageStatus::Expired => "expired",
            MessageStatus::Deleted => "deleted",
        }
    }
}

/// A message in the inbox or the sent list (never its body).
#[derive(Debug, Clone)]
pub struct MessageSummary {
    pub id: Uuid,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    /// `None` once the content is erased.
    pub subject: Option<String>,
    pub status: MessageStatus,
    pub created_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
    pub expires_at: OffsetDateTime,
    /// The read receipt.
    pub read_at: Option<OffsetDateTime>,
}

/// A checked draft.
struct Checked {
    recipients: Vec<Email>,
    subject: String,
    body: String,
    expires_in: Duration,
}

fn check_draft(draft: &MessageDraft<'_>) -> Result<Checked, MessageError> {
    if draft.to.len() > MAX_RECIPIENTS {
        return Err(MessageError::Invalid(
            "a message goes to at most 20 recipients",
        ));
    }
    let mut recipients: Vec<Email> = Vec::new();
    for address in draft.to {
        let email = Email::parse(address.trim())?;
        if !recipients.contains(&email) {
            recipients.push(email);
        }
    }
    if recipients.is_empty() {
        return Err(MessageError::Invalid("name at least one recipient"));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(MessageError::Invalid(
            "a message goes to at most 20 recipients",
        ));
    }
    let subject = draft.subject.trim();
    if subject.is_empty() {
        return Err(MessageError::Invalid("the subject is empty"));
    }
    if subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(MessageError::Invalid(
            "the subject is longer than 200 characters",
        ));
    }
    // The subject goes into an email header and a page title: one line of text.
    if subject.chars().any(|c| c.is_control() || is_format_char(c)) {
        return Err(MessageError::Invalid(
            "the subject must be one line of text",
        ));
    }
    if draft.body.trim().is_empty() {
        return Err(MessageError::Invalid("the message is empty"));
    }
    if draft.body.len() > MAX_BODY_BYTES {
        return Err(MessageError::Invalid(
            "the message is longer than 50,000 bytes",
        ));
    }
    let days = draft.expires_in_days.unwrap_or(DEFAULT_EXPIRY_DAYS);
    if !(1..=MAX_EXPIRY_DAYS).contains(&days) {
        return Err(MessageError::Invalid(
            "expires_in_days must be from 1 to 90",
        ));
    }
    Ok(Checked {
        recipients,
        subject: subject.to_owned(),
        body: draft.body.to_owned(),
        expires_in: Duration::days(i64::from(days)),
    })
}

fn send_key(sender: &User) -> String {
    format!("messages:{}", sender.id)
}

impl Service {
    /// Writes a message to each recipient, inviting those without an account, and (unless a
    /// draft) emails each a link to theirs.
    #[tracing::instrument(skip_all, fields(sender = %sender.id))]
    pub async fn send_messages(
        &self,
        sender: &User,
        draft: MessageDraft<'_>,
    ) -> Result<Vec<SentMessage>, MessageError> {
        let checked = check_draft(&draft)?;
        self.admit_messages(sender, checked.recipients.len())
            .await?;
        let mut sent = Vec::with_capacity(checked.recipients.len());
        for email in &checked.recipients {
            let (recipient, invited) = self.recipient_for(sender, email).await?;
            let id = self
                .store_message(
                    sender,
                    &recipient,
                    &checked,
                    draft.delete_after_read,
                    draft.send,
                )
                .await?;
            let created = invited.then_some(true);
            if draft.send {
                self.notify_recipient(sender, &recipient, id, &checked.subject, created)
                    .await?;
            } else if invited {
                // Marks the new account as one a message made, so that sending the draft
                // invites it; the token itself goes nowhere.
                self.invitation_for(&recipient, id, true, true).await?;
            }
            sent.push(SentMessage {
                id,
                recipient: recipient.email.clone(),
                invited,
            });
        }
        Ok(sent)
    }

    /// Sends a draft of `sender`'s.
    #[tracing::instrument(skip_all, fields(sender = %sender.id, message = %id))]
    pub async fn send_draft(&self, sender: &User, id: Uuid) -> Result<(), MessageError> {
        let record = self.own_message(sender, id).await?;
        if record.sent_at.is_some() {
            return Err(MessageError::AlreadySent);
        }
        let recipient = self.user_by_id(record.recipient_id).await?;
        let subject = self.subject_of(&record)?.unwrap_or_default();
        self.audit(
            Event::by(EventKind::MessageSent, Some(sender.id), Some(recipient.id))
                .with("message_id", id.to_string())
                .with("to", recipient.email.as_str())
                .with("from_draft", true),
        )
        .await?;
        if !self.stores.messages.mark_sent(id, self.clock.now()).await? {
            return Err(MessageError::AlreadySent);
        }
        self.notify_recipient(sender, &recipient, id, &subject, None)
            .await
    }

    /// The messages `user` received and sent, newest first.
    pub async fn list_messages(&self, user: &User) -> Result<Vec<MessageSummary>, MessageError> {
        let now = self.clock.now();
        let records = self
            .stores
            .messages
            .messages_of_user(user.id, LIST_LIMIT)
            .await?;
        let mut listed = Vec::with_capacity(records.len());
        for record in records {
            let status = status_of(&record, now);
            let subject = match status {
                MessageStatus::Expired | MessageStatus::Deleted => None,
                _ => self.subject_of(&record)?,
            };
            let mut directions = Vec::new();
            if record.recipient_id == user.id && record.sent_at.is_some() {
                directions.push(Direction::Received);
            }
            if record.sender_id == user.id {
                directions.push(Direction::Sent);
            }
            for direction in directions {
                listed.push(MessageSummary {
                    id: record.id,
                    direction,
                    from: record.sender_email.clone(),
                    to: record.recipient_email.clone(),
                    subject: subject.clone(),
                    status,
                    created_at: record.created_at,
                    sent_at: record.sent_at,
                    expires_at: record.expires_at,
                    read_at: record.read_at,
                });
            }
        }
        Ok(listed)
    }

    /// A message of `sender`'s that is not erased nor expired.
    async fn own_message(&self, sender: &User, id: Uuid) -> Result<MessageRecord, MessageError> {
        let record = self
            .stores
            .messages
            .message(id)
            .await?
            .filter(|record| record.sender_id == sender.id)
            .ok_or(MessageError::NotFound)?;
        self.live(record).await
    }

    /// `record` if its content is still there; an expired one is erased now.
    async fn live(&self, record: MessageRecord) -> Result<MessageRecord, MessageError> {
        if let Some((reason, _)) = record.erased {
            return Err(MessageError::Gone(reason));
        }
        if record.expires_at <= self.clock.now() {
            self.erase_expired(&record).await?;
            return Err(MessageError::Gone(ErasedReason::Expired));
        }
        Ok(record)
    }

    fn data_key(&self, record: &MessageRecord) -> Result<DataKey, MessageError> {
        let content = record
            .content
            .as_ref()
            .ok_or(MessageError::Gone(ErasedReason::Expired))?;
        Ok(DataKey::unwrap(
            &self.sealer,
            record.id,
            &content.wrapped_key,
        )?)
    }

    fn subject_of(&self, record: &MessageRecord) -> Result<Option<String>, MessageError> {
        let Some(content) = &record.content else {
            return Ok(None);
        };
        let key = self.data_key(record)?;
        let subject = key.open_field(record.id, Field::Subject, &content.sealed_subject)?;
        Ok(Some(
            String::from_utf8(subject.to_vec()).map_err(anyhow::Error::new)?,
        ))
    }

    /// Refuses a send past the sender's limit, atomically across instances.
    async fn admit_messages(&self, sender: &User, count: usize) -> Result<(), MessageError> {
        let now = self.clock.now();
        let key = send_key(sender);
        let since = now - SEND_WINDOW;
        let refused = || async {
            let earliest = self.stores.codes.earliest_send_since(&key, since).await?;
            let retry_after = earliest
                .map(|at| at + SEND_WINDOW - now)
                .filter(|wait| wait.is_positive())
                .unwrap_or(Duration::seconds(1));
            Ok::<_, MessageError>(MessageError::Throttled { retry_after })
        };
        let used = self.stores.codes.sends_since(&key, since).await?;
        if used as usize + count > SEND_MAX as usize {
            return Err(refused().await?);
        }
        for _ in 0..count {
            let limit = SendLimit {
                key: &key,
                since,
                max: SEND_MAX,
            };
            if !self.stores.codes.admit_send(&[limit], now).await? {
                return Err(refused().await?);
            }
        }
        Ok(())
    }

    /// Seals and stores one recipient's message, recorded in the audit log first.
    async fn store_message(
        &self,
        sender: &User,
        recipient: &User,
        checked: &Checked,
        delete_after_read: bool,
        send: bool,
    ) -> Result<Uuid, MessageError> {
        let id = Uuid::new_v4();
        let now = self.clock.now();
        let (key, wrapped_key) = DataKey::generate(&self.sealer, id)?;
        let message = NewMessage {
            id,
            sender_id: sender.id,
            recipient_id: recipient.id,
            wrapped_key,
            sealed_subject: key.seal_field(id, Field::Subject, checked.subject.as_bytes())?,
            sealed_body: key.seal_field(id, Field::Body, checked.body.as_bytes())?,
            created_at: now,
            expires_at: now + checked.expires_in,
            delete_after_read,
            sent_at: send.then_some(now),
        };
        // A draft is recorded when it is sent (`send_draft`), not when it is written.
        if send {
            self.audit(
                Event::by(EventKind::MessageSent, Some(sender.id), Some(recipient.id))
                    .with("message_id", id.to_string())
                    .with("to", recipient.email.as_str()),
            )
            .await?;
        }
        self.stores.messages.insert_message(&message).await?;
        tracing::info!(message = %id, "secure message stored");
        Ok(id)
    }
}

/// Unicode format characters (bidirectional overrides and isolates, zero-width ones) that make
/// a name or subject read differently from what it is (`invoice\u{202E}fdp.exe`).
pub(crate) fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Where a stored message stands at `now`.
fn status_of(record: &MessageRecord, now: OffsetDateTime) -> MessageStatus {
    match record.erased {
        Some((ErasedReason::Deleted, _)) => MessageStatus::Deleted,
        Some((ErasedReason::Expired, _)) => MessageStatus::Expired,
        None if record.expires_at <= now => MessageStatus::Expired,
        None if record.sent_at.is_none() => MessageStatus::Draft,
        None if record.read_at.is_some() => MessageStatus::Read,
        None => MessageStatus::Sent,
    }
}
