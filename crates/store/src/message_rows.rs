//! Secure-message rows as both backends read them, and their checked conversion into the
//! domain's types (see `rows.rs` for the rules every conversion keeps).
//!
//! A message row holds its content (the wrapped key and the sealed subject and body) exactly
//! while it is not erased; the schema checks it, and a row read otherwise is an error here,
//! never a message shown half-erased.

use anyhow::{Context, anyhow};
use twofold_core::store::{
    AttachmentRecord, ErasedReason, InvitationRecord, MessageRecord, NewAttachment, NewInvitation,
    NewMessage, SealedContent, SealedSecret,
};
use twofold_core::user::UserId;
use uuid::Uuid;

use crate::rows::{from_unix, to_unix};

/// The columns [`MessageRow`] is read from, in its field order, for a query
/// `FROM messages m JOIN users s ON s.id = m.sender_id JOIN users r ON r.id = m.recipient_id`
/// (see [`messages_joined`]).
macro_rules! message_columns {
    () => {
        "m.id, m.sender_id, s.email, m.recipient_id, r.email, m.key_id, m.wrapped_key, \
         m.sealed_subject, m.sealed_body, m.created_at, m.expires_at, m.delete_after_read, \
         m.sent_at, m.read_at, m.erased_at, m.erased_reason"
    };
}
pub(crate) use message_columns;

/// The tables [`message_columns`] names: each message with both parties' addresses.
macro_rules! messages_joined {
    () => {
        " FROM messages m JOIN users s ON s.id = m.sender_id \
         JOIN users r ON r.id = m.recipient_id "
    };
}
pub(crate) use messages_joined;

/// The `message_attachments` columns [`AttachmentRow`] is read from, in its field order.
macro_rules! attachment_columns {
    () => {
        "id, message_id, sealed_name, size, chunks, created_at"
    };
}
pub(crate) use attachment_columns;

/// The `message_invitations` columns [`InvitationRow`] is read from, in its field order.
macro_rules! invitation_columns {
    () => {
        "token_hash, user_id, message_id, choose_password, expires_at"
    };
}
pub(crate) use invitation_columns;

/// The values of a message being stored, owned so they can move to a database thread.
#[derive(Debug)]
pub(crate) struct NewMessageRow {
    pub id: String,
    pub sender_id: String,
    pub recipient_id: String,
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub sealed_subject: Vec<u8>,
    pub sealed_body: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
    pub delete_after_read: bool,
    pub sent_at: Option<i64>,
}

impl From<&NewMessage> for NewMessageRow {
    fn from(message: &NewMessage) -> Self {
        NewMessageRow {
            id: message.id.to_string(),
            sender_id: message.sender_id.to_string(),
            recipient_id: message.recipient_id.to_string(),
            key_id: message.wrapped_key.key_id.clone(),
            wrapped_key: message.wrapped_key.ciphertext.clone(),
            sealed_subject: message.sealed_subject.clone(),
            sealed_body: message.sealed_body.clone(),
            created_at: to_unix(message.created_at),
            expires_at: to_unix(message.expires_at),
            delete_after_read: message.delete_after_read,
            sent_at: message.sent_at.map(to_unix),
        }
    }
}

/// A `messages` row joined with its parties' addresses.
#[derive(Debug, Clone)]
pub(crate) struct MessageRow {
    pub id: String,
    pub sender_id: String,
    pub sender_email: String,
    pub recipient_id: String,
    pub recipient_email: String,
    pub key_id: Option<String>,
    pub wrapped_key: Option<Vec<u8>>,
    pub sealed_subject: Option<Vec<u8>>,
    pub sealed_body: Option<Vec<u8>>,
    pub created_at: i64,
    pub expires_at: i64,
    pub delete_after_read: bool,
    pub sent_at: Option<i64>,
    pub read_at: Option<i64>,
    pub erased_at: Option<i64>,
    pub erased_reason: Option<String>,
}

impl TryFrom<MessageRow> for MessageRecord {
    type Error = anyhow::Error;

