//! Second factors: enrolling an authenticator app (TOTP), confirming it with its first code,
//! what every confirmed enrollment does next, and passing the `second_factor` step of a login
//! with a TOTP, SMS, email or recovery code. SMS and email enrollment live in `sms` and
//! `email_factor`.
//!
//! A TOTP code is accepted for the current step and `totp_skew_steps` either side, and only for
//! a step later than the last one accepted for that authenticator — decided by one conditional
//! UPDATE, so a code works once even when sixteen requests (or two instances) race with it.

use secrecy::SecretString;
use time::Duration;
use twofold_otp::{KeyUri, Secret, Totp, TotpCode, TotpParams};
use uuid::Uuid;

use crate::audit::{Event, EventKind};
use crate::codes::CodeError;
use crate::hasher::HashError;
use crate::login::{ActiveSession, LoginError, LoginStep};
use crate::notices::{CodePurpose, Notice};
use crate::phone::InvalidPhone;
use crate::sealing::SealError;
use crate::service::Service;
use crate::session::{SessionState, SessionToken};
use crate::store::{ChainKey, NewTotp, StoreError, TotpActivation, TotpRecord};
use crate::throttle::second_factor_key;
use crate::user::{Method, UserId};

#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    #[error("the code is not right")]
    InvalidCode,
    /// Replacing an authenticator or making new recovery codes needs the current password.
    #[error("the password is not right")]
    InvalidPassword,
    #[error("start the set-up again: there is no authenticator waiting for its first code")]
    NoPendingEnrollment,
    #[error("set up a second factor first")]
    NoSecondFactor,
    #[error("too many wrong codes; wait before trying again")]
    Throttled { retry_after: Duration },
    /// A code was sent to this user or destination a moment ago (or too many this hour).
    #[error("a code was sent recently; wait before asking for another")]
    SendThrottled { retry_after: Duration },
    /// Email codes need a verified address.
    #[error("verify your email address first")]
    EmailNotVerified,
    #[error("this email address is verified already")]
    EmailAlreadyVerified,
    /// An administrator (or the policy) requires this user to keep a second factor.
    #[error("two-factor authentication is required for this account")]
    TwoFactorRequired,
    /// The policy does not allow this method.
    #[error("this kind of second factor is not allowed here")]
    MethodNotAllowed,
    /// The user has no such factor (e.g. a code by SMS without a phone).
    #[error("this account has no such second factor")]
    MethodNotEnrolled,
    #[error(transparent)]
    InvalidPhone(#[from] InvalidPhone),
    /// Verifying a phone by texting the server is not configured.
    #[error("verifying a phone by sending a text is not available")]
    InboundUnavailable,
    /// The text with the shown code has not arrived (yet).
    #[error("your text has not arrived yet; send it, then try again")]
    InboundNotReceived,
    #[error("the session has ended; sign in again")]
    SessionEnded,
    #[error("the server is busy; try again shortly")]
    Overloaded,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for FactorError {
    fn from(error: StoreError) -> Self {
        FactorError::Unexpected(anyhow::Error::new(error))
    }
}

impl From<SealError> for FactorError {
    fn from(error: SealError) -> Self {
        FactorError::Unexpected(anyhow::Error::new(error))
    }
}

impl From<HashError> for FactorError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Overloaded => FactorError::Overloaded,
            other => FactorError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<CodeError> for FactorError {
    fn from(error: CodeError) -> Self {
        match error {
            CodeError::InvalidCode | CodeError::NoLiveCode => FactorError::InvalidCode,
            CodeError::Throttled { retry_after } => FactorError::SendThrottled { retry_after },
            CodeError::Unexpected(cause) => FactorError::Unexpected(cause),
        }
    }
}

impl From<crate::delivery::DeliveryError> for FactorError {
    fn from(error: crate::delivery::DeliveryError) -> Self {
        FactorError::Unexpected(anyhow::Error::new(error))
    }
}

impl From<LoginError> for FactorError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::SessionEnded => FactorError::SessionEnded,
            LoginError::Overloaded => FactorError::Overloaded,
            LoginError::Throttled { retry_after } => FactorError::Throttled { retry_after },
            other => FactorError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

/// What a person needs to add the authenticator to an app.
#[derive(Debug)]
pub struct TotpEnrollment {
    /// Base32, no padding.
    pub secret: String,
    /// The same, in groups of four for typing.
    pub secret_grouped: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// The outcome of confirming a second factor (an authenticator, a phone, email codes).
#[derive(Debug)]
pub struct FactorConfirmed {
    /// The rotated session, now fully authenticated.
    pub token: SessionToken,
    /// New recovery codes when this was the user's first second factor, else empty.
    pub recovery_codes: Vec<String>,
}

impl Service {
    /// Starts (re-)enrollment of an authenticator app. Replacing an active one needs the
    /// current password; the active one keeps working until the new one is confirmed.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn start_totp_enrollment(
        &self,
        session: &ActiveSession,
        password: Option<&SecretString>,
    ) -> Result<TotpEnrollment, FactorError> {
        let user = &session.user;
        if !self.policy().await?.policy.allows(Method::Totp) {
            return Err(FactorError::MethodNotAllowed);
        }
        if self.stores.factors.active_totp(user.id).await?.is_some() {
            // A session from before the user enrolled must not replace what they enrolled.
            if session.state != SessionState::Authenticated {
                return Err(FactorError::SessionEnded);
            }
            let password = password.ok_or(FactorError::InvalidPassword)?;
            self.check_password(user, password).await?;
        }
        let (secret, params) = self.pending_or_new_totp(user.id).await?;
        let uri = KeyUri::new(
            self.settings.totp_issuer.clone(),
            user.email.as_str(),
            secret.clone(),
            params,
        )
        .map_err(|error| anyhow::anyhow!("cannot build the key URI: {error}"))?
        .to_uri();
        let qr_svg = twofold_otp::qr_svg(&uri)
            .map_err(|error| anyhow::anyhow!("cannot draw the QR code: {error}"))?;
        tracing::info!("authenticator enrollment started");
        Ok(TotpEnrollment {
            secret: secret.to_base32(),
            secret_grouped: secret.to_base32_grouped(),
            otpauth_uri: uri,
            qr_svg,
        })
    }

    /// The user's recent pending authenticator, so that reloading the set-up page does not
    /// invalidate a code already scanned; else a new one.
    async fn pending_or_new_totp(
        &self,
        user_id: UserId,
    ) -> Result<(Secret, TotpParams), FactorError> {
        let now = self.clock.now();
        let pending = self.stores.factors.pending_totp(user_id).await?;
        if let Some(pending) =
            pending.filter(|pending| now - pending.created_at < self.settings.login_step_timeout)
        {
            let secret = self
                .sealer
                .open(&pending.secret, &totp_context(user_id, pending.id))?;
            return Ok((Secret::from_bytes(secret.to_vec()), totp_params(&pending)?));
        }
        let secret = Secret::generate().map_err(|error| anyhow::anyhow!("{error}"))?;
        let params = TotpParams::default();
        let id = Uuid::new_v4();
        let sealed = self
            .sealer
            .seal(secret.as_bytes(), &totp_context(user_id, id))?;
        let totp = NewTotp {
            id,
            user_id,
            secret: sealed,
            algorithm: params.algorithm.as_str().to_owned(),
            digits: params.digits,
            period_seconds: u32::try_from(params.period).unwrap_or(30),
            created_at: now,
        };
        self.stores.factors.insert_pending_totp(&totp).await?;
        Ok((secret, params))
    }

    /// Confirms the pending authenticator with a code from the app: it becomes the user's active
    /// authenticator (the previous one stops working), the step used is consumed, and the session
    /// becomes fully authenticated under a new token.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id))]
    pub async fn confirm_totp(
        &self,
        session: &ActiveSession,
        code: &str,
    ) -> Result<FactorConfirmed, FactorError> {
        let user = &session.user;
        let pending = self
            .stores
            .factors
            .pending_totp(user.id)
            .await?
            .ok_or(FactorError::NoPendingEnrollment)?;
        let first_factor = self.refuse_replacement_from_old_session(session).await?;
        self.take_attempt(user.id).await?;
        let Some(step) = self.matching_step(&pending, code).await? else {
            return Err(self.fail_code(user.id).await);
        };
        let now = self.clock.now();
        let replaced = self.stores.factors.active_totp(user.id).await?.is_some();
        let (recovery_codes, code_hashes) = if first_factor {
            self.new_recovery_codes(user.id).await?
        } else {
            (Vec::new(), Vec::new())
        };
        let audit = self.audit_record(factor_added(user.id, Method::Totp, replaced));
        let keys = self.sealer.keys();
        let (key_id, key) = keys.current_audit_key();
        // The authenticator, its recovery codes and its audit entry in one transaction: a
        // crash leaves the enrollment whole or absent.
        let activation = TotpActivation {
            user_id: user.id,
            id: pending.id,
            step,
            now,
            recovery_codes: first_factor.then_some(code_hashes.as_slice()),
            audit: &audit,
            key: ChainKey { id: key_id, key },
        };
        if !self
            .stores
            .factors
            .activate_totp_enrollment(&activation)
            .await?
        {
            self.give_back_attempt(user.id).await?;
            // A concurrent confirmation with the same code won.
            return Err(FactorError::InvalidCode);
        }
        self.after_enrollment(session, Method::Totp, first_factor, recovery_codes)
            .await
    }

    /// Whether the user is enrolling their first factor. Adding or replacing one next to an
    /// existing factor needs a fully authenticated session: a session from before the user
    /// enrolled must not replace what they enrolled.
    pub(crate) async fn refuse_replacement_from_old_session(
        &self,
        session: &ActiveSession,
    ) -> Result<bool, FactorError> {
        let first_factor = !self.has_second_factor(&session.user).await?;
        if !first_factor && session.state != SessionState::Authenticated {
            return Err(FactorError::SessionEnded);
        }
        Ok(first_factor)
    }

    /// After a factor was stored (`replaced`: in place of one of the same kind): records it,
    /// clears the lockout, ends the user's other sessions (whatever was signed in with the old
    /// set of factors), makes recovery codes when this is the first factor, makes this session
    /// fully authenticated under a new token, and tells the owner.
    pub(crate) async fn finish_enrollment(
        &self,
        session: &ActiveSession,
        method: Method,
        first_factor: bool,
        replaced: bool,
    ) -> Result<FactorConfirmed, FactorError> {
        let user = &session.user;
        self.audit(factor_added(user.id, method, replaced)).await?;
        let recovery_codes = if first_factor {
            self.issue_recovery_codes(user.id).await?
        } else {
            Vec::new()
        };
        self.after_enrollment(session, method, first_factor, recovery_codes)
            .await
    }

    /// What follows a stored and recorded factor: clears the lockout, ends the user's other
    /// sessions, makes this session fully authenticated under a new token, and tells the owner.
    async fn after_enrollment(
        &self,
        session: &ActiveSession,
        method: Method,
        first_factor: bool,
        recovery_codes: Vec<String>,
    ) -> Result<FactorConfirmed, FactorError> {
        let user = &session.user;
        let now = self.clock.now();
        self.stores
            .throttle
            .clear_failures(&second_factor_key(user.id))
            .await?;
        self.stores
            .sessions
            .delete_user_sessions(user.id, Some(&session.id_hash))
            .await?;
        let token = self
            .rotate(session, SessionState::Authenticated, now)
            .await?;
        if session.state != SessionState::Authenticated {
            self.record_sign_in(user.id, Some(method), true, now)
                .await?;
        }
        tracing::info!(
            first_factor,
            method = method.as_str(),
            "second factor confirmed"
        );
        self.notify(user, Notice::FactorAdded(method)).await;
        Ok(FactorConfirmed {
            token,
            recovery_codes,
        })
    }

    /// The `second_factor` step: a TOTP, SMS, email or recovery code, accepted once.
    #[tracing::instrument(skip_all, fields(user_id = %session.user.id, method = method.as_str()))]
    pub(crate) async fn second_factor_step(
        &self,
        session: &ActiveSession,
        method: Method,
        code: &str,
    ) -> Result<LoginStep, FactorError> {
        if session.state != SessionState::SecondFactor {
            return Err(FactorError::SessionEnded);
        }
        let user = &session.user;
        if !self.policy().await?.policy.allows(method) {
            return Err(FactorError::MethodNotAllowed);
        }
        self.take_attempt(user.id).await?;
        let now = self.clock.now();
        let mut spent_recovery_code = None;
        let accepted = match method {
            Method::Totp => match self.stores.factors.active_totp(user.id).await? {
                Some(active) => match self.matching_step(&active, code).await? {
                    Some(step) => {
                        if !self
                            .stores
                            .factors
                            .consume_totp_step(active.id, step, now)
                            .await?
                        {
                            // A right code whose step is already used: a replay or the loser of
                            // a race with the owner, not a guess, so it does not count towards
                            // a lockout (which would lock out the owner who just signed in).
                            self.give_back_attempt(user.id).await?;
                            return Err(FactorError::InvalidCode);
                        }
                        true
                    }
                    None => false,
                },
                None => false,
            },
            Method::RecoveryCode => {
                spent_recovery_code = self.consume_recovery_code(user.id, code).await?;
                spent_recovery_code.is_some()
            }
            Method::Sms => {
                self.accept_login_code(user, &session.id_hash, CodePurpose::LoginSms, code)
                    .await?
            }
            Method::Email => {
                self.accept_login_code(user, &session.id_hash, CodePurpose::LoginEmail, code)
                    .await?
            }
        };
        if !accepted {
            return Err(self
                .fail_sign_in_code(user.id, "second_factor", Some(method))
                .await);
        }
        // The right code clears the count whether or not this request wins the rotation; the
        // two writes are independent, so they go to the store together (one commit on SQLite).
        let key = second_factor_key(user.id);
        let (cleared, rotated) = tokio::join!(
            self.stores.throttle.clear_failures(&key),
            self.rotate(session, SessionState::Authenticated, now)
        );
        let token = match rotated {
            Ok(token) => token,
            Err(error) => {
                // Another request of this session won the rotation (or the session ended): this
                // one signs nobody in, so the recovery code it spent goes back.
                if let Some(spent) = &spent_recovery_code {
                    self.release_recovery_code(spent).await?;
                }
                return Err(error.into());
            }
        };
        // The sign-in has happened; a count left standing only makes a later lockout come
        // sooner, which is no reason to fail it.
        if let Err(error) = cleared {
            tracing::error!(%error, "could not clear the second-factor failure count");
        }
        if spent_recovery_code.is_some() {
            let left = self.stores.factors.recovery_codes_left(user.id).await?;
            self.audit(Event::own(EventKind::RecoveryCodeUsed, user.id).with("left", left))
                .await?;
            self.notify(user, Notice::RecoveryCodeUsed { left }).await;
        }
        self.record_sign_in(user.id, Some(method), false, now)
            .await?;
        tracing::info!("second factor accepted");
        Ok(LoginStep {
            token,
            state: SessionState::Authenticated,
            methods: Vec::new(),
        })
    }

    /// The step `code` matches for this authenticator at the current time, if any.
    async fn matching_step(
        &self,
        record: &TotpRecord,
        code: &str,
    ) -> Result<Option<u64>, FactorError> {
        let skew = u64::from(self.policy().await?.policy.totp_skew_steps);
        let Ok(code) = TotpCode::parse(code, record.digits) else {
            return Ok(None);
        };
        let secret = self
            .sealer
            .open(&record.secret, &totp_context(record.user_id, record.id))?;
        let totp = Totp::new(Secret::from_bytes(secret.to_vec()), totp_params(record)?);
        let unix = u64::try_from(self.clock.now().unix_timestamp()).unwrap_or(0);
        Ok(totp.verify(&code, unix, skew))
    }
}

/// The parameters of a stored authenticator.
fn totp_params(record: &TotpRecord) -> Result<TotpParams, FactorError> {
    let algorithm = record
        .algorithm
        .parse()
        .map_err(|_| anyhow::anyhow!("stored TOTP algorithm {:?} is unknown", record.algorithm))?;
    TotpParams::new(algorithm, record.digits, u64::from(record.period_seconds)).map_err(|error| {
        FactorError::Unexpected(anyhow::anyhow!(
            "stored TOTP parameters are invalid: {error}"
        ))
    })
}

/// The audit entry of a factor added (`replaced`: in place of one of the same kind).
fn factor_added(user_id: UserId, method: Method, replaced: bool) -> Event {
    let added = Event::own(EventKind::FactorAdded, user_id).with("method", method.as_str());
    if replaced {
        added.with("replaced", true)
    } else {
        added
    }
}

/// The associated data a TOTP secret is sealed with: its owner and its row (also used by
/// `twofold keys rotate` to re-seal it).
pub fn totp_context(user_id: UserId, id: Uuid) -> Vec<u8> {
    format!("totp:{user_id}:{id}").into_bytes()
}
