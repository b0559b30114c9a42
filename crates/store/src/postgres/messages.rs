//! [`MessageStore`] on PostgreSQL.
//!
//! The single-use changes (send once, read once, erase once) are one conditional UPDATE each:
//! concurrent callers queue on the row lock, and after the first commits READ COMMITTED
//! re-checks the WHERE clause against the new row version, which no longer matches.
//!
//! Erasing is one transaction: the content is NULLed under the message's row lock, then its
//! attachments (and with them their chunks) are deleted. A new attachment takes a share lock
//! on its message's row (`FOR SHARE`) while it checks the message is not erased, so it either
//! commits before the erase, which then deletes it, or waits for the erase and finds the
//! message erased: an upload never survives its message's erasure. A chunk likewise locks its
//! attachment while it checks the upload is still in progress.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;
use twofold_core::store::{
    AttachmentRecord, ErasedReason, InvitationRecord, MessageRecord, MessageStore, NewAttachment,
    NewInvitation, NewMessage, StoreError,
};
use twofold_core::user::UserId;
use uuid::Uuid;

use super::{PostgresStore, store_error};
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
    "WHERE m.id = $1"
);

const MESSAGES_OF_USER: &str = concat!(
    "SELECT ",
    message_columns!(),
    messages_joined!(),
    "WHERE m.sender_id = $1 OR (m.recipient_id = $1 AND m.sent_at IS NOT NULL) \
     ORDER BY m.created_at DESC, m.id DESC LIMIT $2"
);

const ERASE_CONTENT: &str = "UPDATE messages SET key_id = NULL, wrapped_key = NULL, \
     sealed_subject = NULL, sealed_body = NULL, erased_at = $2, erased_reason = $3 \
     WHERE id = $1 AND erased_at IS NULL";

const ATTACHMENTS: &str = concat!(
    "SELECT ",
    attachment_columns!(),
    " FROM message_attachments WHERE message_id = $1 AND complete ORDER BY created_at, id"
);

const LIVE_INVITATION: &str = concat!(
    "SELECT ",
    invitation_columns!(),
    " FROM message_invitations WHERE token_hash = $1 AND expires_at > $2"
);

/// One statement: the user whose live invitation this is loses every invitation, this one
/// included. Two takes of one token queue on its row lock; the second then finds the row
/// deleted and skips it, so only one returns it.
const TAKE_INVITATION: &str = concat!(
    "DELETE FROM message_invitations WHERE user_id = \
     (SELECT user_id FROM message_invitations WHERE token_hash = $1 AND expires_at > $2) \
     RETURNING ",
    invitation_columns!()
);

fn message_row(row: &Row) -> Result<MessageRow, tokio_postgres::Error> {
    Ok(MessageRow {
        id: row.try_get(0)?,
        sender_id: row.try_get(1)?,
        sender_email: row.try_get(2)?,
        recipient_id: row.try_get(3)?,
        recipient_email: row.try_get(4)?,
        key_id: row.try_get(5)?,
        wrapped_key: row.try_get(6)?,
        sealed_subject: row.try_get(7)?,
        sealed_body: row.try_get(8)?,
        created_at: row.try_get(9)?,
        expires_at: row.try_get(10)?,
        delete_after_read: row.try_get(11)?,
        sent_at: row.try_get(12)?,
        read_at: row.try_get(13)?,
        erased_at: row.try_get(14)?,
        erased_reason: row.try_get(15)?,
    })
}

fn attachment_row(row: &Row) -> Result<AttachmentRow, tokio_postgres::Error> {
    Ok(AttachmentRow {
        id: row.try_get(0)?,
        message_id: row.try_get(1)?,
        sealed_name: row.try_get(2)?,
        size: row.try_get(3)?,
        chunks: row.try_get(4)?,
        created_at: row.try_get(5)?,
    })
}

fn invitation_row(row: &Row) -> Result<InvitationRow, tokio_postgres::Error> {
    Ok(InvitationRow {
        token_hash: row.try_get(0)?,
        user_id: row.try_get(1)?,
        message_id: row.try_get(2)?,
        choose_password: row.try_get(3)?,
        expires_at: row.try_get(4)?,
    })
}

/// Converts every row with `read`, naming `operation` in the error.
fn read_rows<T>(
    operation: &'static str,
    rows: &[Row],
    read: fn(&Row) -> Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|row| read(row).map_err(|error| store_error(operation, error)))
        .collect()
}

