//! A user's view of their own sessions (OWASP ASVS 5.0 7.5.2): list the live ones, end one, or
//! end all but the current one, after re-entering the password; and an administrator ending
//! every session of a user (7.4.5).
//!
//! A session is named to its owner by a [`PublicSessionId`]: the first 16 bytes of SHA-256 over
//! a domain prefix and the stored id hash. It cannot be turned back into the cookie's token nor
//! into the stored hash, so showing it (or leaking it) never hands out the session; and it
//! changes whenever the session's token is rotated.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::audit::{Event, EventKind, to_hex};
use crate::factors::FactorError;
use crate::login::ActiveSession;
use crate::policy::CurrentPolicy;
use crate::service::Service;
use crate::session::{SessionIdHash, SessionRecord, SessionState};
use crate::store::StoreError;
use crate::user::UserId;

/// Keeps public ids apart from any other hash of a session id.
const PUBLIC_ID_DOMAIN: &[u8] = b"twofold session public id v1\0";

#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    /// The password was wrong, the re-entry check is throttled, or the server is busy.
    #[error(transparent)]
    Reentry(#[from] FactorError),
    /// No live session of this user has that id (or no user has that id).
    #[error("there is no such session")]
    NotFound,
    /// Administrators end their own other sessions from their account, not from the
    /// administration.
    #[error("administrators cannot sign themselves out everywhere here")]
    OwnAccount,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for SessionsError {
    fn from(error: StoreError) -> Self {
        SessionsError::Unexpected(anyhow::Error::new(error))
    }
}

/// The name of a session its owner sees; not enough to use the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicSessionId(String);

impl PublicSessionId {
    pub fn of(id_hash: &SessionIdHash) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(PUBLIC_ID_DOMAIN);
        hasher.update(id_hash.0);
        let digest = hasher.finalize();
        Self(to_hex(&digest[..16]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One live session of a user, as they see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: PublicSessionId,
    /// The session asking.
    pub current: bool,
    /// When its sign-in began.
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub state: SessionState,
}

/// What ending one session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndedSession {
    /// It was the session asking: its cookie is dead now.
    pub current: bool,
}

/// Whether a stored session is still live: the rule of session resolution (an unfinished
/// login has the shorter login-step timeout), so that the list shows what would still work.
fn is_live(
    record: &SessionRecord,
    now: OffsetDateTime,
    policy: &CurrentPolicy,
    login_step_timeout: time::Duration,
) -> bool {
    let idle_timeout = policy.policy.session_idle_timeout();
    let idle_limit = if record.state == SessionState::Authenticated {
        idle_timeout
    } else {
        login_step_timeout.min(idle_timeout)
    };
    now - record.last_seen_at <= idle_limit
        && now - record.created_at <= policy.policy.session_absolute_timeout()
}

impl Service {
    /// The live sessions of the session's user, most recently used first.
    pub async fn list_sessions(
        &self,
        session: &ActiveSession,
    ) -> Result<Vec<SessionView>, SessionsError> {
        Ok(self
            .live_sessions(session.user.id)
            .await?
            .into_iter()
            .map(|record| SessionView {
                id: PublicSessionId::of(&record.id_hash),
                current: record.id_hash == session.id_hash,
                created_at: record.created_at,
                last_seen_at: record.last_seen_at,
                state: record.state,
            })
            .collect())
    }

    /// Ends the session's user's session named `public_id`, after the password. Ending the
    /// current one signs out.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn end_session(
        &self,
        session: &ActiveSession,
        password: &secrecy::SecretString,
        public_id: &str,
    ) -> Result<EndedSession, SessionsError> {
        self.check_password(&session.user, password).await?;
        let target = self
            .live_sessions(session.user.id)
            .await?
            .into_iter()
            .find(|record| PublicSessionId::of(&record.id_hash).as_str() == public_id)
            .ok_or(SessionsError::NotFound)?;
        if !self.stores.sessions.delete_session(&target.id_hash).await? {
            return Err(SessionsError::NotFound);
        }
        let current = target.id_hash == session.id_hash;
        let event = Event::own(EventKind::SignedOut, session.user.id);
        let event = if current {
            event
        } else {
            event.with("other_sessions", true).with("sessions_ended", 1)
        };
        self.audit(event).await?;
        tracing::info!(current, "session ended by its owner");
        Ok(EndedSession { current })
    }

    /// Ends every session of the session's user but this one, after the password; how many
    /// ended.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn end_other_sessions(
        &self,
        session: &ActiveSession,
        password: &secrecy::SecretString,
    ) -> Result<u64, SessionsError> {
        self.check_password(&session.user, password).await?;
        let ended = self
            .stores
            .sessions
            .delete_user_sessions(session.user.id, Some(&session.id_hash))
            .await?;
        self.audit(
            Event::own(EventKind::SignedOut, session.user.id)
                .with("other_sessions", true)
                .with("sessions_ended", ended),
        )
        .await?;
        tracing::info!(
            sessions_ended = ended,
            "other sessions ended by their owner"
        );
        Ok(ended)
    }

    /// An administrator (`None`: the command line) ends every session of user `id`; how many
    /// ended. Recorded before it is done, like every administrator's action. Administrators
    /// end their own other sessions from their account page instead.
    #[tracing::instrument(skip(self))]
    pub async fn sign_out_user(
        &self,
        actor: Option<UserId>,
        id: UserId,
    ) -> Result<u64, SessionsError> {
        if actor == Some(id) {
            return Err(SessionsError::OwnAccount);
        }
        let user = self
            .stores
            .users
            .user_by_id(id)
            .await?
            .ok_or(SessionsError::NotFound)?;
        self.audit(
            Event::by(EventKind::SignedOut, actor, Some(id))
                .with("email", user.email.as_str())
                .with("all_sessions", true),
        )
        .await?;
        let ended = self.stores.sessions.delete_user_sessions(id, None).await?;
        tracing::info!(user_id = %id, sessions_ended = ended, "user signed out everywhere");
        Ok(ended)
    }

    /// The user's stored sessions that are still live.
    async fn live_sessions(&self, user_id: UserId) -> Result<Vec<SessionRecord>, SessionsError> {
        let now = self.clock.now();
        let policy = self.policy().await?;
        let mut records = self.stores.sessions.sessions_of_user(user_id).await?;
        records.retain(|record| is_live(record, now, &policy, self.settings.login_step_timeout));
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_ids_are_short_stable_and_not_the_stored_hash() {
        let hash = SessionIdHash([7; 32]);
        let id = PublicSessionId::of(&hash);
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(id, PublicSessionId::of(&hash));
        assert_ne!(id, PublicSessionId::of(&SessionIdHash([8; 32])));
        assert!(!to_hex(&hash.0).contains(id.as_str()));
        let plain: [u8; 32] = Sha256::digest(hash.0).into();
        assert!(!to_hex(&plain).starts_with(id.as_str()), "domain-separated");
    }
}
