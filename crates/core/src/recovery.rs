//! Recovery codes: 80 bits each from the CSPRNG, shown once, stored as SHA-256 of the user's id
//! and the canonical code, each usable once.
//!
//! Why a fast hash and not Argon2 or a keyed HMAC: a slow or keyed hash protects secrets people
//! choose, which can be guessed; these codes carry 80 random bits, so even a stolen database
//! leaves 2^80 guesses per code, and the hash needs no key that a master-key rotation would break.
//! The user id in the input salts the hash, so equal codes of two users hash apart.

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use twofold_otp::RecoveryCode;

use crate::audit::{Event, EventKind};
use crate::factors::FactorError;
use crate::login::ActiveSession;
use crate::notices::CodePurpose;
use crate::service::Service;
use crate::session::SessionState;
use crate::user::UserId;

/// Fewer codes left than this, and the account page suggests making new ones.
pub const FEW_RECOVERY_CODES: u32 = 3;

pub fn hash_recovery_code(user_id: UserId, code: &RecoveryCode) -> [u8; 32] {
    Sha256::new_with_prefix(user_id.to_string().as_bytes())
        .chain_update(b":")
        .chain_update(code.as_str().as_bytes())
        .finalize()
        .into()
}

/// The audit entry of a new set of recovery codes made by their owner, `by` (`password` or
/// `email_code`) the proof they gave.
fn renewed_event(user_id: UserId, by: &str, count: usize) -> Event {
    Event::own(EventKind::RecoveryCodesRenewed, user_id)
        .with("by", by)
        .with("count", count)
}

impl Service {
    /// Makes a fresh set of recovery codes for the user (every earlier one stops working) and
    /// returns them for display, grouped for reading (`xxxx-xxxx-xxxx-xxxx`).
    pub(crate) async fn issue_recovery_codes(
        &self,
        user_id: UserId,
    ) -> Result<Vec<String>, FactorError> {
        let (codes, hashes) = self.new_recovery_codes(user_id).await?;
        self.stores
            .factors
            .replace_recovery_codes(user_id, &hashes, self.clock.now())
            .await?;
        tracing::info!(user_id = %user_id, count = codes.len(), "recovery codes issued");
        Ok(codes)
    }

    /// A fresh set of recovery codes for the user, not stored yet: for display, and their
    /// hashes for the store.
    pub(crate) async fn new_recovery_codes(
        &self,
        user_id: UserId,
    ) -> Result<(Vec<String>, Vec<[u8; 32]>), FactorError> {
        let count = self.policy().await?.policy.recovery_code_count as usize;
        let codes =
            RecoveryCode::generate_set(count).map_err(|error| anyhow::anyhow!("{error}"))?;
        let hashes = codes
            .iter()
            .map(|code| hash_recovery_code(user_id, code))
            .collect();
        Ok((codes.iter().map(RecoveryCode::display).collect(), hashes))
    }

    /// Regenerates the recovery codes of a signed-in user who has a second factor; needs the
    /// current password.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn regenerate_recovery_codes(
        &self,
        session: &ActiveSession,
        password: &SecretString,
    ) -> Result<Vec<String>, FactorError> {
        if session.state != SessionState::Authenticated {
            return Err(FactorError::SessionEnded);
        }
        self.check_password(&session.user, password).await?;
        if !self.has_second_factor(&session.user).await? {
            return Err(FactorError::NoSecondFactor);
        }
        let codes = self.issue_recovery_codes(session.user.id).await?;
        self.audit(renewed_event(session.user.id, "password", codes.len()))
            .await?;
        self.notify(&session.user, crate::notices::Notice::NewRecoveryCodes)
            .await;
        Ok(codes)
    }

    /// Emails the code that makes new recovery codes without the password (seed 002: "Send
    /// verification code to your registered email").
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn send_recovery_codes_code(
        &self,
        session: &ActiveSession,
    ) -> Result<(), FactorError> {
        let user = &session.user;
        if session.state != SessionState::Authenticated {
            return Err(FactorError::SessionEnded);
        }
        if !self.has_second_factor(user).await? {
            return Err(FactorError::NoSecondFactor);
        }
        self.refuse_while_locked(user.id).await?;
        self.email_new_code(user, CodePurpose::NewRecoveryCodes, None)
            .await?;
        Ok(())
    }

    /// Makes new recovery codes with the emailed code instead of the password; every earlier
    /// code stops working.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn regenerate_recovery_codes_with_code(
        &self,
        session: &ActiveSession,
        code: &str,
    ) -> Result<Vec<String>, FactorError> {
        let user = &session.user;
        if session.state != SessionState::Authenticated {
            return Err(FactorError::SessionEnded);
        }
        if !self.has_second_factor(user).await? {
            return Err(FactorError::NoSecondFactor);
        }
        self.take_attempt(user.id).await?;
        match self
            .check_code(user, CodePurpose::NewRecoveryCodes.as_str(), None, code)
            .await
        {
            Ok(destination) if destination == user.email.as_str() => {}
            Ok(_) => return Err(self.fail_code(user.id).await),
            Err(error) => return Err(self.fail_typed_code(user, error).await),
        }
        self.give_back_attempt(user.id).await?;
        let codes = self.issue_recovery_codes(user.id).await?;
        self.audit(renewed_event(user.id, "email_code", codes.len()))
            .await?;
        self.notify(user, crate::notices::Notice::NewRecoveryCodes)
            .await;
        Ok(codes)
    }

    /// Accepts a recovery code once; what was spent, so that a sign-in that then loses its
    /// session can put it back ([`Service::release_recovery_code`]).
    pub(crate) async fn consume_recovery_code(
        &self,
        user_id: UserId,
        typed: &str,
    ) -> Result<Option<SpentRecoveryCode>, FactorError> {
        let Ok(code) = RecoveryCode::parse(typed) else {
            return Ok(None);
        };
        let hash = hash_recovery_code(user_id, &code);
        let at = self.clock.now();
        let used = self
            .stores
            .factors
            .consume_recovery_code(user_id, &hash, at)
            .await?;
        if !used {
            return Ok(None);
        }
        tracing::info!(user_id = %user_id, "recovery code used");
        Ok(Some(SpentRecoveryCode { user_id, hash, at }))
    }

    /// Puts back a code spent by a sign-in that did not happen after all.
    pub(crate) async fn release_recovery_code(
        &self,
        spent: &SpentRecoveryCode,
    ) -> Result<(), FactorError> {
        self.stores
            .factors
            .release_recovery_code(spent.user_id, &spent.hash, spent.at)
            .await?;
        tracing::info!(user_id = %spent.user_id, "recovery code put back: the sign-in lost its session");
        Ok(())
    }
}

/// A recovery code this request spent.
#[derive(Debug)]
pub(crate) struct SpentRecoveryCode {
    user_id: UserId,
    hash: [u8; 32],
    at: time::OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_depends_on_user_and_code_but_not_on_how_it_was_typed() {
        let user = UserId::random();
        let code = RecoveryCode::generate().unwrap();
        let typed = RecoveryCode::parse(&code.display().to_uppercase().replace('-', " ")).unwrap();
        assert_eq!(
            hash_recovery_code(user, &code),
            hash_recovery_code(user, &typed)
        );
        assert_ne!(
            hash_recovery_code(user, &code),
            hash_recovery_code(UserId::random(), &code)
        );
        assert_ne!(
            hash_recovery_code(user, &code),
            hash_recovery_code(user, &RecoveryCode::generate().unwrap())
        );
    }
}
