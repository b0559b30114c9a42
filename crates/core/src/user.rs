//! Users as the domain sees them, and the facts their two-factor status is derived from.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::email::Email;

/// A user's stable identifier (random UUID, so ids reveal neither count nor order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(Uuid);

impl UserId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = uuid::Error;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(text).map(Self)
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    /// PHC string of the Argon2id hash.
    pub password_hash: String,
    /// The password is a temporary one: the next login must set a new one first.
    pub password_change_required: bool,
    pub is_admin: bool,
    /// An administrator requires this user to use a second factor.
    pub require_2fa: bool,
    /// Since when `require_2fa` is on (the grace period of the policy counts from here).
    pub require_2fa_since: Option<OffsetDateTime>,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
}

/// The second-factor methods, by their names on the wire.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Totp,
    Sms,
    Email,
    RecoveryCode,
}

impl Method {
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Sms => "sms",
            Method::Email => "email",
            Method::RecoveryCode => "recovery_code",
        }
    }
}

/// `off`, `pending` or `enabled`: derived from whether 2FA is required and whether a factor is
/// enrolled, never stored beside those facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TwoFactorStatus {
    Off,
    Pending,
    Enabled,
}

impl TwoFactorStatus {
    pub fn derive(required: bool, has_enrolled_factor: bool) -> Self {
        match (required, has_enrolled_factor) {
            (_, true) => TwoFactorStatus::Enabled,
            (true, false) => TwoFactorStatus::Pending,
            (false, false) => TwoFactorStatus::Off,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            TwoFactorStatus::Off => "off",
            TwoFactorStatus::Pending => "pending",
            TwoFactorStatus::Enabled => "enabled",
        }
    }

    /// The words the admin pages use (seed 004).
    pub fn label(&self) -> &'static str {
        match self {
            TwoFactorStatus::Off => "No",
            TwoFactorStatus::Pending => "Pending setup on next login",
            TwoFactorStatus::Enabled => "Enabled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_facts() {
        assert_eq!(TwoFactorStatus::derive(false, false), TwoFactorStatus::Off);
        assert_eq!(
            TwoFactorStatus::derive(true, false),
            TwoFactorStatus::Pending
        );
        assert_eq!(
            TwoFactorStatus::derive(true, true),
            TwoFactorStatus::Enabled
        );
        assert_eq!(
            TwoFactorStatus::derive(false, true),
            TwoFactorStatus::Enabled
        );
        assert_eq!(
            TwoFactorStatus::Pending.label(),
            "Pending setup on next login"
        );
    }
}
