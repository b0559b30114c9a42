//! Attachments, received as a stream: the bytes are sealed and stored in chunks of
//! [`CHUNK_BYTES`] as they arrive, so a large file never sits in memory whole. An upload is
//! listed only once complete; one past the size limit is refused and its chunks deleted, and
//! one cut off (the client went away, the process was killed) is deleted by the purge.

use uuid::Uuid;

use super::crypto::{CHUNK_BYTES, DataKey};
use super::read::AttachmentInfo;
use super::{MAX_ATTACHMENTS, MessageError};
use crate::service::Service;
use crate::store::{ErasedReason, NewAttachment};
use crate::user::User;

/// The longest file name kept, in characters.
const MAX_NAME_CHARS: usize = 200;

/// An upload in progress: feed it with [`AttachmentUpload::push`], then
/// [`AttachmentUpload::finish`] it, or [`AttachmentUpload::abort`] it.
pub struct AttachmentUpload {
    service: Service,
    key: DataKey,
    id: Uuid,
    message_id: Uuid,
    name: String,
    buffer: Vec<u8>,
    size: u64,
    seq: u32,
    limit: u64,
}

impl std::fmt::Debug for AttachmentUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentUpload")
            .field("id", &self.id)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// The name a file is stored under: its last path segment, without control characters, cut
/// to [`MAX_NAME_CHARS`]; "attachment" when nothing is left.
pub fn clean_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !super::is_format_char(*c))
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        "attachment".to_owned()
    } else {
        cleaned.to_owned()
    }
}

impl Service {
    /// Starts an attachment to `sender`'s message `id` (a draft or a sent one, while it lasts).
    #[tracing::instrument(skip_all, fields(sender = %sender.id, message = %id))]
    pub async fn start_attachment(
        &self,
        sender: &User,
        id: Uuid,
        file_name: &str,
    ) -> Result<AttachmentUpload, MessageError> {
        let record = self.own_message(sender, id).await?;
        if self.stores.messages.attachments(id).await?.len() >= MAX_ATTACHMENTS {
            return Err(MessageError::TooManyAttachments);
        }
        let key = self.data_key(&record)?;
        let attachment_id = Uuid::new_v4();
        let name = clean_file_name(file_name);
        let started = self
            .stores
            .messages
            .insert_attachment(&NewAttachment {
                id: attachment_id,
                message_id: id,
                sealed_name: key.seal_name(attachment_id, &name)?,
                created_at: self.clock.now(),
            })
            .await?;
        if !started {
            return Err(MessageError::Gone(ErasedReason::Deleted));
        }
        Ok(AttachmentUpload {
            service: self.clone(),
            key,
            id: attachment_id,
            message_id: id,
            name,
            buffer: Vec::with_capacity(CHUNK_BYTES),
            size: 0,
            seq: 0,
            limit: self.settings.attachment_limit_bytes,
        })
    }
}

impl AttachmentUpload {
    /// Adds bytes. Past the size limit the upload is deleted and refused.
    pub async fn push(&mut self, bytes: &[u8]) -> Result<(), MessageError> {
        self.size += bytes.len() as u64;
        if self.size > self.limit {
            self.delete().await;
            return Err(MessageError::TooLarge { limit: self.limit });
        }
        self.buffer.extend_from_slice(bytes);
        // Only a chunk known not to be the last is written now: the last is sealed as such.
        while self.buffer.len() > CHUNK_BYTES {
            let rest = self.buffer.split_off(CHUNK_BYTES);
            let chunk = std::mem::replace(&mut self.buffer, rest);
            if let Err(error) = self.write(&chunk, false).await {
                self.delete().await;
                return Err(self.explain(error).await);
            }
        }
        Ok(())
    }

    /// Completes the upload; the attachment is listed from now on.
    pub async fn finish(mut self) -> Result<AttachmentInfo, MessageError> {
        let chunk = std::mem::take(&mut self.buffer);
        let finished = match self.write(&chunk, true).await {
            Ok(()) => {
                self.service
                    .stores
                    .messages
                    .finish_attachment(self.id, self.size, self.seq)
                    .await
            }
            Err(error) => {
                self.delete().await;
                return Err(self.explain(error).await);
            }
        };
        match finished {
            Ok(true) => {
                tracing::info!(attachment = %self.id, size = self.size, "attachment stored");
                Ok(AttachmentInfo {
                    id: self.id,
                    name: self.name,
                    size: self.size,
                })
            }
            Ok(false) => {
                self.delete().await;
                Err(MessageError::Gone(ErasedReason::Deleted))
            }
            Err(error) => {
                self.delete().await;
                Err(self.explain(error.into()).await)
            }
        }
    }

    /// A write that failed because the message was erased meanwhile (a delete or an expiry
    /// racing the upload) is that erasure (410), not a server error.
    async fn explain(&self, error: MessageError) -> MessageError {
        match self.service.stores.messages.message(self.message_id).await {
            Ok(Some(record)) => match record.erased {
                Some((reason, _)) => MessageError::Gone(reason),
                None => error,
            },
            _ => error,
        }
    }

    /// Gives the upload up (the request failed); its chunks are deleted.
    pub async fn abort(self) {
        self.delete().await;
    }

    async fn write(&mut self, chunk: &[u8], last: bool) -> Result<(), MessageError> {
        let sealed = self.key.seal_chunk(self.id, self.seq, last, chunk)?;
        self.service
            .stores
            .messages
            .insert_chunk(self.id, self.seq, &sealed)
            .await?;
        self.seq += 1;
        Ok(())
    }

    async fn delete(&self) {
        if let Err(error) = self
            .service
            .stores
            .messages
            .delete_attachment(self.id)
            .await
        {
            tracing::warn!(attachment = %self.id, error = %error, "could not delete a refused upload; the purge will");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clean_file_name;

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(clean_file_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(clean_file_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_file_name("a\r\nb.txt"), "ab.txt");
        assert_eq!(clean_file_name("inv\u{202E}fdp.exe"), "invfdp.exe");
        assert_eq!(clean_file_name(".."), "attachment");
        assert_eq!(clean_file_name(""), "attachment");
        assert_eq!(clean_file_name(&"x".repeat(500)).chars().count(), 200);
    }
}
