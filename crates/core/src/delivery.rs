//! What the domain hands to the outside world to deliver: emails and text messages. The server
//! crate implements the senders (the outbox directory by default; SMTP and an SMS gateway are
//! configured instead when set).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::email::Email;

/// An email to send. `text_body` is always present; one-time codes stand alone on their line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    pub to: Email,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
}

/// A text message to a phone number in E.164 form (`+441212345678`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    pub to: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[error("delivery failed: {0}")]
pub struct DeliveryError(#[from] pub anyhow::Error);

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Returns once the message is durably handed over (written to the outbox, or accepted by
    /// the next hop).
    async fn send_email(
        &self,
        message: &EmailMessage,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError>;
}

#[async_trait]
pub trait SmsSender: Send + Sync {
    async fn send_sms(
        &self,
        message: &SmsMessage,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError>;
}