async fn erase(
    client: &mut deadpool_postgres::Client,
    id: &str,
    reason: &str,
    now: i64,
) -> Result<bool, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    let update = transaction.prepare_cached(ERASE_CONTENT).await?;
    if transaction.execute(&update, &[&id, &now, &reason]).await? != 1 {
        transaction.rollback().await?;
        return Ok(false);
    }
    // The chunks go with their attachments (ON DELETE CASCADE); a link to a message that is
    // gone opens nothing.
    let delete = transaction
        .prepare_cached("DELETE FROM message_attachments WHERE message_id = $1")
        .await?;
    transaction.execute(&delete, &[&id]).await?;
    let delete = transaction
        .prepare_cached("DELETE FROM message_invitations WHERE message_id = $1")
        .await?;
    transaction.execute(&delete, &[&id]).await?;
    transaction.commit().await?;
    Ok(true)
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn insert_message(&self, message: &NewMessage) -> Result<(), StoreError> {
        let row = NewMessageRow::from(message);
        self.execute(
            "insert_message",
            "INSERT INTO messages (id, sender_id, recipient_id, key_id, wrapped_key, \
             sealed_subject, sealed_body, created_at, expires_at, delete_after_read, sent_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &row.id,
                &row.sender_id,
                &row.recipient_id,
                &row.key_id,
                &row.wrapped_key,
                &row.sealed_subject,
                &row.sealed_body,
                &row.created_at,
                &row.expires_at,
                &row.delete_after_read,
                &row.sent_at,
            ],
        )
        .await
        .map(drop)
    }

    async fn message(&self, id: Uuid) -> Result<Option<MessageRecord>, StoreError> {
        const OPERATION: &str = "message";
        let row = self
            .query_opt(OPERATION, MESSAGE_BY_ID, &[&id.to_string()])
            .await?;
        let Some(row) = row else { return Ok(None) };
        let row = message_row(&row).map_err(|error| store_error(OPERATION, error))?;
        Ok(Some(MessageRecord::try_from(row)?))
    }

    async fn messages_of_user(
        &self,
        user_id: UserId,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        const OPERATION: &str = "messages_of_user";
        let rows = self
            .query_all(
                OPERATION,
                MESSAGES_OF_USER,
                &[&user_id.to_string(), &i64::from(limit)],
            )
            .await?;
        Ok(to_messages(read_rows(OPERATION, &rows, message_row)?)?)
    }

    async fn mark_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "mark_sent",
                "UPDATE messages SET sent_at = $2 \
                 WHERE id = $1 AND sent_at IS NULL AND erased_at IS NULL",
                &[&id.to_string(), &to_unix(now)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn mark_read(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        expire_by: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        // Only ever earlier: a read never extends a message's life.
        let changed = self
            .execute(
                "mark_read",
                "UPDATE messages SET read_at = $2, \
                 expires_at = LEAST(expires_at, COALESCE($3::BIGINT, expires_at)) \
                 WHERE id = $1 AND read_at IS NULL",
                &[&id.to_string(), &to_unix(now), &expire_by.map(to_unix)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn erase_message(
        &self,
        id: Uuid,
        reason: ErasedReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "erase_message";
        let mut client = self.client(OPERATION).await?;
        erase(&mut client, &id.to_string(), reason.as_str(), to_unix(now))
            .await
            .map_err(|error| store_error(OPERATION, error))
    }

    async fn expired_messages(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        const OPERATION: &str = "expired_messages";
        let rows = self
            .query_all(
                OPERATION,
                "SELECT id FROM messages WHERE erased_at IS NULL AND expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2",
                &[&to_unix(now), &i64::from(limit)],
            )
            .await?;
        let ids = read_rows(OPERATION, &rows, |row| row.try_get(0))?;
        Ok(to_message_ids(ids)?)
    }

    async fn insert_attachment(&self, attachment: &NewAttachment) -> Result<bool, StoreError> {
        let row = NewAttachmentRow::from(attachment);
        let inserted = self
            .execute(
                "insert_attachment",
                "INSERT INTO message_attachments (id, message_id, sealed_name, complete, \
                 created_at) \
                 SELECT $1, id, $3, FALSE, $4 FROM messages \
                 WHERE id = $2 AND erased_at IS NULL FOR SHARE",
                &[&row.id, &row.message_id, &row.sealed_name, &row.created_at],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn insert_chunk(
        &self,
        attachment_id: Uuid,
        seq: u32,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let inserted = self
            .execute(
                "insert_chunk",
                "INSERT INTO message_chunks (attachment_id, seq, sealed) \
                 SELECT id, $2, $3 FROM message_attachments \
                 WHERE id = $1 AND NOT complete FOR SHARE",
                &[&attachment_id.to_string(), &i64::from(seq), &sealed],
            )
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
        // An erase deletes the attachment row: this UPDATE waits for its lock and then finds
        // nothing, or finishes first and is deleted by the erase.
        let finished = self
            .execute(
                "finish_attachment",
                "UPDATE message_attachments SET complete = TRUE, size = $2, chunks = $3 \
                 WHERE id = $1 AND NOT complete AND EXISTS (SELECT 1 FROM messages \
                 WHERE messages.id = message_attachments.message_id \
                 AND messages.erased_at IS NULL)",
                &[
                    &attachment_id.to_string(),
                    &size_to_db(size)?,
                    &i64::from(chunks),
                ],
            )
            .await?;
        Ok(finished == 1)
    }

    async fn attachments(&self, message_id: Uuid) -> Result<Vec<AttachmentRecord>, StoreError> {
        const OPERATION: &str = "attachments";
        let rows = self
            .query_all(OPERATION, ATTACHMENTS, &[&message_id.to_string()])
            .await?;
        Ok(to_attachments(read_rows(
            OPERATION,
            &rows,
            attachment_row,
        )?)?)
    }

    async fn attachment_chunk(
        &self,
        attachment_id: Uuid,
        seq: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        const OPERATION: &str = "attachment_chunk";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT c.sealed FROM message_chunks c \
                 JOIN message_attachments a ON a.id = c.attachment_id \
                 WHERE c.attachment_id = $1 AND c.seq = $2 AND a.complete",
                &[&attachment_id.to_string(), &i64::from(seq)],
            )
            .await?;
        row.map(|row| row.try_get(0))
            .transpose()
            .map_err(|error| store_error(OPERATION, error))
    }

    async fn delete_attachment(&self, attachment_id: Uuid) -> Result<(), StoreError> {
        self.execute(
            "delete_attachment",
            "DELETE FROM message_attachments WHERE id = $1",
            &[&attachment_id.to_string()],
        )
        .await
        .map(drop)
    }

    async fn delete_stale_uploads(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.execute(
            "delete_stale_uploads",
            "DELETE FROM message_attachments WHERE NOT complete AND created_at < $1",
            &[&to_unix(before)],
        )
        .await
    }

    async fn insert_invitation(&self, invitation: &NewInvitation) -> Result<(), StoreError> {
        let row = NewInvitationRow::from(invitation);
        self.execute(
            "insert_invitation",
            "INSERT INTO message_invitations \
             (token_hash, user_id, message_id, choose_password, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &row.token_hash,
                &row.user_id,
                &row.message_id,
                &row.choose_password,
                &row.expires_at,
            ],
        )
        .await
        .map(drop)
    }

    async fn invitation(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        const OPERATION: &str = "invitation";
        let row = self
            .query_opt(
                OPERATION,
                LIVE_INVITATION,
                &[&&token_hash[..], &to_unix(now)],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let row = invitation_row(&row).map_err(|error| store_error(OPERATION, error))?;
        Ok(Some(InvitationRecord::try_from(row)?))
    }

    async fn has_live_invitation(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const OPERATION: &str = "has_live_invitation";
        let row = self
            .query_opt(
                OPERATION,
                "SELECT EXISTS (SELECT 1 FROM message_invitations \
                 WHERE user_id = $1 AND expires_at > $2)",
                &[&user_id.to_string(), &to_unix(now)],
            )
            .await?;
        row.map(|row| row.try_get::<_, bool>(0))
            .transpose()
            .map_err(|error| store_error(OPERATION, error))
            .map(|exists| exists.unwrap_or(false))
    }

    async fn take_invitation(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        const OPERATION: &str = "take_invitation";
        let rows = self
            .query_all(
                OPERATION,
                TAKE_INVITATION,
                &[&&token_hash[..], &to_unix(now)],
            )
            .await?;
        let rows = read_rows(OPERATION, &rows, invitation_row)?;
        Ok(taken_invitation(rows, token_hash)?)
    }

    async fn delete_expired_invitations(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.execute(
            "delete_expired_invitations",
            "DELETE FROM message_invitations WHERE expires_at <= $1",
            &[&to_unix(now)],
        )
        .await
    }
}
