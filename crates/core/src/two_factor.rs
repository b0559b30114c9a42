//! Codes by SMS and email at the `second_factor` step, turning two-factor authentication off
//! with an emailed code, and the fallback-phone reset of a lost authenticator.
//!
//! Every wrong code checked here also counts against the user's second-factor lockout (see
//! `throttle`): a code has five tries of its own, but a fresh code must not buy five more
//! guesses once the account is locked. A code typed when none is live (a used one typed
//! again, an expired one) is refused but not counted: it is no guess at a live code.

use time::OffsetDateTime;

use crate::audit::{Event, EventKind};
use crate::factors::FactorError;
use crate::login::{ActiveSession, LoginStep};
use crate::notices::{CodePurpose, Notice};
use crate::phone::PhoneNumber;
use crate::service::Service;
use crate::session::{SessionIdHash, SessionState};
use crate::throttle::second_factor_key;
use crate::user::{Method, User};

/// Where a code for the login step went, for "we sent a code to …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentTo {
    /// The phone, masked (`+••••••••••23`).
    Phone(String),
    Email(String),
}

/// What turning 2FA off or resetting it removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Removal {
    /// The factors the user had (recovery codes included).
    methods: Vec<Method>,
    /// The user's other sessions, ended.
    sessions_ended: u64,
}

impl Removal {
    /// `event` with the removal's details: the methods by name and the sessions ended.
    fn recorded_in(&self, event: Event) -> Event {
        let removed: Vec<&str> = self.methods.iter().map(|method| method.as_str()).collect();
        event
            .with("removed", removed)
            .with("sessions_ended", self.sessions_ended)
    }
}

impl Service {
    /// Whether the user has a second factor they can sign in with: one the policy allows
    /// (recovery codes alone are not one: they come with a factor). A user whose only factors
    /// the policy no longer allows enrolls an allowed one as their first.
    pub async fn has_second_factor(&self, user: &User) -> Result<bool, FactorError> {
        Ok(!self.usable_methods(user).await?.is_empty())
    }

    /// The user's verified phone, masked for display, if they have one.
    pub async fn masked_phone(&self, user: &User) -> Result<Option<String>, FactorError> {
        Ok(self
            .stores
            .factors
            .phone_factor(user.id)
            .await?
            .map(|factor| crate::phone::mask_e164(&factor.phone)))
    }

    /// The user's verified phone, parsed.
    pub(crate) async fn verified_phone(
        &self,
        user: &User,
    ) -> Result<Option<PhoneNumber>, FactorError> {
        match self.stores.factors.phone_factor(user.id).await? {
            Some(factor) => Ok(Some(PhoneNumber::parse(&factor.phone, None).map_err(
                |error| anyhow::anyhow!("the stored phone number is not valid: {error}"),
            )?)),
            None => Ok(None),
        }
    }

    /// The `second_factor` step: sends a sign-in code by SMS to the user's phone or by email
    /// to their address, whichever `method` names; it must be enrolled.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id, method = method.as_str()))]
    pub async fn send_login_code(
        &self,
        session: &ActiveSession,
        method: Method,
    ) -> Result<SentTo, FactorError> {
        if session.state != SessionState::SecondFactor {
            return Err(FactorError::SessionEnded);
        }
        let user = &session.user;
        // A locked account gets no codes: they would cost money and help nobody.
        self.refuse_while_locked(user.id).await?;
        match method {
            Method::Sms => {
                let phone = self
                    .verified_phone(user)
                    .await?
                    .ok_or(FactorError::MethodNotEnrolled)?;
                self.text_new_code(user, &phone, CodePurpose::LoginSms, Some(&session.id_hash))
                    .await?;
                Ok(SentTo::Phone(phone.masked()))
            }
            Method::Email => {
                if self.stores.factors.email_factor(user.id).await?.is_none() {
                    return Err(FactorError::MethodNotEnrolled);
                }
                self.email_new_code(user, CodePurpose::LoginEmail, Some(&session.id_hash))
                    .await?;
                Ok(SentTo::Email(user.email.as_str().to_owned()))
            }
            Method::Totp | Method::RecoveryCode => Err(FactorError::MethodNotEnrolled),
        }
    }

