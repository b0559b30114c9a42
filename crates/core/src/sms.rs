//! Text messages as a second factor: a phone verified by a code sent to it, or by the person
//! texting a shown code to the system number (seed 004). The verified phone is both the SMS
//! factor and the fallback phone for a reset (see `two_factor`).

use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::codes::{CODE_DIGITS, CODE_TTL, CodeChannel, code_sent_event, generate_code};
use crate::factors::{FactorConfirmed, FactorError};
use crate::login::ActiveSession;
use crate::notices::CodePurpose;
use crate::phone::PhoneNumber;
use crate::service::Service;
use crate::session::SessionState;
use crate::store::NewInboundCheck;
use crate::two_factor::SentTo;
use crate::user::Method;

/// What the person texts, and where, to prove the phone is theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundChallenge {
    /// The system number, E.164.
    pub system_number: String,
    /// The code to text from the phone.
    pub code: String,
    /// The phone the text must come from, masked.
    pub phone_masked: String,
}

/// The stored form of an inbound code: the webhook knows the sender's number, not the user.
pub fn hash_inbound_code(phone: &str, code: &str) -> [u8; 32] {
    Sha256::new_with_prefix(b"inbound:")
        .chain_update(phone.as_bytes())
        .chain_update(b":")
        .chain_update(code.as_bytes())
        .finalize()
        .into()
}

/// The runs of exactly six digits in a text (after dropping spaces and dashes people add).
fn codes_in_text(body: &str) -> Vec<String> {
    let compact: String = body
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .take(160)
        .collect();
    compact
        .split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == CODE_DIGITS)
        .take(3)
        .map(str::to_owned)
        .collect()
}

impl Service {
    /// Checks that SMS is allowed and that this session may set a phone: replacing the user's
    /// phone needs a fully authenticated session and the current password.
    async fn may_set_phone(
        &self,
        session: &ActiveSession,
        password: Option<&SecretString>,
    ) -> Result<(), FactorError> {
        if !self.policy().await?.policy.allows(Method::Sms) {
            return Err(FactorError::MethodNotAllowed);
        }
        let user = &session.user;
        if self.stores.factors.phone_factor(user.id).await?.is_some() {
            if session.state != SessionState::Authenticated {
                return Err(FactorError::SessionEnded);
            }
            let password = password.ok_or(FactorError::InvalidPassword)?;
            self.check_password(user, password).await?;
        }
        self.refuse_while_locked(user.id).await
    }

    /// Sends a verification code to a new phone (`country` reads a national number).
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn start_phone_enrollment(
        &self,
        session: &ActiveSession,
        phone: &str,
        country: Option<&str>,
        password: Option<&SecretString>,
    ) -> Result<SentTo, FactorError> {
        let phone = PhoneNumber::parse(phone, country)?;
        self.may_set_phone(session, password).await?;
        self.text_new_code(&session.user, &phone, CodePurpose::PhoneVerify, None)
            .await?;
        tracing::info!("phone verification code sent");
        Ok(SentTo::Phone(phone.masked()))
    }

