//! What the delivery worker hands a message to: an [`EmailTransport`] (SMTP, or the outbox)
//! and an [`SmsTransport`] (the HTTP gateway, or the outbox), and how they report failure.

use async_trait::async_trait;
use time::OffsetDateTime;
use twofold_core::delivery::{DeliveryChannel, EmailMessage, Mailer, SmsMessage, SmsSender};
use uuid::Uuid;

use super::outbox::Outbox;

/// Why a transport did not take a message. The difference decides the retry: a
/// [`TransportError::Permanent`] failure (the recipient or the message was refused) is given
/// up at once, anything else is tried again later.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0:#}")]
    Retry(anyhow::Error),
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl TransportError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, TransportError::Permanent(_))
    }
}

#[async_trait]
pub trait EmailTransport: Send + Sync {
    /// Hands the message to the next hop. `delivery_id` is stable across retries (it names the
    /// message, e.g. in its Message-ID) and `created_at` is when it was first accepted.
    async fn send_email(
        &self,
        delivery_id: Uuid,
        message: &EmailMessage,
        created_at: OffsetDateTime,
    ) -> Result<(), TransportError>;
}

#[async_trait]
pub trait SmsTransport: Send + Sync {
    /// Hands the message to the gateway; the arguments are as for [`EmailTransport`].
    async fn send_sms(
        &self,
        delivery_id: Uuid,
        message: &SmsMessage,
        created_at: OffsetDateTime,
    ) -> Result<(), TransportError>;
}

/// A queued message whose channel has no transport configured any more (SMTP or the gateway
/// was removed from the configuration) goes to the outbox, where the contract puts it anyway.
#[async_trait]
impl EmailTransport for Outbox {
    async fn send_email(
        &self,
        _delivery_id: Uuid,
        message: &EmailMessage,
        created_at: OffsetDateTime,
    ) -> Result<(), TransportError> {
        Mailer::send_email(self, message, created_at)
            .await
            .map_err(|error| TransportError::Retry(error.0))
    }
}

#[async_trait]
impl SmsTransport for Outbox {
    async fn send_sms(
        &self,
        _delivery_id: Uuid,
        message: &SmsMessage,
        created_at: OffsetDateTime,
    ) -> Result<(), TransportError> {
        SmsSender::send_sms(self, message, created_at)
            .await
            .map_err(|error| TransportError::Retry(error.0))
    }
}

/// A recipient as logs may show it: the domain of an address, the last two digits of a phone
/// number. Enough to tell deliveries apart while debugging, too little to identify a person.
pub fn redacted_recipient(channel: DeliveryChannel, recipient: &str) -> String {
    match channel {
        DeliveryChannel::Email => match recipient.rsplit_once('@') {
            Some((_, domain)) => format!("…@{domain}"),
            None => "…".to_owned(),
        },
        DeliveryChannel::Sms => {
            let digits: Vec<char> = recipient.chars().filter(char::is_ascii_digit).collect();
            let last_two: String = digits[digits.len().saturating_sub(2)..].iter().collect();
            format!("…{last_two}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_redacted_to_a_domain_or_two_digits() {
        assert_eq!(
            redacted_recipient(DeliveryChannel::Email, "bob@example.com"),
            "…@example.com"
        );
        assert_eq!(
            redacted_recipient(DeliveryChannel::Sms, "+441212345678"),
            "…78"
        );
        assert_eq!(redacted_recipient(DeliveryChannel::Sms, "7"), "…7");
        assert_eq!(redacted_recipient(DeliveryChannel::Email, "nobody"), "…");
    }
}
