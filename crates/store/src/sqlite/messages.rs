//! [`MessageStore`] on SQLite.
//!
//! Every write runs on the one writer connection, so each conditional statement (send once,
//! read once, erase once, an attachment only while its message is not erased) decides alone.
//! Erasing is two statements in one savepoint: the content goes with its attachments, or
//! neither does. The writer runs with `secure_delete`, so the erased content's pages are
//! zeroed rather than left in free space.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use twofold_core::store::{
    AttachmentRecord, ErasedReason, InvitationRecord, MessageRecord, MessageStore, NewAttachment,
    NewInvitation, NewMessage, StoreError,
};
use twofold_core::user::UserId;
use uuid::Uuid;

use super::SqliteStore;
use crate::message_rows::{
    AttachmentRow, InvitationRow, MessageRow, NewAttachmentRow, NewInvitationRow, NewMessageRow,
    attachment_columns, invitation_columns, message_columns, messages_joined, size_to_db,
    taken_invitation, to_attachments, to_message_ids, to_messages,
};
use crate::rows::to_unix;

const MESSAGE_BY_ID: &str = concat!(
    "SELECT ",
    message_columns!(),
    messages_joined!(),
    "WHERE m.id = ?1"
);

const MESSAGES_OF_USER: &str = concat!(
    "SELECT ",
    message_columns!(),
    messages_joined!(),
    "WHERE m.sender_id = ?1 OR (m.recipient_id = ?1 AND m.sent_at IS NOT NULL) \
     ORDER BY m.created_at DESC, m.id DESC LIMIT ?2"
);

const ATTACHMENTS: &str = concat!(
    "SELECT ",
    attachment_columns!(),
    " FROM message_attachments WHERE message_id = ?1 AND complete = 1 ORDER BY created_at, id"
);

const LIVE_INVITATION: &str = concat!(
    "SELECT ",
    invitation_columns!(),
    " FROM message_invitations WHERE token_hash = ?1 AND expires_at > ?2"
);

/// One statement: the user whose live invitation this is loses every invitation, this one
/// included; whoever deletes the token's row has taken it.
const TAKE_INVITATION: &str = concat!(
    "DELETE FROM message_invitations WHERE user_id = \
     (SELECT user_id FROM message_invitations WHERE token_hash = ?1 AND expires_at > ?2) \
     RETURNING ",
    invitation_columns!()
);

fn message_row(row: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: row.get(0)?,
        sender_id: row.get(1)?,
        sender_email: row.get(2)?,
        recipient_id: row.get(3)?,
        recipient_email: row.get(4)?,
        key_id: row.get(5)?,
        wrapped_key: row.get(6)?,
        sealed_subject: row.get(7)?,
        sealed_body: row.get(8)?,
        created_at: row.get(9)?,
        expires_at: row.get(10)?,
        delete_after_read: row.get(11)?,
        sent_at: row.get(12)?,
        read_at: row.get(13)?,
        erased_at: row.get(14)?,
        erased_reason: row.get(15)?,
    })
}

fn attachment_row(row: &Row<'_>) -> rusqlite::Result<AttachmentRow> {
    Ok(AttachmentRow {
        id: row.get(0)?,
        message_id: row.get(1)?,
        sealed_name: row.get(2)?,
        size: row.get(3)?,
        chunks: row.get(4)?,
        created_at: row.get(5)?,
    })
}