    /// Checks a sign-in code sent by SMS or email. The factor must still be enrolled, and for
    /// SMS the code must have gone to the phone the user has now. `Ok(false)` is a wrong code
    /// (the caller counts it); a code typed when none is live is refused without counting.
    pub(crate) async fn accept_login_code(
        &self,
        user: &User,
        session: &SessionIdHash,
        purpose: CodePurpose,
        code: &str,
    ) -> Result<bool, FactorError> {
        let expected_destination = match purpose {
            CodePurpose::LoginSms => match self.stores.factors.phone_factor(user.id).await? {
                Some(factor) => factor.phone,
                None => return Ok(false),
            },
            CodePurpose::LoginEmail => {
                if self.stores.factors.email_factor(user.id).await?.is_none() {
                    return Ok(false);
                }
                user.email.as_str().to_owned()
            }
            _ => return Ok(false),
        };
        match self
            .check_code(user, purpose.as_str(), Some(session), code)
            .await
        {
            Ok(destination) => Ok(destination == expected_destination),
            Err(crate::codes::CodeError::InvalidCode) => Ok(false),
            // A replay or the loser of a race with the owner, not a guess: not counted.
            Err(crate::codes::CodeError::NoLiveCode) => {
                self.give_back_attempt(user.id).await?;
                Err(FactorError::InvalidCode)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Refuses to turn 2FA off for a user who must keep it.
    async fn refuse_when_required(&self, user: &User) -> Result<(), FactorError> {
        if self.policy().await?.requires_two_factor(user) {
            return Err(FactorError::TwoFactorRequired);
        }
        Ok(())
    }

    /// Emails the code that turns two-factor authentication off.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn send_disable_code(&self, session: &ActiveSession) -> Result<(), FactorError> {
        let user = &session.user;
        if session.state != SessionState::Authenticated {
            return Err(FactorError::SessionEnded);
        }
        self.refuse_when_required(user).await?;
        if !self.has_second_factor(user).await? {
            return Err(FactorError::NoSecondFactor);
        }
        self.refuse_while_locked(user.id).await?;
        self.email_new_code(user, CodePurpose::DisableTwoFactor, None)
            .await?;
        Ok(())
    }

    /// Turns two-factor authentication off with the emailed code: every factor and recovery
    /// code goes, the user's other sessions end, and the owner is told.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn disable_two_factor(
        &self,
        session: &ActiveSession,
        code: &str,
    ) -> Result<(), FactorError> {
        let user = &session.user;
        if session.state != SessionState::Authenticated {
            return Err(FactorError::SessionEnded);
        }
        self.refuse_when_required(user).await?;
        self.take_attempt(user.id).await?;
        match self
            .check_code(user, CodePurpose::DisableTwoFactor.as_str(), None, code)
            .await
        {
            Ok(destination) if destination == user.email.as_str() => {}
            Ok(_) => return Err(self.fail_code(user.id).await),
            Err(error) => return Err(self.fail_typed_code(user, error).await),
        }
        let removed = self.remove_factors(user, session).await?;
        self.audit(removed.recorded_in(Event::own(EventKind::TwoFactorDisabled, user.id)))
            .await?;
        tracing::info!("two-factor authentication turned off");
        self.notify(user, Notice::TwoFactorDisabled).await;
        Ok(())
    }

    /// The `second_factor` step's "Reset two-factor": texts a reset code to the fallback phone.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn send_reset_code(&self, session: &ActiveSession) -> Result<SentTo, FactorError> {
        if session.state != SessionState::SecondFactor {
            return Err(FactorError::SessionEnded);
        }
        let user = &session.user;
        self.refuse_while_locked(user.id).await?;
        let phone = self
            .verified_phone(user)
            .await?
            .ok_or(FactorError::MethodNotEnrolled)?;
        self.text_new_code(
            user,
            &phone,
            CodePurpose::FallbackReset,
            Some(&session.id_hash),
        )
        .await?;
        Ok(SentTo::Phone(phone.masked()))
    }

