//! A signed-in user changes their own password (OWASP ASVS 5.0 6.2.2, 6.2.3): the current
//! password first (the re-entry check of [`Service::check_password`], with its throttling),
//! then the rules for new passwords. The new hash replaces the old one by compare-and-swap, every
//! other session of the user ends, this session moves on under a new token, the change is
//! recorded, and the owner is emailed.

use secrecy::SecretString;

use crate::audit::{Event, EventKind};
use crate::factors::FactorError;
use crate::hasher::HashError;
use crate::login::{ActiveSession, LoginError};
use crate::notices::Notice;
use crate::password::{NewPassword, WeakPassword};
use crate::service::Service;
use crate::session::{SessionState, SessionToken};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    /// The current password was wrong, the re-entry check is throttled, or the server is busy.
    #[error(transparent)]
    Reentry(#[from] FactorError),
    #[error(transparent)]
    WeakPassword(#[from] WeakPassword),
    /// The new password is the current one.
    #[error("the new password must differ from the current one")]
    SameAsCurrent,
    /// The session ended (or was rotated) meanwhile.
    #[error(transparent)]
    Session(#[from] LoginError),
}

impl From<StoreError> for PasswordChangeError {
    fn from(error: StoreError) -> Self {
        PasswordChangeError::Reentry(error.into())
    }
}

impl From<HashError> for PasswordChangeError {
    fn from(error: HashError) -> Self {
        PasswordChangeError::Reentry(error.into())
    }
}

/// A changed password: the session's new token and how many other sessions ended.
#[derive(Debug)]
pub struct PasswordChanged {
    pub token: SessionToken,
    pub sessions_ended: u64,
}

impl Service {
    /// Replaces the password of a fully signed-in user who gave the current one. Ends their
    /// other sessions and rotates this one.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn change_password(
        &self,
        session: &ActiveSession,
        current_password: &SecretString,
        new_password: &SecretString,
    ) -> Result<PasswordChanged, PasswordChangeError> {
        if session.state != SessionState::Authenticated {
            return Err(LoginError::SessionEnded.into());
        }
        let user = &session.user;
        self.check_password(user, current_password).await?;
        let new_password = NewPassword::parse(new_password, &user.email)?;
        if self
            .hasher
            .verify(new_password.secret(), &user.password_hash)
            .await?
            .matches
        {
            return Err(PasswordChangeError::SameAsCurrent);
        }
        let hash = self.hasher.hash(new_password.secret()).await?;
        let now = self.clock.now();
        // Only over the hash the current password was checked against: a change made meanwhile
        // (another session, an administrator) wins, and this one must be retried with it.
        if !self
            .stores
            .users
            .set_password(user.id, &user.password_hash, &hash, false, now)
            .await?
        {
            return Err(FactorError::InvalidPassword.into());
        }
        let sessions_ended = self
            .stores
            .sessions
            .delete_user_sessions(user.id, Some(&session.id_hash))
            .await?;
        self.audit(
            Event::own(EventKind::PasswordChanged, user.id).with("sessions_ended", sessions_ended),
        )
        .await?;
        let token = self
            .rotate(session, SessionState::Authenticated, now)
            .await?;
        self.notify(user, Notice::PasswordChanged).await;
        tracing::info!(sessions_ended, "password changed");
        Ok(PasswordChanged {
            token,
            sessions_ended,
        })
    }
}