    fn try_from(row: MessageRow) -> anyhow::Result<MessageRecord> {
        let id: Uuid = row
            .id
            .parse()
            .with_context(|| format!("messages.id {:?} is not a uuid", row.id))?;
        let user = |column: &str, value: &str| {
            value
                .parse::<UserId>()
                .with_context(|| format!("messages.{column} of {id} is not a uuid"))
        };
        let time = |column: &str, value: i64| {
            from_unix(value).with_context(|| format!("messages.{column} of {id}"))
        };
        let optional_time =
            |column: &str, value: Option<i64>| value.map(|value| time(column, value)).transpose();
        let erased = match (row.erased_reason, row.erased_at) {
            (None, None) => None,
            (Some(reason), Some(at)) => Some((
                ErasedReason::parse(&reason).ok_or_else(|| {
                    anyhow!("messages.erased_reason of {id} is {reason:?}, not a reason")
                })?,
                time("erased_at", at)?,
            )),
            _ => {
                return Err(anyhow!(
                    "the message {id} has only one of erased_reason and erased_at"
                ));
            }
        };
        let parts = (
            row.key_id,
            row.wrapped_key,
            row.sealed_subject,
            row.sealed_body,
        );
        let content = match (parts, erased.is_some()) {
            ((Some(key_id), Some(ciphertext), Some(sealed_subject), Some(sealed_body)), false) => {
                Some(SealedContent {
                    wrapped_key: SealedSecret { key_id, ciphertext },
                    sealed_subject,
                    sealed_body,
                })
            }
            ((None, None, None, None), true) => None,
            (_, false) => return Err(anyhow!("the message {id} is not erased but lacks content")),
            (_, true) => return Err(anyhow!("the erased message {id} still holds content")),
        };
        Ok(MessageRecord {
            id,
            sender_id: user("sender_id", &row.sender_id)?,
            sender_email: row.sender_email,
            recipient_id: user("recipient_id", &row.recipient_id)?,
            recipient_email: row.recipient_email,
            content,
            created_at: time("created_at", row.created_at)?,
            expires_at: time("expires_at", row.expires_at)?,
            delete_after_read: row.delete_after_read,
            sent_at: optional_time("sent_at", row.sent_at)?,
            read_at: optional_time("read_at", row.read_at)?,
            erased,
        })
    }
}

/// Rows as records, failing on the first that does not convert.
pub(crate) fn to_messages(rows: Vec<MessageRow>) -> anyhow::Result<Vec<MessageRecord>> {
    rows.into_iter().map(MessageRecord::try_from).collect()
}

/// Message ids as stored (`expired_messages`).
pub(crate) fn to_message_ids(ids: Vec<String>) -> anyhow::Result<Vec<Uuid>> {
    ids.into_iter()
        .map(|id| {
            id.parse()
                .with_context(|| format!("messages.id {id:?} is not a uuid"))
        })
        .collect()
}

/// The values of an attachment whose upload starts.
#[derive(Debug)]
pub(crate) struct NewAttachmentRow {
    pub id: String,
    pub message_id: String,
    pub sealed_name: Vec<u8>,
    pub created_at: i64,
}

impl From<&NewAttachment> for NewAttachmentRow {
    fn from(attachment: &NewAttachment) -> Self {
        NewAttachmentRow {
            id: attachment.id.to_string(),
            message_id: attachment.message_id.to_string(),
            sealed_name: attachment.sealed_name.clone(),
            created_at: to_unix(attachment.created_at),
        }
    }
}

/// A complete `message_attachments` row.
#[derive(Debug)]
pub(crate) struct AttachmentRow {
    pub id: String,
    pub message_id: String,
    pub sealed_name: Vec<u8>,
    pub size: Option<i64>,
    pub chunks: Option<i64>,
    pub created_at: i64,
}

impl TryFrom<AttachmentRow> for AttachmentRecord {
    type Error = anyhow::Error;

