//! Account management: creating users (with a chosen or a generated temporary password), the
//! first administrator, requiring 2FA, and the account summary the API and pages show.

use secrecy::SecretString;

use crate::audit::{Event, EventKind};
use crate::email::{Email, InvalidEmail};
use crate::hasher::HashError;
use crate::login::{allowed_of, enrolled_in};
use crate::password::{NewPassword, WeakPassword};
use crate::service::Service;
use crate::store::{NewUser, StoreError};
use crate::user::{Method, TwoFactorStatus, User, UserId};

/// The address of the administrator created on first start.
pub const FIRST_ADMIN_EMAIL: &str = "admin@localhost";

/// Temporary passwords: 20 symbols from an alphabet without look-alikes (about 117 bits).
const TEMPORARY_PASSWORD_ALPHABET: &[u8] =
    b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
const TEMPORARY_PASSWORD_LENGTH: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    InvalidEmail(#[from] InvalidEmail),
    #[error("an account with this email address exists")]
    EmailTaken,
    #[error("no such user")]
    NotFound,
    /// An administrator tried to disable their own account or reset their own 2FA.
    #[error(
        "administrators cannot disable their own account or reset their own two-factor authentication"
    )]
    OwnAccount,
    /// The user has chosen their own password: there is no invitation to send again.
    #[error("the user has already signed in and chosen a password")]
    InvitationAccepted,
    #[error(transparent)]
    WeakPassword(#[from] WeakPassword),
    #[error("the server is busy; try again shortly")]
    Overloaded,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => AccountError::EmailTaken,
            other => AccountError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<HashError> for AccountError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Overloaded => AccountError::Overloaded,
            other => AccountError::Unexpected(anyhow::Error::new(other)),
        }
    }
}

impl From<crate::login::LoginError> for AccountError {
    fn from(error: crate::login::LoginError) -> Self {
        AccountError::Unexpected(anyhow::Error::new(error))
    }
}

/// What to create.
#[derive(Debug)]
pub struct NewAccount<'a> {
    pub email: &'a str,
    /// `None`: generate a temporary password that must be changed at first login.
    pub password: Option<&'a SecretString>,
    pub is_admin: bool,
    pub require_2fa: bool,
}

/// A created user, with the temporary password when one was generated (shown once, never stored).
#[derive(Debug)]
pub struct CreatedAccount {
    pub user: User,
    pub temporary_password: Option<SecretString>,
}

/// What `GET /api/v1/account` and `user show` report.
#[derive(Debug, Clone)]
pub struct AccountSummary {
    pub user: User,
    pub two_factor: TwoFactorStatus,
    pub methods: Vec<Method>,
    pub recovery_codes_left: u32,
    pub totp_added_at: Option<time::OffsetDateTime>,
    pub totp_last_used_at: Option<time::OffsetDateTime>,
}

impl Service {
    /// Creates a user (see [`Service::create_account`] for the audited way).
    /// `actor` is recorded in the audit log before the user is stored (an address already
    /// taken is refused before that).
    pub(crate) async fn insert_account(
        &self,
        actor: Option<UserId>,
        account: NewAccount<'_>,
    ) -> Result<CreatedAccount, AccountError> {
        let email = Email::parse(account.email)?;
        if self.stores.users.user_by_email(&email).await?.is_some() {
            return Err(AccountError::EmailTaken);
        }
        let (new_user, temporary_password) = self.prepare_user(email, account).await?;
        self.audit(
            Event::by(EventKind::UserCreated, actor, Some(new_user.id))
                .with("email", new_user.email.as_str())
                .with("admin", new_user.is_admin)
                .with("require_2fa", new_user.require_2fa)
                .with("temporary_password", temporary_password.is_some()),
        )
        .await?;
        self.stores.users.insert_user(&new_user).await?;
        tracing::info!(user_id = %new_user.id, admin = new_user.is_admin, "user created");
        Ok(CreatedAccount {
            user: self.created(new_user),
            temporary_password,
        })
    }

    /// On an empty database, creates the first administrator with a temporary password and
    /// returns it; `None` when users exist (or another instance made the admin just now).
    #[tracing::instrument(skip_all)]
    pub async fn ensure_first_admin(&self) -> Result<Option<CreatedAccount>, AccountError> {
        if self.stores.users.count_users().await? > 0 {
            return Ok(None);
        }
        let email = Email::parse(FIRST_ADMIN_EMAIL)?;
        let request = NewAccount {
            email: FIRST_ADMIN_EMAIL,
            password: None,
            is_admin: true,
            require_2fa: true,
        };
        let (new_user, temporary_password) = self.prepare_user(email, request).await?;
        if !self.stores.users.insert_first_user(&new_user).await? {
            return Ok(None);
        }
        tracing::info!(user_id = %new_user.id, "first administrator created");
        self.audit(
            Event::by(EventKind::UserCreated, None, Some(new_user.id))
                .with("admin", true)
                .with("first_admin", true),
        )
        .await?;
        Ok(Some(CreatedAccount {
            user: self.created(new_user),
            temporary_password,
        }))
    }

