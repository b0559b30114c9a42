//! The account's email address: verifying it with a code (or the link in the same mail), and
//! email codes as a second factor, which need a verified address.
//!
//! NIST SP 800-63B does not accept email as an out-of-band authenticator (§5.1.3.1) and calls
//! SMS "restricted" (§5.1.3.3): a mailbox is often protected by the very password it would
//! back up, and numbers can be ported or intercepted. Twofold offers both because people need
//! them (seeds 001, 002, 004); the policy can forbid either (`allowed_methods`).

use crate::audit::{Event, EventKind};
use crate::factors::{FactorConfirmed, FactorError};
use crate::login::ActiveSession;
use crate::notices::CodePurpose;
use crate::service::Service;
use crate::user::Method;

impl Service {
    /// Emails a code that verifies the account's address.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn send_email_verification(
        &self,
        session: &ActiveSession,
    ) -> Result<(), FactorError> {
        let user = &session.user;
        if user.email_verified {
            return Err(FactorError::EmailAlreadyVerified);
        }
        // A locked account is sent no codes.
        self.refuse_while_locked(user.id).await?;
        self.email_new_code(user, CodePurpose::EmailVerify, None)
            .await?;
        Ok(())
    }

    /// Marks the address verified with the code sent to it.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn verify_email(
        &self,
        session: &ActiveSession,
        code: &str,
    ) -> Result<(), FactorError> {
        let user = &session.user;
        if user.email_verified {
            return Err(FactorError::EmailAlreadyVerified);
        }
        // Wrong codes count towards the account's lockout like every other code; the right
        // one gives its attempt back (verifying an address is no sign-in).
        self.take_attempt(user.id).await?;
        match self
            .check_code(user, CodePurpose::EmailVerify.as_str(), None, code)
            .await
        {
            Ok(destination) if destination == user.email.as_str() => {}
            Ok(_) => return Err(self.fail_code(user.id).await),
            Err(error) => return Err(self.fail_typed_code(user, error).await),
        }
        self.give_back_attempt(user.id).await?;
        // `false`: a concurrent request verified it (and recorded that) first.
        if self
            .stores
            .users
            .set_email_verified(user.id, self.clock.now())
            .await?
        {
            self.audit(Event::own(EventKind::EmailVerified, user.id))
                .await?;
        }
        tracing::info!("email address verified");
        Ok(())
    }

    /// Emails the code that turns on email codes as a second factor; the address must be
    /// verified.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn start_email_factor(&self, session: &ActiveSession) -> Result<(), FactorError> {
        let user = &session.user;
        if !self.policy().await?.policy.allows(Method::Email) {
            return Err(FactorError::MethodNotAllowed);
        }
        if !user.email_verified {
            return Err(FactorError::EmailNotVerified);
        }
        self.refuse_while_locked(user.id).await?;
        self.email_new_code(user, CodePurpose::EmailFactor, None)
            .await?;
        Ok(())
    }

    /// Turns on email codes with the code sent by [`Service::start_email_factor`].
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn confirm_email_factor(
        &self,
        session: &ActiveSession,
        code: &str,
    ) -> Result<FactorConfirmed, FactorError> {
        let user = &session.user;
        if !self.policy().await?.policy.allows(Method::Email) {
            return Err(FactorError::MethodNotAllowed);
        }
        if !user.email_verified {
            return Err(FactorError::EmailNotVerified);
        }
        let first_factor = self.refuse_replacement_from_old_session(session).await?;
        self.take_attempt(user.id).await?;
        match self
            .check_code(user, CodePurpose::EmailFactor.as_str(), None, code)
            .await
        {
            Ok(destination) if destination == user.email.as_str() => {}
            Ok(_) => return Err(self.fail_code(user.id).await),
            Err(error) => return Err(self.fail_typed_code(user, error).await),
        }
        let replaced = self.stores.factors.email_factor(user.id).await?.is_some();
        self.stores
            .factors
            .enable_email_factor(user.id, self.clock.now())
            .await?;
        self.finish_enrollment(session, Method::Email, first_factor, replaced)
            .await
    }
}
