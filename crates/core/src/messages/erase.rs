//! Ending messages: deletion by the sender or the recipient, and expiry (run every minute by
//! the server, and at once when someone opens an expired message). Either erases the content
//! for both parties (see [`crate::store::MessageStore::erase_message`]).

use time::Duration;
use uuid::Uuid;

use super::MessageError;
use crate::audit::{Event, EventKind};
use crate::service::Service;
use crate::store::{ErasedReason, MessageRecord};
use crate::user::User;

impl Service {
    /// Deletes a message (its sender or its recipient): the content is erased for both.
    #[tracing::instrument(skip_all, fields(user = %user.id, message = %id))]
    pub async fn delete_message(&self, user: &User, id: Uuid) -> Result<(), MessageError> {
        let record = self
            .stores
            .messages
            .message(id)
            .await?
            .filter(|record| {
                record.sender_id == user.id
                    || (record.recipient_id == user.id && record.sent_at.is_some())
            })
            .ok_or(MessageError::NotFound)?;
        if let Some((reason, _)) = record.erased {
            return Err(MessageError::Gone(reason));
        }
        self.audit(
            Event::by(
                EventKind::MessageDeleted,
                Some(user.id),
                Some(record.recipient_id),
            )
            .with("message_id", id.to_string())
            .with("sender_id", record.sender_id.to_string()),
        )
        .await?;
        if !self
            .stores
            .messages
            .erase_message(id, ErasedReason::Deleted, self.clock.now())
            .await?
        {
            return Err(MessageError::Gone(ErasedReason::Deleted));
        }
        tracing::info!("secure message deleted");
        Ok(())
    }

    /// Erases every message past its expiry (and uploads abandoned for an hour, and expired
    /// invitations); returns how many messages. Run every few minutes by the server.
    pub async fn expire_messages(&self) -> Result<u64, MessageError> {
        let now = self.clock.now();
        let mut erased = 0;
        loop {
            let due = self.stores.messages.expired_messages(now, 100).await?;
            let batch = due.len();
            let mut failed = 0;
            for id in due {
                // One message that cannot be erased must not keep the others from it.
                let outcome = match self.stores.messages.message(id).await {
                    Ok(Some(record)) => self.erase_expired(&record).await,
                    Ok(None) => Ok(false),
                    Err(error) => Err(error.into()),
                };
                match outcome {
                    Ok(done) => erased += u64::from(done),
                    Err(error) => {
                        failed += 1;
                        tracing::warn!(message = %id, error = %error, "could not erase an expired message");
                    }
                }
            }
            if batch < 100 || failed > 0 {
                break;
            }
        }
        self.stores
            .messages
            .delete_stale_uploads(now - Duration::hours(1))
            .await?;
        self.stores.messages.delete_expired_invitations(now).await?;
        Ok(erased)
    }

    /// Erases an expired message and records it, once (`false` when another request or
    /// instance erased it first).
    pub(super) async fn erase_expired(&self, record: &MessageRecord) -> Result<bool, MessageError> {
        if !self
            .stores
            .messages
            .erase_message(record.id, ErasedReason::Expired, self.clock.now())
            .await?
        {
            return Ok(false);
        }
        self.audit(
            Event::by(EventKind::MessageExpired, None, Some(record.recipient_id))
                .with("message_id", record.id.to_string())
                .with("sender_id", record.sender_id.to_string()),
        )
        .await?;
        tracing::info!(message = %record.id, "secure message expired and erased");
        Ok(true)
    }
}