    pub async fn find_user(&self, email: &str) -> Result<User, AccountError> {
        let email = Email::parse(email)?;
        self.stores
            .users
            .user_by_email(&email)
            .await?
            .ok_or(AccountError::NotFound)
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<User, AccountError> {
        self.stores
            .users
            .user_by_id(id)
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// The account as its owner and the admin tools see it.
    pub async fn account_summary(&self, user: &User) -> Result<AccountSummary, AccountError> {
        let policy = self.policy().await?;
        let overview = self.stores.factors.factor_overview(user.id).await?;
        let methods = allowed_of(enrolled_in(&overview), &policy);
        let has_factor = !methods.is_empty();
        let two_factor = TwoFactorStatus::derive(policy.requires_two_factor(user), has_factor);
        let recovery_codes_left = if has_factor {
            overview.recovery_codes_left
        } else {
            0
        };
        Ok(AccountSummary {
            user: user.clone(),
            two_factor,
            methods,
            recovery_codes_left,
            totp_added_at: overview.totp.and_then(|totp| totp.confirmed_at),
            totp_last_used_at: overview.totp.and_then(|totp| totp.last_used_at),
        })
    }

    async fn prepare_user(
        &self,
        email: Email,
        account: NewAccount<'_>,
    ) -> Result<(NewUser, Option<SecretString>), AccountError> {
        let (password, temporary) = match account.password {
            Some(chosen) => (NewPassword::parse(chosen, &email)?, None),
            None => {
                let generated = generate_temporary_password()?;
                (NewPassword::generated(generated.clone()), Some(generated))
            }
        };
        let password_hash = self.hasher.hash(password.secret()).await?;
        let user = NewUser {
            id: UserId::random(),
            email,
            password_hash,
            password_change_required: temporary.is_some(),
            is_admin: account.is_admin,
            require_2fa: account.require_2fa,
            created_at: self.clock.now(),
        };
        Ok((user, temporary))
    }

    fn created(&self, new_user: NewUser) -> User {
        User {
            id: new_user.id,
            email: new_user.email,
            password_hash: new_user.password_hash,
            password_change_required: new_user.password_change_required,
            is_admin: new_user.is_admin,
            require_2fa: new_user.require_2fa,
            require_2fa_since: new_user.require_2fa.then_some(new_user.created_at),
            email_verified: false,
            disabled: false,
            created_at: new_user.created_at,
            last_login_at: None,
        }
    }
}

/// A random temporary password, uniformly drawn (rejection sampling, no modulo bias).
pub fn generate_temporary_password() -> Result<SecretString, AccountError> {
    let alphabet_len = TEMPORARY_PASSWORD_ALPHABET.len();
    // The largest multiple of the alphabet size that fits in a byte: bytes above it are redrawn.
    let limit = 256 - 256 % alphabet_len;
    let mut password = String::with_capacity(TEMPORARY_PASSWORD_LENGTH);
    let mut buffer = zeroize::Zeroizing::new([0u8; 64]);
    while password.len() < TEMPORARY_PASSWORD_LENGTH {
        getrandom::fill(buffer.as_mut())
            .map_err(|error| anyhow::anyhow!("OS random generator: {error}"))?;
        for &byte in buffer.iter() {
            if (byte as usize) < limit && password.len() < TEMPORARY_PASSWORD_LENGTH {
                password.push(char::from(
                    TEMPORARY_PASSWORD_ALPHABET[byte as usize % alphabet_len],
                ));
            }
        }
    }
    Ok(SecretString::from(password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn temporary_passwords_are_long_unambiguous_and_pass_the_rules() {
        let email = Email::parse("bob@example.com").unwrap();
        let first = generate_temporary_password().unwrap();
        let second = generate_temporary_password().unwrap();
        assert_ne!(first.expose_secret(), second.expose_secret());
        for password in [&first, &second] {
            let text = password.expose_secret();
            assert_eq!(text.len(), TEMPORARY_PASSWORD_LENGTH);
            assert!(
                text.bytes()
                    .all(|byte| TEMPORARY_PASSWORD_ALPHABET.contains(&byte))
            );
            assert!(
                !text.contains(' ')
                    && !text.contains('0')
                    && !text.contains('O')
                    && !text.contains('l')
            );
            assert!(NewPassword::parse(password, &email).is_ok());
        }
    }
}
