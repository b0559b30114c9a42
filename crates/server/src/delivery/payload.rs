//! The stored form of a queued message: the whole message (subject, text and HTML of an email;
//! the body of a text message) serialised as versioned JSON, then sealed under the master key.
//! Bodies carry one-time codes, so the database only ever holds the ciphertext.
//!
//! The sealing context names the delivery's id, channel and recipient: a ciphertext moved to
//! another row, or a row whose recipient was changed in the database, no longer opens, so
//! whoever can write the database cannot redirect a queued code to themselves.

use serde::{Deserialize, Serialize};
use twofold_core::delivery::{DeliveryChannel, EmailMessage, SmsMessage};
use twofold_core::email::Email;
use twofold_core::sealing::{SealError, Sealer};
use twofold_core::store::{Delivery, SealedSecret};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::html;

/// A message as it was queued, opened again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuedMessage {
    Email(EmailMessage),
    Sms(SmsMessage),
}

impl QueuedMessage {
    pub fn channel(&self) -> DeliveryChannel {
        match self {
            QueuedMessage::Email(_) => DeliveryChannel::Email,
            QueuedMessage::Sms(_) => DeliveryChannel::Sms,
        }
    }

    /// The email address, or the phone number in E.164.
    pub fn recipient(&self) -> &str {
        match self {
            QueuedMessage::Email(email) => email.to.as_str(),
            QueuedMessage::Sms(sms) => &sms.to,
        }
    }
}

/// The serialised payload. The tag carries the format's version: a later build that changes
/// the shape adds a variant and still opens what an older one queued.
#[derive(Serialize, Deserialize)]
#[serde(tag = "format", deny_unknown_fields)]
enum StoredPayload {
    #[serde(rename = "email/1")]
    Email {
        subject: String,
        text: String,
        html: String,
    },
    #[serde(rename = "sms/1")]
    Sms { body: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the queued message does not open: {0}")]
    Seal(#[from] SealError),
    #[error("the queued message does not parse: {0}")]
    Format(String),
}

/// The associated data that binds a sealed payload to its row (also used by `twofold keys
/// rotate` to re-seal it).
pub fn context(id: Uuid, channel: DeliveryChannel, recipient: &str) -> Vec<u8> {
    format!("twofold delivery v1\0{id}\0{channel}\0{recipient}").into_bytes()
}

/// Serialises and seals `message` for the delivery `id`. An email without an HTML part gets
/// one built from its text.
pub fn seal(
    sealer: &Sealer,
    id: Uuid,
    message: &QueuedMessage,
) -> Result<SealedSecret, PayloadError> {
    let stored = match message {
        QueuedMessage::Email(email) => StoredPayload::Email {
            subject: email.subject.clone(),
            text: email.text_body.clone(),
            html: email
                .html_body
                .clone()
                .unwrap_or_else(|| html::from_text(&email.subject, &email.text_body)),
        },
        QueuedMessage::Sms(sms) => StoredPayload::Sms {
            body: sms.body.clone(),
        },
    };
    let json = Zeroizing::new(
        serde_json::to_vec(&stored).map_err(|error| PayloadError::Format(error.to_string()))?,
    );
    let sealed = sealer.seal(&json, &context(id, message.channel(), message.recipient()))?;
    Ok(sealed)
}

/// Opens a claimed delivery. Fails when the payload was sealed for another row or recipient,
/// under a key that is not loaded, or in a format this build does not know.
pub fn open(sealer: &Sealer, delivery: &Delivery) -> Result<QueuedMessage, PayloadError> {
    let json = sealer.open(
        &delivery.payload,
        &context(delivery.id, delivery.channel, &delivery.recipient),
    )?;
    // The error of a failed parse may quote the input; only its position is kept.
    let stored: StoredPayload = serde_json::from_slice(&json).map_err(|error| {
        PayloadError::Format(format!(
            "line {} column {} ({:?})",
            error.line(),
            error.column(),
            error.classify()
        ))
    })?;
    match (stored, delivery.channel) {
        (
            StoredPayload::Email {
                subject,
                text,
                html,
            },
            DeliveryChannel::Email,
        ) => {
            let to = Email::parse(&delivery.recipient).map_err(|_| {
                PayloadError::Format("the recipient is not an email address".to_owned())
            })?;
            Ok(QueuedMessage::Email(EmailMessage {
                to,
                subject,
                text_body: text,
                html_body: Some(html),
            }))
        }
        (StoredPayload::Sms { body }, DeliveryChannel::Sms) => Ok(QueuedMessage::Sms(SmsMessage {
            to: delivery.recipient.clone(),
            body,
        })),
        _ => Err(PayloadError::Format(
            "the payload's format does not match the delivery's channel".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use twofold_core::sealing::MasterKey;

    fn sealer() -> Sealer {
        Sealer::new(MasterKey::new(&Zeroizing::new([7; 32])))
    }

    fn email() -> QueuedMessage {
        QueuedMessage::Email(EmailMessage {
            to: Email::parse("bob@example.com").unwrap(),
            subject: "Your code".into(),
            text_body: "Your code is:\n\n123456\n".into(),
            html_body: None,
        })
    }

    fn delivery(id: Uuid, message: &QueuedMessage, payload: SealedSecret) -> Delivery {
        Delivery {
            id,
            channel: message.channel(),
            recipient: message.recipient().to_owned(),
            payload,
            attempts: 0,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_sealed_email_opens_with_its_html_and_hides_the_code() {
        let sealer = sealer();
        let id = Uuid::new_v4();
        let message = email();
        let sealed = seal(&sealer, id, &message).unwrap();
        assert!(
            !sealed
                .ciphertext
                .windows(6)
                .any(|window| window == b"123456")
        );
        let QueuedMessage::Email(opened) = open(&sealer, &delivery(id, &message, sealed)).unwrap()
        else {
            panic!("not an email")
        };
        assert_eq!(opened.subject, "Your code");
        assert_eq!(opened.text_body, "Your code is:\n\n123456\n");
        assert!(opened.html_body.unwrap().contains("<code>123456</code>"));
    }

    #[test]
    fn a_payload_does_not_open_for_another_row_or_recipient() {
        let sealer = sealer();
        let id = Uuid::new_v4();
        let message = QueuedMessage::Sms(SmsMessage {
            to: "+441212345678".into(),
            body: "Code 123456".into(),
        });
        let sealed = seal(&sealer, id, &message).unwrap();
        let mut moved = delivery(Uuid::new_v4(), &message, sealed.clone());
        assert!(matches!(open(&sealer, &moved), Err(PayloadError::Seal(_))));
        moved.id = id;
        moved.recipient = "+441200000000".into();
        assert!(matches!(open(&sealer, &moved), Err(PayloadError::Seal(_))));
        moved.recipient = "+441212345678".into();
        assert_eq!(open(&sealer, &moved).unwrap(), message);
    }
}