    /// With the right reset code (ten minutes, from the fallback phone): removes the user's
    /// second factors and moves the login to `enrollment_required`, where they set up anew.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn reset_with_fallback_phone(
        &self,
        session: &ActiveSession,
        code: &str,
    ) -> Result<LoginStep, FactorError> {
        if session.state != SessionState::SecondFactor {
            return Err(FactorError::SessionEnded);
        }
        let user = &session.user;
        self.take_attempt(user.id).await?;
        let expected = self.stores.factors.phone_factor(user.id).await?;
        let accepted = match self
            .check_code(
                user,
                CodePurpose::FallbackReset.as_str(),
                Some(&session.id_hash),
                code,
            )
            .await
        {
            Ok(destination) => expected.is_some_and(|factor| factor.phone == destination),
            Err(crate::codes::CodeError::InvalidCode) => false,
            // No live code: no guess at one, so not counted.
            Err(crate::codes::CodeError::NoLiveCode) => {
                self.give_back_attempt(user.id).await?;
                return Err(FactorError::InvalidCode);
            }
            Err(other) => return Err(other.into()),
        };
        if !accepted {
            return Err(self.fail_sign_in_code(user.id, "reset", None).await);
        }
        let removed = self.remove_factors(user, session).await?;
        self.audit(removed.recorded_in(
            Event::own(EventKind::TwoFactorReset, user.id).with("by", "fallback_phone"),
        ))
        .await?;
        let now: OffsetDateTime = self.clock.now();
        let token = self
            .rotate(session, SessionState::EnrollmentRequired, now)
            .await?;
        tracing::info!("second factors reset from the fallback phone");
        self.notify(
            user,
            Notice::TwoFactorReset {
                by_administrator: false,
            },
        )
        .await;
        Ok(LoginStep {
            token,
            state: SessionState::EnrollmentRequired,
            methods: self.policy().await?.policy.allowed_methods.clone(),
        })
    }

    /// Removes every factor of the user, clears the lockout, and ends every session of theirs
    /// but `keep` (whatever was signed in with the old factors).
    async fn remove_factors(
        &self,
        user: &User,
        keep: &ActiveSession,
    ) -> Result<Removal, FactorError> {
        let methods = self.enrolled_methods(user).await?;
        self.stores.factors.delete_all_factors(user.id).await?;
        self.stores
            .throttle
            .clear_failures(&second_factor_key(user.id))
            .await?;
        let sessions_ended = self
            .stores
            .sessions
            .delete_user_sessions(user.id, Some(&keep.id_hash))
            .await?;
        Ok(Removal {
            methods,
            sessions_ended,
        })
    }

    /// Counts a wrong typed code against the lockout (a code typed when none is live is not
    /// counted); the error to answer with.
    pub(crate) async fn fail_typed_code(
        &self,
        user: &User,
        error: crate::codes::CodeError,
    ) -> FactorError {
        match error {
            crate::codes::CodeError::InvalidCode => self.fail_code(user.id).await,
            // No live code (a replay, an expired or replaced code): no guess, not counted.
            crate::codes::CodeError::NoLiveCode => match self.give_back_attempt(user.id).await {
                Ok(()) => FactorError::InvalidCode,
                Err(error) => error,
            },
            other => other.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserId;

    #[test]
    fn a_removal_is_recorded_by_method_name_and_sessions_ended() {
        let removal = Removal {
            methods: vec![Method::Totp, Method::Sms, Method::RecoveryCode],
            sessions_ended: 2,
        };
        let event = removal.recorded_in(Event::own(EventKind::TwoFactorDisabled, UserId::random()));
        assert_eq!(
            event.detail["removed"],
            serde_json::json!(["totp", "sms", "recovery_code"])
        );
        assert_eq!(event.detail["sessions_ended"], 2);
    }
}
