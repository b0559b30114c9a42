//! The login state machine: password, then (as the account requires) a new password, a second
//! factor or enrollment of one, until `authenticated`. Each step rotates the session token.

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::email::Email;
use crate::hasher::HashError;
use crate::password::{LoginPassword, NewPassword, WeakPassword};
use crate::service::Service;
use crate::session::{SessionIdHash, SessionRecord, SessionState, SessionToken};
use crate::store::{NewSession, StoreError};
use crate::user::{Method, User};

/// Activity is written back at most this often (or a tenth of the idle timeout, if shorter), so
/// that reads stay reads; a session may therefore end up to this much before its idle timeout.
const TOUCH_GRANULARITY_SECONDS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email or wrong password: one error for both, so neither is revealed.
    #[error("the email or password is not right")]
    InvalidCredentials,
    #[error(transparent)]
    WeakPassword(#[from] WeakPassword),
    /// The session was rotated, expired or ended by another request meanwhile.
    #[error("the session has ended; sign in again")]
    SessionEnded,
    #[error("the server is busy; try again shortly")]
    Overloaded,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for LoginError {
    fn from(error: StoreError) -> Self {
        LoginError::Unexpected(anyhow::Error::new(error))
    }
}

impl From<HashError> for LoginError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Overloaded => LoginError::Overloaded,
            other => LoginError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// Where a login stands after a step, with the token of the (new) session.
#[derive(Debug)]
pub struct LoginStep {
    pub token: SessionToken,
    pub state: SessionState,
    /// For `second_factor`: the enrolled methods; for `enrollment_required`: the allowed ones.
    pub methods: Vec<Method>,
}

/// A live session with its user, as resolved from a cookie.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub id_hash: SessionIdHash,
    pub user: User,
    pub state: SessionState,
    pub created_at: OffsetDateTime,
}

/// The state a login reaches once the password is right.
pub fn state_after_password(user: &User, enrolled: &[Method]) -> SessionState {
    if user.password_change_required {
        SessionState::PasswordChangeRequired
    } else if !enrolled.is_empty() {
        SessionState::SecondFactor
    } else if user.two_factor_required() {
        SessionState::EnrollmentRequired
    } else {
        SessionState::Authenticated
    }
}

