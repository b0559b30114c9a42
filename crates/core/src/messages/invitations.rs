//! Recipients who cannot sign in yet. An address without an account gets one (required to
//! use two-factor authentication, with an unusable random password), and the link in its
//! email carries a single-use token: SHA-256 of 256 random bits is stored, never the token.
//! Using the link starts a session at "choose a password" (then enrollment, then the message);
//! when the message itself carries the temporary password (an administrator created the
//! account, [`Service::create_account_by_message`]) it starts at enrollment instead.
//!
//! The link works only while the account has never been signed in to: once someone has
//! chosen a password, the mailbox alone no longer opens the account.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{MessageDraft, MessageError};
use crate::accounts::{AccountError, NewAccount};
use crate::audit::{Event, EventKind};
use crate::email::Email;
use crate::login::{LoginStep, methods_for, state_after_password};
use crate::service::Service;
use crate::session::{SessionState, SessionToken};
use crate::store::{NewInvitation, NewSession};
use crate::user::User;

/// What the invitation link's page shows before it is used.
#[derive(Debug, Clone)]
pub struct InvitationView {
    pub email: Email,
    pub message_id: Uuid,
    pub choose_password: bool,
}

/// An account an administrator created and whose temporary password went to its owner as a
/// secure message (never to the administrator).
#[derive(Debug, Clone)]
pub struct MessagedAccount {
    pub user: User,
    pub message_id: Uuid,
}

/// Whether `user` can only get in through an invitation link: they have never signed in and
/// still hold a password nobody chose.
pub(crate) fn invitable(user: &User) -> bool {
    user.password_change_required && user.last_login_at.is_none() && !user.disabled
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::new_with_prefix(b"twofold invitation\0")
        .chain_update(token.as_bytes())
        .finalize()
        .into()
}

/// A well-formed token: 32 bytes, base64url without padding.
fn parse_token(token: &str) -> Option<&str> {
    URL_SAFE_NO_PAD
        .decode(token)
        .is_ok_and(|bytes| bytes.len() == 32)
        .then_some(token)
}

