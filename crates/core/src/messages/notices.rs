//! The emails of secure messages: the recipient's notification (sender, subject and a link —
//! never the body, the attachments or their names) and the sender's read receipt.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use uuid::Uuid;

use super::MessageError;
use crate::delivery::EmailMessage;
use crate::notices::wrap;
use crate::service::Service;
use crate::user::User;

/// The link to a message, with the invitation token when there is one.
pub(crate) fn message_link(public_url: &str, id: Uuid, invitation: Option<&str>) -> String {
    match invitation {
        Some(token) => format!("{public_url}/messages/{id}?invitation={token}"),
        None => format!("{public_url}/messages/{id}"),
    }
}

fn date(at: OffsetDateTime) -> String {
    at.format(&Rfc2822).unwrap_or_else(|_| at.to_string())
}

impl Service {
    /// Emails the recipient that a message waits for them. `created`: the recipient's account
    /// was made for this message, and whether their link starts at choosing a password
    /// (`None`: an existing account, invited only if a message made it and it is not taken up).
    pub(super) async fn notify_recipient(
        &self,
        sender: &User,
        recipient: &User,
        id: Uuid,
        subject: &str,
        created: Option<bool>,
    ) -> Result<(), MessageError> {
        let choose_password = created.unwrap_or(true);
        let invitation = self
            .invitation_for(recipient, id, choose_password, created.is_some())
            .await?;
        let expires_at = self
            .stores
            .messages
            .message(id)
            .await?
            .map(|record| record.expires_at)
            .ok_or(MessageError::NotFound)?;
        let link = message_link(&self.settings.public_url, id, invitation.as_deref());
        let sender_email = sender.email.as_str();
        let how = match (&invitation, choose_password) {
            (Some(_), true) => {
                "An account was made for you to read it. Open the link to choose a password \
                 and set up two-step sign-in (an authenticator app, text messages or email \
                 codes); the message is shown after that."
            }
            (Some(_), false) => {
                "Open the link to set up two-step sign-in (an authenticator app, text messages \
                 or email codes); the message is shown after that."
            }
            (None, _) => {
                "Open the link and sign in with your password and your second factor to read it."
            }
        };
        let text = format!(
            "{sender_email} sent you a secure message: \"{subject}\"\n\n{how}\n{link}\n\n\
             The message can be read until {until}. Its contents are never sent by email.\n\n\
             If you did not expect this, you can ignore this email.\n",
            until = date(expires_at),
        );
        let message = EmailMessage {
            to: recipient.email.clone(),
            subject: format!("Secure message from {sender_email}: {subject}"),
            text_body: wrap(&text),
            html_body: None,
        };
        self.senders
            .mailer
            .send_email(&message, self.clock.now())
            .await?;
        Ok(())
    }

    /// Tells the sender their message was opened. What it reports has happened already, so a
    /// failure to queue it is logged, not returned.
    pub(super) async fn send_read_receipt(
        &self,
        sender: &User,
        recipient_email: &str,
        subject: &str,
        read_at: OffsetDateTime,
    ) {
        let text = format!(
            "{recipient_email} opened your secure message \"{subject}\" on {at}.\n",
            at = date(read_at),
        );
        let message = EmailMessage {
            to: sender.email.clone(),
            subject: format!("Read: {subject}"),
            text_body: wrap(&text),
            html_body: None,
        };
        if let Err(error) = self
            .senders
            .mailer
            .send_email(&message, self.clock.now())
            .await
        {
            tracing::error!(user_id = %sender.id, error = %error, "could not queue a read receipt");
        }
    }
}