    /// Confirms the phone with the code sent to it: it becomes the user's SMS factor and
    /// fallback phone, replacing an earlier one.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn confirm_phone(
        &self,
        session: &ActiveSession,
        code: &str,
    ) -> Result<FactorConfirmed, FactorError> {
        let user = &session.user;
        let first_factor = self.refuse_replacement_from_old_session(session).await?;
        self.take_attempt(user.id).await?;
        let phone = match self
            .check_code(user, CodePurpose::PhoneVerify.as_str(), None, code)
            .await
        {
            Ok(phone) => phone,
            Err(error) => return Err(self.fail_typed_code(user, error).await),
        };
        let replaced = self.stores.factors.phone_factor(user.id).await?.is_some();
        self.stores
            .factors
            .set_phone_factor(user.id, &phone, self.clock.now())
            .await?;
        self.finish_enrollment(session, Method::Sms, first_factor, replaced)
            .await
    }

    /// Starts verifying a phone the other way round: the person texts the returned code from
    /// that phone to the system number, then confirms.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn start_inbound_phone_check(
        &self,
        session: &ActiveSession,
        phone: &str,
        country: Option<&str>,
        password: Option<&SecretString>,
    ) -> Result<InboundChallenge, FactorError> {
        let system_number = self
            .settings
            .sms_inbound_number
            .clone()
            .ok_or(FactorError::InboundUnavailable)?;
        let phone = PhoneNumber::parse(phone, country)?;
        self.may_set_phone(session, password).await?;
        let code = generate_code().map_err(anyhow::Error::new)?;
        let now = self.clock.now();
        self.stores
            .codes
            .replace_inbound_check(&NewInboundCheck {
                user_id: session.user.id,
                phone: phone.as_e164().to_owned(),
                code_hash: hash_inbound_code(phone.as_e164(), &code),
                expires_at: now + CODE_TTL,
                created_at: now,
            })
            .await?;
        self.audit(code_sent_event(
            session.user.id,
            CodePurpose::PhoneVerify,
            CodeChannel::InboundSms,
            Some(&phone),
        ))
        .await?;
        tracing::info!("inbound phone check started");
        Ok(InboundChallenge {
            system_number,
            code,
            phone_masked: phone.masked(),
        })
    }

    /// A text arrived at the system number (the gateway's webhook, its signature already
    /// checked). `true` when it completed someone's inbound check.
    #[tracing::instrument(skip_all)]
    pub async fn record_inbound_sms(&self, from: &str, body: &str) -> Result<bool, FactorError> {
        let Ok(phone) = PhoneNumber::parse(from, None) else {
            tracing::info!("inbound text from a number that is not E.164");
            return Ok(false);
        };
        let now = self.clock.now();
        for code in codes_in_text(body) {
            let hash = hash_inbound_code(phone.as_e164(), &code);
            if self
                .stores
                .codes
                .mark_inbound_received(phone.as_e164(), &hash, now)
                .await?
                > 0
            {
                tracing::info!(from = %phone.masked(), "inbound phone check received");
                return Ok(true);
            }
        }
        tracing::info!(from = %phone.masked(), "inbound text matched no check");
        Ok(false)
    }

    /// Completes an inbound check whose text has arrived: the phone becomes the user's SMS
    /// factor and fallback phone.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn confirm_inbound_phone(
        &self,
        session: &ActiveSession,
    ) -> Result<FactorConfirmed, FactorError> {
        if self.settings.sms_inbound_number.is_none() {
            return Err(FactorError::InboundUnavailable);
        }
        let user = &session.user;
        let first_factor = self.refuse_replacement_from_old_session(session).await?;
        let now = self.clock.now();
        let phone = self
            .stores
            .codes
            .take_received_inbound(user.id, now)
            .await?
            .ok_or(FactorError::InboundNotReceived)?;
        let replaced = self.stores.factors.phone_factor(user.id).await?.is_some();
        self.stores
            .factors
            .set_phone_factor(user.id, &phone, now)
            .await?;
        self.finish_enrollment(session, Method::Sms, first_factor, replaced)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_in_what_people_type() {
        assert_eq!(codes_in_text("123456"), ["123456"]);
        assert_eq!(codes_in_text(" 123 456\n"), ["123456"]);
        assert_eq!(codes_in_text("My code: 123-456 thanks"), ["123456"]);
        assert!(codes_in_text("12345").is_empty());
        assert!(codes_in_text("1234567").is_empty());
        assert!(codes_in_text("").is_empty());
    }

    #[test]
    fn the_inbound_hash_binds_phone_and_code() {
        let hash = hash_inbound_code("+447700900123", "123456");
        assert_ne!(hash, hash_inbound_code("+447700900124", "123456"));
        assert_ne!(hash, hash_inbound_code("+447700900123", "123457"));
        let expected: [u8; 32] = Sha256::digest(b"inbound:+447700900123:123456").into();
        assert_eq!(hash, expected);
    }
}