impl Service {
    /// Checks an email and password and starts a session in the state the account calls for.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<LoginStep, LoginError> {
        let Some(password) = LoginPassword::parse(password) else {
            return Err(LoginError::InvalidCredentials);
        };
        let user = match Email::parse(email) {
            Ok(email) => self.stores.users.user_by_email(&email).await?,
            Err(_) => None,
        };
        let Some(user) = user else {
            // Spend the same time as a real check so timing does not reveal who has an account.
            self.hasher.verify_dummy(password.secret()).await?;
            tracing::info!("login for an address without an account");
            return Err(LoginError::InvalidCredentials);
        };
        let verification = self
            .hasher
            .verify(password.secret(), &user.password_hash)
            .await?;
        if !verification.matches || user.disabled {
            tracing::info!(user_id = %user.id, "password rejected");
            return Err(LoginError::InvalidCredentials);
        }
        if verification.needs_rehash {
            self.rehash(&user, password.secret()).await;
        }
        let enrolled = self.enrolled_methods(&user).await?;
        let state = state_after_password(&user, &enrolled);
        let token = SessionToken::generate().map_err(anyhow::Error::new)?;
        let now = self.clock.now();
        self.stores
            .sessions
            .insert_session(&NewSession {
                id_hash: token.id_hash(),
                user_id: user.id,
                state,
                created_at: now,
            })
            .await?;
        if state == SessionState::Authenticated {
            self.stores.users.record_login(user.id, now).await?;
        }
        tracing::info!(user_id = %user.id, state = %state, "password accepted");
        Ok(LoginStep {
            token,
            state,
            methods: self.methods_for(state, enrolled),
        })
    }

    /// In `password_change_required`: replaces the temporary password, ends the user's other
    /// sessions and moves this one on under a new token.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn change_temporary_password(
        &self,
        session: &ActiveSession,
        new_password: &SecretString,
    ) -> Result<LoginStep, LoginError> {
        if session.state != SessionState::PasswordChangeRequired {
            return Err(LoginError::SessionEnded);
        }
        let user = &session.user;
        let new_password = NewPassword::parse(new_password, &user.email)?;
        if self
            .hasher
            .verify(new_password.secret(), &user.password_hash)
            .await?
            .matches
        {
            return Err(WeakPassword::Unchanged.into());
        }
        let hash = self.hasher.hash(new_password.secret()).await?;
        let now = self.clock.now();
        if !self
            .stores
            .users
            .set_password(user.id, &user.password_hash, &hash, false, now)
            .await?
        {
            return Err(LoginError::SessionEnded);
        }
        self.stores
            .sessions
            .delete_user_sessions(user.id, Some(&session.id_hash))
            .await?;
        let mut updated = user.clone();
        updated.password_change_required = false;
        let enrolled = self.enrolled_methods(&updated).await?;
        let state = state_after_password(&updated, &enrolled);
        let token = self.rotate(session, state, now).await?;
        if state == SessionState::Authenticated {
            self.stores.users.record_login(user.id, now).await?;
        }
        tracing::info!(state = %state, "temporary password replaced");
        Ok(LoginStep {
            token,
            state,
            methods: self.methods_for(state, enrolled),
        })
    }

    /// Resolves a cookie to a live session, ending it when it has timed out or its user can no
    /// longer sign in. `None` for anything that is not a live session.
    pub async fn resolve_session(
        &self,
        token: &SessionToken,
    ) -> Result<Option<ActiveSession>, LoginError> {
        let id_hash = token.id_hash();
        let Some(record) = self.stores.sessions.session_by_id_hash(&id_hash).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if self.has_expired(&record, now) {
            self.stores.sessions.delete_session(&id_hash).await?;
            return Ok(None);
        }
        let user = match self.stores.users.user_by_id(record.user_id).await? {
            Some(user) if !user.disabled => user,
            _ => {
                self.stores.sessions.delete_session(&id_hash).await?;
                return Ok(None);
            }
        };
        // An unfinished enrollment from before the user enrolled a factor elsewhere must not
        // become a way around that factor.
        if record.state == SessionState::EnrollmentRequired
            && !self.enrolled_methods(&user).await?.is_empty()
        {
            self.stores.sessions.delete_session(&id_hash).await?;
            return Ok(None);
        }
        let granularity =
            TOUCH_GRANULARITY_SECONDS.min(self.settings.session_idle_timeout.whole_seconds() / 10);
        if (now - record.last_seen_at).whole_seconds() >= granularity {
            self.stores.sessions.touch_session(&id_hash, now).await?;
        }
        Ok(Some(ActiveSession {
            id_hash,
            user,
            state: record.state,
            created_at: record.created_at,
        }))
    }

    /// Ends a session (logout). Ending one that is already gone is not an error.
    pub async fn logout(&self, id_hash: &SessionIdHash) -> Result<(), LoginError> {
        self.stores.sessions.delete_session(id_hash).await?;
        Ok(())
    }

    /// Deletes every session past its idle or absolute timeout; run periodically.
    pub async fn purge_expired_sessions(&self) -> Result<u64, LoginError> {
        let now = self.clock.now();
        let idle_before = now - self.settings.session_idle_timeout;
        let created_before = now - self.settings.session_absolute_timeout;
        Ok(self
            .stores
            .sessions
            .delete_expired_sessions(idle_before, created_before)
            .await?)
    }

    /// The second factors the user can sign in with (an active authenticator, a verified
    /// phone, email codes, unused recovery codes). Recovery codes count only beside another
    /// factor: alone they do not make 2FA enabled; see [`crate::user::TwoFactorStatus`].
    pub async fn enrolled_methods(&self, user: &User) -> Result<Vec<Method>, LoginError> {
        let mut methods = Vec::new();
        if self.stores.factors.active_totp(user.id).await?.is_some() {
            methods.push(Method::Totp);
        }
        if self.stores.factors.phone_factor(user.id).await?.is_some() {
            methods.push(Method::Sms);
        }
        if self.stores.factors.email_factor(user.id).await?.is_some() {
            methods.push(Method::Email);
        }
        if !methods.is_empty() && self.stores.factors.recovery_codes_left(user.id).await? > 0 {
            methods.push(Method::RecoveryCode);
        }
        Ok(methods)
    }

    fn methods_for(&self, state: SessionState, enrolled: Vec<Method>) -> Vec<Method> {
        match state {
            SessionState::SecondFactor => enrolled,
            SessionState::EnrollmentRequired => self.settings.allowed_methods.clone(),
            SessionState::PasswordChangeRequired | SessionState::Authenticated => Vec::new(),
        }
    }

    fn has_expired(&self, record: &SessionRecord, now: OffsetDateTime) -> bool {
        let idle_limit = if record.state == SessionState::Authenticated {
            self.settings.session_idle_timeout
        } else {
            self.settings
                .login_step_timeout
                .min(self.settings.session_idle_timeout)
        };
        now - record.last_seen_at > idle_limit
            || now - record.created_at > self.settings.session_absolute_timeout
    }

    /// Moves the session to `state` under a fresh token; fails if another request moved it first.
    pub(crate) async fn rotate(
        &self,
        session: &ActiveSession,
        state: SessionState,
        now: OffsetDateTime,
    ) -> Result<SessionToken, LoginError> {
        let token = SessionToken::generate().map_err(anyhow::Error::new)?;
        let rotated = self
            .stores
            .sessions
            .rotate_session(
                &session.id_hash,
                session.state,
                &token.id_hash(),
                state,
                now,
            )
            .await?;
        if rotated {
            Ok(token)
        } else {
            Err(LoginError::SessionEnded)
        }
    }

    /// Upgrades a hash made with weaker parameters. A failure here must not fail the login the
    /// user just passed, so it is logged and left for the next login.
    async fn rehash(&self, user: &User, password: &SecretString) {
        let outcome = match self.hasher.hash(password).await {
            Ok(hash) => self
                .stores
                .users
                .replace_password_hash(user.id, &user.password_hash, &hash)
                .await
                .map(|_| ())
                .map_err(anyhow::Error::new),
            Err(error) => Err(anyhow::Error::new(error)),
        };
        if let Err(error) = outcome {
            tracing::warn!(user_id = %user.id, error = %error, "could not upgrade the password hash");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserId;

    fn user(password_change_required: bool, require_2fa: bool, is_admin: bool) -> User {
        User {
            id: UserId::random(),
            email: Email::parse("alice@example.com").unwrap(),
            password_hash: String::new(),
            password_change_required,
            is_admin,
            require_2fa,
            email_verified: false,
            disabled: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_login_at: None,
        }
    }

    #[test]
    fn the_state_machine_after_the_password() {
        assert_eq!(
            state_after_password(&user(true, true, true), &[Method::Totp]),
            SessionState::PasswordChangeRequired
        );
        assert_eq!(
            state_after_password(&user(false, false, false), &[Method::Totp]),
            SessionState::SecondFactor
        );
        assert_eq!(
            state_after_password(&user(false, true, false), &[]),
            SessionState::EnrollmentRequired
        );
        assert_eq!(
            state_after_password(&user(false, false, true), &[]),
            SessionState::EnrollmentRequired,
            "admins always need 2FA"
        );
        assert_eq!(
            state_after_password(&user(false, false, false), &[]),
            SessionState::Authenticated
        );
    }
}
