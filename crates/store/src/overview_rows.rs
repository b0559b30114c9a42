//! The factor overview: one query over the four factor tables, for both backends.

use anyhow::Context;
use twofold_core::store::{FactorOverview, TotpUse};

use crate::rows::{count_to_u32, from_unix};

/// `?1` is the user id.
pub(crate) const SQLITE_FACTOR_OVERVIEW: &str = "SELECT \
     EXISTS (SELECT 1 FROM totp_authenticators WHERE user_id = ?1 AND active), \
     (SELECT confirmed_at FROM totp_authenticators WHERE user_id = ?1 AND active), \
     (SELECT last_used_at FROM totp_authenticators WHERE user_id = ?1 AND active), \
     EXISTS (SELECT 1 FROM phone_factors WHERE user_id = ?1), \
     EXISTS (SELECT 1 FROM email_factors WHERE user_id = ?1), \
     (SELECT COUNT(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL)";

/// `$1` is the user id.
pub(crate) const POSTGRES_FACTOR_OVERVIEW: &str = "SELECT \
     EXISTS (SELECT 1 FROM totp_authenticators WHERE user_id = $1 AND active), \
     (SELECT confirmed_at FROM totp_authenticators WHERE user_id = $1 AND active), \
     (SELECT last_used_at FROM totp_authenticators WHERE user_id = $1 AND active), \
     EXISTS (SELECT 1 FROM phone_factors WHERE user_id = $1), \
     EXISTS (SELECT 1 FROM email_factors WHERE user_id = $1), \
     (SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL)";

/// The overview as the query returns it (times in unix seconds).
pub(crate) struct OverviewRow {
    pub totp: bool,
    pub totp_confirmed_at: Option<i64>,
    pub totp_last_used_at: Option<i64>,
    pub phone: bool,
    pub email: bool,
    pub recovery_codes_left: i64,
}

impl TryFrom<OverviewRow> for FactorOverview {
    type Error = anyhow::Error;

    fn try_from(row: OverviewRow) -> anyhow::Result<FactorOverview> {
        let time = |value: Option<i64>, column: &str| {
            value
                .map(from_unix)
                .transpose()
                .with_context(|| format!("totp_authenticators.{column}"))
        };
        let totp = if row.totp {
            Some(TotpUse {
                confirmed_at: time(row.totp_confirmed_at, "confirmed_at")?,
                last_used_at: time(row.totp_last_used_at, "last_used_at")?,
            })
        } else {
            None
        };
        Ok(FactorOverview {
            totp,
            phone: row.phone,
            email: row.email,
            recovery_codes_left: count_to_u32(row.recovery_codes_left)?,
        })
    }
}
