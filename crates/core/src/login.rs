//! The login state machine: password, then (as the account requires) a new password, a second
//! factor or enrollment of one, until `authenticated`. Each step rotates the session token.
//! Refused passwords, finished sign-ins and sign-outs are recorded in the audit log.

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::audit::{Event, EventKind};
use crate::email::Email;
use crate::hasher::HashError;
use crate::password::{LoginPassword, NewPassword, WeakPassword};
use crate::policy::CurrentPolicy;
use crate::service::Service;
use crate::session::{SessionIdHash, SessionRecord, SessionState, SessionToken};
use crate::store::{FactorOverview, NewSession, StoreError};
use crate::throttle::{PasswordCheck, PasswordSubject, password_key, typed_email_key};
use crate::user::{Method, User, UserId};

/// Activity is written back at most this often (or a tenth of the idle timeout, if shorter), so
/// that reads stay reads; a session may therefore end up to this much before its idle timeout.
const TOUCH_GRANULARITY_SECONDS: i64 = 60;

/// The longest an email address can be (RFC 5321's path limit less the brackets): an address
/// typed at a failed sign-in is recorded cut to this.
const TYPED_EMAIL_LIMIT: usize = 254;

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
    /// Too many wrong passwords for this account (or address), or too many failures from this
    /// client: refused unchecked for `retry_after`.
    #[error("too many attempts; wait before trying again")]
    Throttled { retry_after: time::Duration },
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

/// The state a login reaches once the password is right. `enrollment_due`: the user must have
/// a second factor by now (see [`CurrentPolicy::enrollment_due`]).
pub fn state_after_password(
    user: &User,
    enrolled: &[Method],
    enrollment_due: bool,
) -> SessionState {
    if user.password_change_required {
        SessionState::PasswordChangeRequired
    } else if !enrolled.is_empty() {
        SessionState::SecondFactor
    } else if enrollment_due {
        SessionState::EnrollmentRequired
    } else {
        SessionState::Authenticated
    }
}