    fn try_from(row: AttachmentRow) -> anyhow::Result<AttachmentRecord> {
        let id: Uuid = row
            .id
            .parse()
            .with_context(|| format!("message_attachments.id {:?} is not a uuid", row.id))?;
        let (Some(size), Some(chunks)) = (row.size, row.chunks) else {
            return Err(anyhow!(
                "the attachment {id} is complete without size and chunks"
            ));
        };
        Ok(AttachmentRecord {
            id,
            message_id: row
                .message_id
                .parse()
                .with_context(|| format!("message_attachments.message_id of {id}"))?,
            sealed_name: row.sealed_name,
            size: u64::try_from(size)
                .with_context(|| format!("message_attachments.size of {id} is {size}"))?,
            chunks: u32::try_from(chunks)
                .with_context(|| format!("message_attachments.chunks of {id} is {chunks}"))?,
            created_at: from_unix(row.created_at)
                .with_context(|| format!("message_attachments.created_at of {id}"))?,
        })
    }
}

/// Rows as records, failing on the first that does not convert.
pub(crate) fn to_attachments(rows: Vec<AttachmentRow>) -> anyhow::Result<Vec<AttachmentRecord>> {
    rows.into_iter().map(AttachmentRecord::try_from).collect()
}

/// An attachment's size as the database stores it (BIGINT).
pub(crate) fn size_to_db(size: u64) -> anyhow::Result<i64> {
    i64::try_from(size).map_err(|_| anyhow!("an attachment of {size} bytes does not fit BIGINT"))
}

/// The values of an invitation being stored.
#[derive(Debug)]
pub(crate) struct NewInvitationRow {
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub message_id: String,
    pub choose_password: bool,
    pub expires_at: i64,
}

impl From<&NewInvitation> for NewInvitationRow {
    fn from(invitation: &NewInvitation) -> Self {
        NewInvitationRow {
            token_hash: invitation.token_hash.to_vec(),
            user_id: invitation.user_id.to_string(),
            message_id: invitation.message_id.to_string(),
            choose_password: invitation.choose_password,
            expires_at: to_unix(invitation.expires_at),
        }
    }
}

/// A `message_invitations` row.
#[derive(Debug)]
pub(crate) struct InvitationRow {
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub message_id: String,
    pub choose_password: bool,
    pub expires_at: i64,
}

impl TryFrom<InvitationRow> for InvitationRecord {
    type Error = anyhow::Error;

    fn try_from(row: InvitationRow) -> anyhow::Result<InvitationRecord> {
        // The token hash identifies a live link: it is not shown even in an error.
        let user_id: UserId = row
            .user_id
            .parse()
            .with_context(|| format!("message_invitations.user_id {:?}", row.user_id))?;
        Ok(InvitationRecord {
            user_id,
            message_id: row.message_id.parse().with_context(|| {
                format!("message_invitations.message_id of an invitation of {user_id}")
            })?,
            choose_password: row.choose_password,
            expires_at: from_unix(row.expires_at).with_context(|| {
                format!("message_invitations.expires_at of an invitation of {user_id}")
            })?,
        })
    }
}

