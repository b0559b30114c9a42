//! What second factors a user has, read in one query: the account page and every sign-in need
//! all of it, and one round trip costs less than four.

use time::OffsetDateTime;

/// The user's factors at a glance (not their secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactorOverview {
    /// The active authenticator, if any: when it was confirmed and last used.
    pub totp: Option<TotpUse>,
    /// A verified phone (the SMS factor).
    pub phone: bool,
    /// Email codes are enabled.
    pub email: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

/// When an active authenticator was confirmed and last used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TotpUse {
    pub confirmed_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}