impl Service {
    /// Checks an email and password and starts a session in the state the account calls for.
    /// The account's (or typed address's) lockout and the client's limit apply first; see
    /// [`crate::throttle`].
    #[tracing::instrument(skip_all)]
    pub(crate) async fn password_step(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<LoginStep, LoginError> {
        let user = match Email::parse(email) {
            Ok(email) => self.stores.users.user_by_email(&email).await?,
            Err(_) => None,
        };
        // An address without an account is counted like one with an account, under a key of
        // its own, so the answers (401s, then 429s) never tell the two apart.
        let subject = match &user {
            Some(user) => PasswordSubject {
                key: password_key(user.id),
                user_id: Some(user.id),
                password_hash: (!user.disabled).then_some(user.password_hash.as_str()),
            },
            None => PasswordSubject {
                key: typed_email_key(email),
                user_id: None,
                password_hash: None,
            },
        };
        let refused = password_refused(user.as_ref(), email);
        let verification = match self
            .check_password_limited::<LoginError>(subject, password, Some(refused))
            .await?
        {
            PasswordCheck::Right(verification) => verification,
            PasswordCheck::Wrong => {
                tracing::info!(user_id = ?user.as_ref().map(|user| user.id), "password rejected");
                return Err(LoginError::InvalidCredentials);
            }
            PasswordCheck::Throttled(retry_after) => {
                return Err(LoginError::Throttled { retry_after });
            }
        };
        // Only a right password of an enabled account gets here.
        let Some(user) = user else {
            return Err(LoginError::InvalidCredentials);
        };
        if verification.needs_rehash
            && let Some(normalised) = LoginPassword::parse(password)
        {
            self.rehash(&user, normalised.secret()).await;
        }
        let now = self.clock.now();
        let policy = self.policy().await?;
        let (enrolled, due) = self.factors_at_sign_in(&user, &policy).await?;
        let state = state_after_password(&user, &enrolled, due);
        let token = SessionToken::generate().map_err(anyhow::Error::new)?;
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
            self.record_sign_in(user.id, None, false, now).await?;
        }
        tracing::info!(user_id = %user.id, state = %state, "password accepted");
        Ok(LoginStep {
            token,
            state,
            methods: methods_for(state, enrolled, &policy),
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
        let ended = self
            .stores
            .sessions
            .delete_user_sessions(user.id, Some(&session.id_hash))
            .await?;
        self.audit(
            Event::own(EventKind::PasswordChanged, user.id)
                .with("replaced_temporary", true)
                .with("sessions_ended", ended),
        )
        .await?;
        let mut updated = user.clone();
        updated.password_change_required = false;
        let policy = self.policy().await?;
        let (enrolled, due) = self.factors_at_sign_in(&updated, &policy).await?;
        let state = state_after_password(&updated, &enrolled, due);
        let token = self.rotate(session, state, now).await?;
        if state == SessionState::Authenticated {
            self.record_sign_in(user.id, None, false, now).await?;
        }
        tracing::info!(state = %state, "temporary password replaced");
        Ok(LoginStep {
            token,
            state,
            methods: methods_for(state, enrolled, &policy),
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
        let policy = self.policy().await?;
        if has_expired(&record, now, &policy, self.settings.login_step_timeout) {
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
            && !self.allowed_enrolled(&user, &policy).await?.is_empty()
        {
            self.stores.sessions.delete_session(&id_hash).await?;
            return Ok(None);
        }
        let granularity = TOUCH_GRANULARITY_SECONDS
            .min(policy.policy.session_idle_timeout().whole_seconds() / 10);
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
        let record = self.stores.sessions.session_by_id_hash(id_hash).await?;
        let ended = self.stores.sessions.delete_session(id_hash).await?;
        if let Some(record) = record.filter(|_| ended) {
            self.audit(signed_out_event(&record)).await?;
        }
        Ok(())
    }

    /// A login reached `authenticated`: stamps the user's last sign-in and records it, with
    /// the second factor passed (`None`: the password alone) and whether it was just enrolled.
    pub(crate) async fn record_sign_in(
        &self,
        user_id: UserId,
        method: Option<Method>,
        enrolled: bool,
        now: OffsetDateTime,
    ) -> Result<(), LoginError> {
        // Independent writes: sent together, they share a commit on SQLite.
        let (recorded, audited) = tokio::join!(
            self.stores.users.record_login(user_id, now),
            self.audit(sign_in_event(user_id, method, enrolled))
        );
        recorded?;
        audited?;
        Ok(())
    }

    /// Deletes every session past its idle or absolute timeout; run periodically.
    pub async fn purge_expired_sessions(&self) -> Result<u64, LoginError> {
        let now = self.clock.now();
        let policy = self.policy().await?;
        let idle_before = now - policy.policy.session_idle_timeout();
        let created_before = now - policy.policy.session_absolute_timeout();
        Ok(self
            .stores
            .sessions
            .delete_expired_sessions(idle_before, created_before)
            .await?)
    }

    /// The second factors the user can sign in with under the policy: those of
    /// [`Service::enrolled_methods`] that it allows. Recovery codes count only beside an
    /// allowed factor.
    pub async fn usable_methods(&self, user: &User) -> Result<Vec<Method>, LoginError> {
        let policy = self.policy().await?;
        self.allowed_enrolled(user, &policy).await
    }

    pub(crate) async fn allowed_enrolled(
        &self,
        user: &User,
        policy: &CurrentPolicy,
    ) -> Result<Vec<Method>, LoginError> {
        Ok(allowed_of(self.enrolled_methods(user).await?, policy))
    }

    /// What the password step needs, from one read of the factors: the usable ones, and
    /// whether a user without any must enroll now — by the policy's rule and grace period, and
    /// also anyone whose only factors the policy no longer allows (they had chosen two factors;
    /// dropping to one would be a downgrade).
    pub(crate) async fn factors_at_sign_in(
        &self,
        user: &User,
        policy: &CurrentPolicy,
    ) -> Result<(Vec<Method>, bool), LoginError> {
        let all = self.enrolled_methods(user).await?;
        let due = policy.enrollment_due(user, self.clock.now())
            || all.iter().any(|method| *method != Method::RecoveryCode);
        Ok((allowed_of(all, policy), due))
    }

    /// The second factors the user has (an active authenticator, a verified phone, email
    /// codes, unused recovery codes), whether or not the policy allows them now. Recovery codes
    /// count only beside another factor: alone they do not make 2FA enabled; see
    /// [`crate::user::TwoFactorStatus`].
    pub async fn enrolled_methods(&self, user: &User) -> Result<Vec<Method>, LoginError> {
        let overview = self.stores.factors.factor_overview(user.id).await?;
        Ok(enrolled_in(&overview))
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

/// The audit entry of a refused password step: about the user when the address is theirs
/// (noting a disabled account), else about nobody, with the address typed — only when it is
/// an email address (people type passwords into the wrong field; those stay out of the log).
fn password_refused(user: Option<&User>, typed_email: &str) -> Event {
    let event =
        Event::by(EventKind::SignInFailed, None, user.map(|user| user.id)).with("step", "password");
    match user {
        Some(user) if user.disabled => event.with("disabled", true),
        Some(_) => event,
        None => match Email::parse(typed_email) {
            Ok(email) => event.with(
                "email",
                email
                    .as_str()
                    .chars()
                    .take(TYPED_EMAIL_LIMIT)
                    .collect::<String>(),
            ),
            Err(_) => event.with("email", serde_json::Value::Null),
        },
    }
}

fn sign_in_event(user_id: UserId, method: Option<Method>, enrolled: bool) -> Event {
    let mut event = Event::own(EventKind::SignInSucceeded, user_id);
    if let Some(method) = method {
        event = event.with("method", method.as_str());
    }
    if enrolled {
        event = event.with("enrolled", true);
    }
    event
}

/// The audit entry of an ended session; one that never reached `authenticated` (a login
/// given up half-way) says where it stood.
fn signed_out_event(record: &SessionRecord) -> Event {
    let event = Event::own(EventKind::SignedOut, record.user_id);
    if record.state == SessionState::Authenticated {
        event
    } else {
        event.with("state", record.state.as_str())
    }
}

/// Of the user's factors, those the policy allows; recovery codes count only beside one.
pub(crate) fn allowed_of(mut methods: Vec<Method>, policy: &CurrentPolicy) -> Vec<Method> {
    methods.retain(|method| *method == Method::RecoveryCode || policy.policy.allows(*method));
    if methods == [Method::RecoveryCode] {
        methods.clear();
    }
    methods
}

/// The methods a step answers with: the usable ones for `second_factor`, the allowed ones
/// for `enrollment_required`.
pub(crate) fn methods_for(
    state: SessionState,
    enrolled: Vec<Method>,
    policy: &CurrentPolicy,
) -> Vec<Method> {
    match state {
        SessionState::SecondFactor => enrolled,
        SessionState::EnrollmentRequired => policy.policy.allowed_methods.clone(),
        SessionState::PasswordChangeRequired | SessionState::Authenticated => Vec::new(),
    }
}

fn has_expired(
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
    now - record.last_seen_at > idle_limit
        || now - record.created_at > policy.policy.session_absolute_timeout()
}

/// The methods an overview of the user's factors shows (see [`Service::enrolled_methods`]).
pub(crate) fn enrolled_in(overview: &FactorOverview) -> Vec<Method> {
    let mut methods = Vec::new();
    if overview.totp.is_some() {
        methods.push(Method::Totp);
    }
    if overview.phone {
        methods.push(Method::Sms);
    }
    if overview.email {
        methods.push(Method::Email);
    }
    if !methods.is_empty() && overview.recovery_codes_left > 0 {
        methods.push(Method::RecoveryCode);
    }
    methods
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserId;

    fn user(password_change_required: bool) -> User {
        User {
            id: UserId::random(),
            email: Email::parse("alice@example.com").unwrap(),
            password_hash: String::new(),
            password_change_required,
            is_admin: false,
            require_2fa: false,
            require_2fa_since: None,
            email_verified: false,
            disabled: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_login_at: None,
        }
    }

    #[test]
    fn the_state_machine_after_the_password() {
        assert_eq!(
            state_after_password(&user(true), &[Method::Totp], true),
            SessionState::PasswordChangeRequired
        );
        assert_eq!(
            state_after_password(&user(false), &[Method::Totp], false),
            SessionState::SecondFactor
        );
        assert_eq!(
            state_after_password(&user(false), &[], true),
            SessionState::EnrollmentRequired
        );
        assert_eq!(
            state_after_password(&user(false), &[], false),
            SessionState::Authenticated
        );
    }

    #[test]
    fn a_refused_password_is_recorded_about_the_user_or_the_address_typed() {
        let known = user(false);
        let event = password_refused(Some(&known), "alice@example.com");
        assert_eq!(event.kind, EventKind::SignInFailed);
        assert_eq!((event.actor, event.subject), (None, Some(known.id)));
        assert_eq!(event.detail["step"], "password");
        assert!(!event.detail.contains_key("email") && !event.detail.contains_key("disabled"));

        let disabled = User {
            disabled: true,
            ..user(false)
        };
        assert_eq!(
            password_refused(Some(&disabled), "alice@example.com").detail["disabled"],
            true
        );

        let unknown = password_refused(None, "Nobody@Example.com");
        assert_eq!((unknown.actor, unknown.subject), (None, None));
        assert_eq!(unknown.detail["email"], "nobody@example.com");
        let password = password_refused(None, "correct horse battery staple");
        assert_eq!(password.detail["email"], serde_json::Value::Null);
    }

    #[test]
    fn sign_ins_and_sign_outs_say_how() {
        let id = UserId::random();
        assert!(sign_in_event(id, None, false).detail.is_empty());
        let enrolled = sign_in_event(id, Some(Method::Totp), true);
        assert_eq!(enrolled.kind, EventKind::SignInSucceeded);
        assert_eq!(enrolled.detail["method"], "totp");
        assert_eq!(enrolled.detail["enrolled"], true);

        let mut record = SessionRecord {
            id_hash: SessionIdHash([0; 32]),
            user_id: id,
            state: SessionState::Authenticated,
            created_at: OffsetDateTime::UNIX_EPOCH,
            last_seen_at: OffsetDateTime::UNIX_EPOCH,
        };
        let out = signed_out_event(&record);
        assert_eq!((out.kind, out.subject), (EventKind::SignedOut, Some(id)));
        assert!(out.detail.is_empty());
        record.state = SessionState::SecondFactor;
        assert_eq!(signed_out_event(&record).detail["state"], "second_factor");
    }
}
