//! The second-factor lockout at work: an attempt is taken before a code is checked, given
//! back when the check was no guess, and a wrong code counts against the user and the client's
//! address; the failure that starts a lockout is audited and told to the owner.

use time::Duration;

use crate::audit::{Event, EventKind};
use crate::factors::FactorError;
use crate::notices::Notice;
use crate::service::Service;
use crate::throttle::{remaining_lockout, second_factor_key};
use crate::user::{Method, UserId};

impl Service {
    /// Takes one attempt against the user's lockout before a code is checked, counted as a
    /// failure in advance by one conditional statement (so concurrent guesses cannot all slip
    /// in before the first is counted); 429 while locked. A right code then clears the count
    /// or gives the attempt back; a check that was no guess gives it back.
    pub(crate) async fn take_attempt(&self, user_id: UserId) -> Result<(), FactorError> {
        let key = second_factor_key(user_id);
        let now = self.clock.now();
        let lockout = self.policy().await?.policy.lockout();
        // A lockout already standing is seen on a read, so the refusals a guessing client
        // collects cost no write; the conditional write below stays the authority.
        let standing = self.stores.throttle.failures(&key).await?;
        let retry_after = match remaining_lockout(standing, now, &lockout) {
            Some(retry_after) => retry_after,
            None => match self
                .stores
                .throttle
                .take_attempt(&key, now, &lockout)
                .await?
            {
                Some(_) => return Ok(()),
                None => {
                    let count = self.stores.throttle.failures(&key).await?;
                    remaining_lockout(count, now, &lockout).unwrap_or(Duration::seconds(1))
                }
            },
        };
        tracing::info!(user_id = %user_id, "second-factor attempt refused: locked");
        Err(FactorError::Throttled { retry_after })
    }

    /// Gives back an attempt taken by [`Service::take_attempt`] that was no guess.
    pub(crate) async fn give_back_attempt(&self, user_id: UserId) -> Result<(), FactorError> {
        self.stores
            .throttle
            .give_back_attempt(&second_factor_key(user_id))
            .await?;
        Ok(())
    }

    /// Refuses while the user is locked out, without taking an attempt (before sending a code).
    pub(crate) async fn refuse_while_locked(&self, user_id: UserId) -> Result<(), FactorError> {
        let count = self
            .stores
            .throttle
            .failures(&second_factor_key(user_id))
            .await?;
        let lockout = self.policy().await?.policy.lockout();
        match remaining_lockout(count, self.clock.now(), &lockout) {
            Some(retry_after) => Err(FactorError::Throttled { retry_after }),
            None => Ok(()),
        }
    }

    /// A wrong code: its attempt, taken in advance, stays counted, and it counts against the
    /// client's address; the error to answer with. The failure that starts a lockout is
    /// recorded in the audit log and told to the owner: someone who knows the password is
    /// guessing the second factor.
    pub(crate) async fn fail_code(&self, user_id: UserId) -> FactorError {
        tracing::info!(user_id = %user_id, "wrong second-factor code");
        let address_wait = match self.count_client_ip_failure().await {
            Ok(wait) => wait,
            Err(error) => return error.into(),
        };
        if let Err(error) = self.note_lockout(user_id).await {
            return error;
        }
        match address_wait {
            Some(retry_after) => FactorError::Throttled { retry_after },
            None => FactorError::InvalidCode,
        }
    }

    /// A wrong code at a sign-in step (`step`: `second_factor`, or `reset` for the fallback
    /// phone): recorded as a failed sign-in, then counted as by [`Service::fail_code`] (whose
    /// lockout entry, when this failure starts one, follows it in the log).
    pub(crate) async fn fail_sign_in_code(
        &self,
        user_id: UserId,
        step: &str,
        method: Option<Method>,
    ) -> FactorError {
        let failed = Event::own(EventKind::SignInFailed, user_id).with("step", step);
        let failed = match method {
            Some(method) => failed.with("method", method.as_str()),
            None => failed,
        };
        let recorded = self.audit(failed).await;
        // Counted even when it could not be recorded: the attempt was taken already.
        let error = self.fail_code(user_id).await;
        match recorded {
            Ok(()) => error,
            Err(store) => store.into(),
        }
    }

    async fn note_lockout(&self, user_id: UserId) -> Result<(), FactorError> {
        let lockout = self.policy().await?.policy.lockout();
        let count = self
            .stores
            .throttle
            .failures(&second_factor_key(user_id))
            .await?;
        if count.map(|count| count.failures) != Some(lockout.free_failures) {
            return Ok(());
        }
        self.count_lockout(crate::metrics::LockoutStep::SecondFactor);
        self.audit(
            Event::own(EventKind::LockedOut, user_id).with("failures", lockout.free_failures),
        )
        .await?;
        if let Some(user) = self.stores.users.user_by_id(user_id).await? {
            self.notify(
                &user,
                Notice::SecondFactorFailures {
                    failures: lockout.free_failures,
                },
            )
            .await;
        }
        Ok(())
    }
}