fn invitation_row(row: &Row<'_>) -> rusqlite::Result<InvitationRow> {
    Ok(InvitationRow {
        token_hash: row.get(0)?,
        user_id: row.get(1)?,
        message_id: row.get(2)?,
        choose_password: row.get(3)?,
        expires_at: row.get(4)?,
    })
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn insert_message(&self, message: &NewMessage) -> Result<(), StoreError> {
        let row = NewMessageRow::from(message);
        self.database
            .write("insert_message", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO messages (id, sender_id, recipient_id, key_id, wrapped_key, \
                         sealed_subject, sealed_body, created_at, expires_at, delete_after_read, \
                         sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    )?
                    .execute(params![
                        row.id,
                        row.sender_id,
                        row.recipient_id,
                        row.key_id,
                        row.wrapped_key,
                        row.sealed_subject,
                        row.sealed_body,
                        row.created_at,
                        row.expires_at,
                        row.delete_after_read,
                        row.sent_at,
                    ])
            })
            .await
            .map(drop)
    }

    async fn message(&self, id: Uuid) -> Result<Option<MessageRecord>, StoreError> {
        let id = id.to_string();
        let row = self
            .database
            .lookup("message", move |connection| {
                connection
                    .prepare_cached(MESSAGE_BY_ID)?
                    .query_row([&id], message_row)
                    .optional()
            })
            .await?;
        Ok(row.map(MessageRecord::try_from).transpose()?)
    }

    async fn messages_of_user(
        &self,
        user_id: UserId,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let rows = self
            .database
            .read("messages_of_user", move |connection| {
                connection
                    .prepare_cached(MESSAGES_OF_USER)?
                    .query_map(params![user_id.to_string(), limit], message_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(to_messages(rows)?)
    }

    async fn mark_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
        let id = id.to_string();
        let changed = self
            .database
            .write("mark_sent", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE messages SET sent_at = ?2 \
                         WHERE id = ?1 AND sent_at IS NULL AND erased_at IS NULL",
                    )?
                    .execute(params![id, to_unix(now)])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn mark_read(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        expire_by: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let expire_by = expire_by.map(to_unix);
        let changed = self
            .database
            .write("mark_read", move |connection| {
                // Only ever earlier: a read never extends a message's life.
                connection
                    .prepare_cached(
                        "UPDATE messages SET read_at = ?2, \
                         expires_at = MIN(expires_at, COALESCE(?3, expires_at)) \
                         WHERE id = ?1 AND read_at IS NULL",
                    )?
                    .execute(params![id, to_unix(now), expire_by])
            })
            .await?;
        Ok(changed == 1)
    }

    async fn erase_message(
        &self,
        id: Uuid,
        reason: ErasedReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let erased = self
            .database
            .write("erase_message", move |connection| {
                let transaction = connection.savepoint()?;
                let erased = transaction
                    .prepare_cached(
                        "UPDATE messages SET key_id = NULL, wrapped_key = NULL, \
                         sealed_subject = NULL, sealed_body = NULL, \
                         erased_at = ?2, erased_reason = ?3 \
                         WHERE id = ?1 AND erased_at IS NULL",
                    )?
                    .execute(params![id, to_unix(now), reason.as_str()])?;
                if erased != 1 {
                    return Ok(false);
                }
                // The chunks go with their attachments (ON DELETE CASCADE); a link to a message
                // that is gone opens nothing.
                transaction
                    .prepare_cached("DELETE FROM message_attachments WHERE message_id = ?1")?
                    .execute([&id])?;
                transaction
                    .prepare_cached("DELETE FROM message_invitations WHERE message_id = ?1")?
                    .execute([&id])?;
                transaction.commit()?;
                Ok(true)
            })
            .await;
        if matches!(erased, Ok(true)) {
            self.database.request_truncating_checkpoint();
        }
        erased
    }

    async fn expired_messages(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let ids = self
            .database
            .read("expired_messages", move |connection| {
                connection
                    .prepare_cached(
                        "SELECT id FROM messages WHERE erased_at IS NULL AND expires_at <= ?1 \
                         ORDER BY expires_at LIMIT ?2",
                    )?
                    .query_map(params![to_unix(now), limit], |row| row.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        Ok(to_message_ids(ids)?)
    }

    async fn insert_attachment(&self, attachment: &NewAttachment) -> Result<bool, StoreError> {
        let row = NewAttachmentRow::from(attachment);
        let inserted = self
            .database
            .write("insert_attachment", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO message_attachments (id, message_id, sealed_name, complete, \
                         created_at) \
                         SELECT ?1, id, ?3, 0, ?4 FROM messages WHERE id = ?2 AND erased_at IS NULL",
                    )?
                    .execute(params![row.id, row.message_id, row.sealed_name, row.created_at])
            })
            .await?;
        Ok(inserted == 1)
    }

    async fn insert_chunk(
        &self,
        attachment_id: Uuid,
        seq: u32,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let id = attachment_id.to_string();
        let sealed = sealed.to_vec();
        let inserted = self
            .database
            .write("insert_chunk", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO message_chunks (attachment_id, seq, sealed) \
                         SELECT id, ?2, ?3 FROM message_attachments WHERE id = ?1 AND complete = 0",
                    )?
                    .execute(params![id, seq, sealed])
            })
            .await?;
        if inserted == 1 {
            Ok(())
        } else {
            Err(StoreError::Unexpected(anyhow::anyhow!(
                "the attachment {attachment_id} is not an upload in progress"
            )))
        }
    }

    async fn finish_attachment(
        &self,
        attachment_id: Uuid,
        size: u64,
        chunks: u32,
    ) -> Result<bool, StoreError> {
        let id = attachment_id.to_string();
        let size = size_to_db(size)?;
        let finished = self
            .database
            .write("finish_attachment", move |connection| {
                connection
                    .prepare_cached(
                        "UPDATE message_attachments SET complete = 1, size = ?2, chunks = ?3 \
                         WHERE id = ?1 AND complete = 0 AND EXISTS (SELECT 1 FROM messages \
                         WHERE messages.id = message_attachments.message_id \
                         AND messages.erased_at IS NULL)",
                    )?
                    .execute(params![id, size, chunks])
            })
            .await?;
        Ok(finished == 1)
    }

    async fn attachments(&self, message_id: Uuid) -> Result<Vec<AttachmentRecord>, StoreError> {
        let message_id = message_id.to_string();
        let rows = self
            .database
            .read("attachments", move |connection| {
                connection
                    .prepare_cached(ATTACHMENTS)?
                    .query_map([message_id], attachment_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(to_attachments(rows)?)
    }

    async fn attachment_chunk(
        &self,
        attachment_id: Uuid,
        seq: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let id = attachment_id.to_string();
        // A chunk is up to a quarter of a megabyte: the blocking pool, not an inline lookup.
        self.database
            .read("attachment_chunk", move |connection| {
                connection
                    .prepare_cached(
                        "SELECT c.sealed FROM message_chunks c \
                         JOIN message_attachments a ON a.id = c.attachment_id \
                         WHERE c.attachment_id = ?1 AND c.seq = ?2 AND a.complete = 1",
                    )?
                    .query_row(params![id, seq], |row| row.get(0))
                    .optional()
            })
            .await
    }

    async fn delete_attachment(&self, attachment_id: Uuid) -> Result<(), StoreError> {
        let id = attachment_id.to_string();
        self.database
            .write("delete_attachment", move |connection| {
                connection
                    .prepare_cached("DELETE FROM message_attachments WHERE id = ?1")?
                    .execute([id])
            })
            .await
            .map(drop)
    }

    async fn delete_stale_uploads(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = self
            .database
            .write("delete_stale_uploads", move |connection| {
                connection
                    .prepare_cached(
                        "DELETE FROM message_attachments WHERE complete = 0 AND created_at < ?1",
                    )?
                    .execute([to_unix(before)])
            })
            .await?;
        Ok(deleted as u64)
    }

    async fn insert_invitation(&self, invitation: &NewInvitation) -> Result<(), StoreError> {
        let row = NewInvitationRow::from(invitation);
        self.database
            .write("insert_invitation", move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO message_invitations \
                         (token_hash, user_id, message_id, choose_password, expires_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![
                        row.token_hash,
                        row.user_id,
                        row.message_id,
                        row.choose_password,
                        row.expires_at,
                    ])
            })
            .await
            .map(drop)
    }

    async fn invitation(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        let token_hash = *token_hash;
        let row = self
            .database
            .lookup("invitation", move |connection| {
                connection
                    .prepare_cached(LIVE_INVITATION)?
                    .query_row(params![&token_hash[..], to_unix(now)], invitation_row)
                    .optional()
            })
            .await?;
        Ok(row.map(InvitationRecord::try_from).transpose()?)
    }

    async fn has_live_invitation(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let user_id = user_id.to_string();
        self.database
            .lookup("has_live_invitation", move |connection| {
                connection
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM message_invitations \
                         WHERE user_id = ?1 AND expires_at > ?2)",
                    )?
                    .query_row(params![user_id, to_unix(now)], |row| row.get(0))
            })
            .await
    }

    async fn take_invitation(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        let token = *token_hash;
        let rows = self
            .database
            .write("take_invitation", move |connection| {
                connection
                    .prepare_cached(TAKE_INVITATION)?
                    .query_map(params![&token[..], to_unix(now)], invitation_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        Ok(taken_invitation(rows, token_hash)?)
    }

    async fn delete_expired_invitations(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = self
            .database
            .write("delete_expired_invitations", move |connection| {
                connection
                    .prepare_cached("DELETE FROM message_invitations WHERE expires_at <= ?1")?
                    .execute([to_unix(now)])
            })
            .await?;
        Ok(deleted as u64)
    }
}
