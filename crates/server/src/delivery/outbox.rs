//! The outbox: each message is one JSON file `$TWOFOLD_DATA_DIR/outbox/<time>-<id>.json`
//! (contract format). A file is written under a temporary name, fsync'd, renamed into place and
//! the directory fsync'd, so a message acknowledged as sent is whole and survives a crash.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use twofold_core::delivery::{DeliveryError, EmailMessage, Mailer, SmsMessage, SmsSender};

#[derive(Debug, Clone)]
pub struct Outbox {
    directory: PathBuf,
}

#[derive(Serialize)]
struct OutboxFile<'a> {
    channel: &'a str,
    to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    body: &'a str,
    created_at: String,
}

impl Outbox {
    /// Uses (and creates) `directory`.
    pub fn open(directory: impl Into<PathBuf>) -> std::io::Result<Outbox> {
        let directory = directory.into();
        std::fs::create_dir_all(&directory)?;
        Ok(Outbox { directory })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    async fn write(&self, file: OutboxFile<'_>, now: OffsetDateTime) -> Result<(), DeliveryError> {
        let json = serde_json::to_vec_pretty(&file).map_err(anyhow::Error::new)?;
        let name = format!(
            "{}-{}.json",
            now.format(&time::macros::format_description!(
                "[year][month][day]T[hour][minute][second].[subsecond digits:6]Z"
            ))
            .map_err(anyhow::Error::new)?,
            uuid::Uuid::new_v4().simple()
        );
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || write_durably(&directory, &name, &json))
            .await
            .map_err(anyhow::Error::new)?
            .map_err(|error| {
                DeliveryError(anyhow::Error::new(error).context("writing to the outbox"))
            })
    }
}

fn write_durably(directory: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let temporary = directory.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, directory.join(name))?;
    std::fs::File::open(directory)?.sync_all()
}

#[async_trait]
impl Mailer for Outbox {
    async fn send_email(
        &self,
        message: &EmailMessage,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        let created_at = now.format(&Rfc3339).map_err(anyhow::Error::new)?;
        let file = OutboxFile {
            channel: "email",
            to: message.to.as_str(),
            subject: Some(&message.subject),
            body: &message.text_body,
            created_at,
        };
        self.write(file, now).await
    }
}

#[async_trait]
impl SmsSender for Outbox {
    async fn send_sms(
        &self,
        message: &SmsMessage,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        let created_at = now.format(&Rfc3339).map_err(anyhow::Error::new)?;
        let file = OutboxFile {
            channel: "sms",
            to: &message.to,
            subject: None,
            body: &message.body,
            created_at,
        };
        self.write(file, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_core::email::Email;

    #[tokio::test]
    async fn messages_land_as_contract_json_files() {
        let directory = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(directory.path().join("outbox")).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let email = EmailMessage {
            to: Email::parse("bob@example.com").unwrap(),
            subject: "Your code".into(),
            text_body: "Your code is:\n\n123456\n".into(),
            html_body: None,
        };
        outbox.send_email(&email, now).await.unwrap();
        outbox
            .send_sms(
                &SmsMessage {
                    to: "+441212345678".into(),
                    body: "Code 654321".into(),
                },
                now,
            )
            .await
            .unwrap();

        let mut files: Vec<_> = std::fs::read_dir(outbox.directory())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "no temporary files are left behind");
        let mut seen = Vec::new();
        for path in files {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(
                name.starts_with("20270115T") && name.ends_with(".json"),
                "{name}"
            );
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(value["created_at"], "2027-01-15T08:00:00Z");
            seen.push(value);
        }
        let email_file = seen
            .iter()
            .find(|value| value["channel"] == "email")
            .unwrap();
        assert_eq!(email_file["to"], "bob@example.com");
        assert_eq!(email_file["subject"], "Your code");
        assert!(email_file["body"].as_str().unwrap().contains("\n123456\n"));
        let sms_file = seen.iter().find(|value| value["channel"] == "sms").unwrap();
        assert_eq!(sms_file["to"], "+441212345678");
        assert!(sms_file.get("subject").is_none());
    }
}