impl Service {
    /// The recipient's account, made (invited) when the address has none. `true` when made now.
    pub(super) async fn recipient_for(
        &self,
        sender: &User,
        email: &Email,
    ) -> Result<(User, bool), MessageError> {
        if let Some(user) = self.stores.users.user_by_email(email).await? {
            // Making an account costs a hash; an existing one costs the same, so the time of
            // the answer does not say which addresses have accounts.
            let filler = SecretString::from("twofold timing filler".to_owned());
            self.hasher
                .verify_dummy(&filler)
                .await
                .map_err(|error| MessageError::from(crate::accounts::AccountError::from(error)))?;
            return Ok((user, false));
        }
        let created = self
            .insert_account(
                Some(sender.id),
                NewAccount {
                    email: email.as_str(),
                    password: None,
                    is_admin: false,
                    require_2fa: true,
                },
            )
            .await;
        match created {
            // The generated password is dropped unseen: the invitation link replaces it.
            Ok(created) => Ok((created.user, true)),
            // Another message invited the same address at the same moment.
            Err(AccountError::EmailTaken) => {
                let user = self
                    .stores
                    .users
                    .user_by_email(email)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("an account vanished while invited"))?;
                Ok((user, false))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// A new invitation token for `recipient` to open `message_id`, valid until the message
    /// expires; `None` when the recipient can sign in by themselves. Only a person whose
    /// account a message made (`created_now`, or holding a live invitation from such a
    /// message) is invited: an account an administrator made and handed a temporary password
    /// for is never opened by a link, so a mailbox alone never takes it over.
    pub(super) async fn invitation_for(
        &self,
        recipient: &User,
        message_id: Uuid,
        choose_password: bool,
        created_now: bool,
    ) -> Result<Option<String>, MessageError> {
        if !invitable(recipient) {
            return Ok(None);
        }
        if !created_now
            && !self
                .stores
                .messages
                .has_live_invitation(recipient.id, self.clock.now())
                .await?
        {
            return Ok(None);
        }
        let record = self
            .stores
            .messages
            .message(message_id)
            .await?
            .ok_or(MessageError::NotFound)?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness: {error}"))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        self.stores
            .messages
            .insert_invitation(&NewInvitation {
                token_hash: token_hash(&token),
                user_id: recipient.id,
                message_id,
                choose_password,
                expires_at: record.expires_at,
            })
            .await?;
        Ok(Some(token))
    }

    /// The invitation behind a link, without using it (the page shows whose it is).
    pub async fn invitation(&self, token: &str) -> Result<InvitationView, MessageError> {
        let token = parse_token(token).ok_or(MessageError::InvitationInvalid)?;
        let invitation = self
            .stores
            .messages
            .invitation(&token_hash(token), self.clock.now())
            .await?
            .ok_or(MessageError::InvitationInvalid)?;
        let user = self.user_by_id(invitation.user_id).await?;
        if !invitable(&user) {
            return Err(MessageError::InvitationInvalid);
        }
        Ok(InvitationView {
            email: user.email,
            message_id: invitation.message_id,
            choose_password: invitation.choose_password,
        })
    }

    /// Uses an invitation link (once; every other link of the same person stops working) and
    /// starts a session at its first step. The address is verified: the link reached it.
    #[tracing::instrument(skip_all)]
    pub async fn accept_invitation(&self, token: &str) -> Result<(LoginStep, Uuid), MessageError> {
        let token = parse_token(token).ok_or(MessageError::InvitationInvalid)?;
        let now = self.clock.now();
        let invitation = self
            .stores
            .messages
            .take_invitation(&token_hash(token), now)
            .await?
            .ok_or(MessageError::InvitationInvalid)?;
        let mut user = self.user_by_id(invitation.user_id).await?;
        if !invitable(&user) {
            return Err(MessageError::InvitationInvalid);
        }
        self.audit(
            Event::own(EventKind::InvitationAccepted, user.id)
                .with("message_id", invitation.message_id.to_string()),
        )
        .await?;
        if !user.email_verified {
            self.stores.users.set_email_verified(user.id, now).await?;
            user.email_verified = true;
        }
        let policy = self.policy().await?;
        let (enrolled, _) = self.factors_at_sign_in(&user, &policy).await?;
        let state = if invitation.choose_password {
            SessionState::PasswordChangeRequired
        } else {
            // The message carries the password; the second factor comes before it is shown.
            let mut chosen = user.clone();
            chosen.password_change_required = false;
            state_after_password(&chosen, &enrolled, true)
        };
        let session = SessionToken::generate().map_err(anyhow::Error::new)?;
        self.stores
            .sessions
            .insert_session(&NewSession {
                id_hash: session.id_hash(),
                user_id: user.id,
                state,
                created_at: now,
            })
            .await?;
        tracing::info!(user_id = %user.id, state = %state, "invitation accepted");
        Ok((
            LoginStep {
                token: session,
                state,
                methods: methods_for(state, enrolled, &policy),
            },
            invitation.message_id,
        ))
    }

    /// Creates an account for `admin` and sends its temporary password to the new user as a
    /// secure message, in one step: the administrator never sees the password. The message's
    /// link lets the new user in to enroll a second factor, then shows the password.
    #[tracing::instrument(skip_all)]
    pub async fn create_account_by_message(
        &self,
        admin: &User,
        account: NewAccount<'_>,
        expires_in_days: Option<u32>,
    ) -> Result<MessagedAccount, MessageError> {
        let email = Email::parse(account.email)?;
        self.admit_messages(admin, 1).await?;
        let created = self
            .insert_account(
                Some(admin.id),
                NewAccount {
                    password: None,
                    ..account
                },
            )
            .await?;
        let password = created
            .temporary_password
            .ok_or_else(|| anyhow::anyhow!("a created account has no temporary password"))?;
        let body = temporary_password_body(&self.settings.public_url, &email, &password);
        let to = [email.as_str().to_owned()];
        let draft = MessageDraft {
            to: &to,
            subject: "Your temporary password",
            body: &body,
            expires_in_days,
            delete_after_read: false,
            send: false,
        };
        let checked = super::check_draft(&draft)?;
        let id = self
            .store_message(admin, &created.user, &checked, false, true)
            .await?;
        self.notify_recipient(admin, &created.user, id, &checked.subject, Some(false))
            .await?;
        tracing::info!(user_id = %created.user.id, message = %id, "account created, password sent as a secure message");
        Ok(MessagedAccount {
            user: created.user,
            message_id: id,
        })
    }
}

fn temporary_password_body(public_url: &str, email: &Email, password: &SecretString) -> String {
    format!(
        "An account was made for you.\n\n\
         Email address: {email}\n\
         Temporary password: {password}\n\n\
         Sign in at {public_url}/login with this address and password from now on. At your \
         next sign-in you will choose a password of your own; this one then stops working.",
        email = email.as_str(),
        password = password.expose_secret(),
    )
}