/// Of the rows a `take_invitation` deleted (the taken one and the user's others), the taken
/// one, as a record.
pub(crate) fn taken_invitation(
    rows: Vec<InvitationRow>,
    token_hash: &[u8; 32],
) -> anyhow::Result<Option<InvitationRecord>> {
    rows.into_iter()
        .find(|row| row.token_hash == token_hash)
        .map(InvitationRecord::try_from)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live_row() -> MessageRow {
        MessageRow {
            id: "0b9f3a52-4c1e-4d7a-8f26-3e5d9c7b1a04".to_owned(),
            sender_id: "6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22".to_owned(),
            sender_email: "alice@example.com".to_owned(),
            recipient_id: "1d0e6a8c-2b3f-4e51-8a7d-9c0b1e2f3a45".to_owned(),
            recipient_email: "bob@example.com".to_owned(),
            key_id: Some("k1".to_owned()),
            wrapped_key: Some(vec![1, 2, 3]),
            sealed_subject: Some(vec![4]),
            sealed_body: Some(vec![5, 6]),
            created_at: 1_700_000_000,
            expires_at: 1_700_086_400,
            delete_after_read: true,
            sent_at: Some(1_700_000_000),
            read_at: None,
            erased_at: None,
            erased_reason: None,
        }
    }

    fn erased_row() -> MessageRow {
        MessageRow {
            key_id: None,
            wrapped_key: None,
            sealed_subject: None,
            sealed_body: None,
            erased_at: Some(1_700_000_100),
            erased_reason: Some("deleted".to_owned()),
            ..live_row()
        }
    }

    #[test]
    fn content_is_present_exactly_while_not_erased() {
        let live = MessageRecord::try_from(live_row()).unwrap();
        let content = live.content.unwrap();
        assert_eq!(content.wrapped_key.key_id, "k1");
        assert_eq!(content.sealed_body, [5, 6]);
        assert_eq!(live.erased, None);
        let erased = MessageRecord::try_from(erased_row()).unwrap();
        assert_eq!(erased.content, None);
        assert_eq!(
            erased
                .erased
                .map(|(reason, at)| (reason, at.unix_timestamp())),
            Some((ErasedReason::Deleted, 1_700_000_100))
        );
    }

    #[test]
    fn bad_message_rows_are_errors() {
        let rows = [
            MessageRow {
                id: "x".to_owned(),
                ..live_row()
            },
            MessageRow {
                recipient_id: "x".to_owned(),
                ..live_row()
            },
            MessageRow {
                sealed_body: None,
                ..live_row()
            },
            MessageRow {
                erased_reason: Some("lost".to_owned()),
                ..erased_row()
            },
            MessageRow {
                erased_reason: None,
                ..erased_row()
            },
            MessageRow {
                wrapped_key: Some(vec![1]),
                ..erased_row()
            },
            MessageRow {
                read_at: Some(i64::MAX),
                ..live_row()
            },
        ];
        for row in rows {
            let shown = format!("{row:?}");
            assert!(MessageRecord::try_from(row).is_err(), "{shown}");
        }
    }

    #[test]
    fn attachment_rows_convert_checked() {
        let good = || AttachmentRow {
            id: "0b9f3a52-4c1e-4d7a-8f26-3e5d9c7b1a04".to_owned(),
            message_id: "6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22".to_owned(),
            sealed_name: vec![9],
            size: Some(300_000),
            chunks: Some(2),
            created_at: 1_700_000_000,
        };
        let record = AttachmentRecord::try_from(good()).unwrap();
        assert_eq!((record.size, record.chunks), (300_000, 2));
        for row in [
            AttachmentRow {
                size: None,
                ..good()
            },
            AttachmentRow {
                size: Some(-1),
                ..good()
            },
            AttachmentRow {
                chunks: Some(i64::from(u32::MAX) + 1),
                ..good()
            },
            AttachmentRow {
                message_id: "x".to_owned(),
                ..good()
            },
        ] {
            let shown = format!("{row:?}");
            assert!(AttachmentRecord::try_from(row).is_err(), "{shown}");
        }
        assert!(size_to_db(u64::MAX).is_err());
    }

    #[test]
    fn the_taken_invitation_is_the_one_with_the_token() {
        let row = |byte: u8| InvitationRow {
            token_hash: vec![byte; 32],
            user_id: "6f1c2a4e-8d57-4f0b-9a43-5a7f0e8c1d22".to_owned(),
            message_id: "0b9f3a52-4c1e-4d7a-8f26-3e5d9c7b1a04".to_owned(),
            choose_password: byte == 2,
            expires_at: 1_700_000_000,
        };
        let taken = taken_invitation(vec![row(1), row(2)], &[2; 32]).unwrap();
        assert!(taken.unwrap().choose_password);
        assert!(taken_invitation(vec![row(1)], &[2; 32]).unwrap().is_none());
    }
}
