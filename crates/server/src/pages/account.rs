//! The account security page of a signed-in user: the email address, the two-factor status,
//! the authenticator app (added, last used, change) and the recovery codes left (with a form to
//! make a new set).

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use twofold_core::recovery::FEW_RECOVERY_CODES;
use twofold_core::user::Method;

use super::{Csrf, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const UTC_MINUTE: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute] UTC");

/// `YYYY-MM-DD HH:MM UTC`.
pub fn utc_minute(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(UTC_MINUTE)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// The authenticator app's row.
struct AuthenticatorRow {
    added: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    email_verified: bool,
    two_factor: &'a str,
    authenticator: Option<AuthenticatorRow>,
    recovery_codes_left: u32,
    few_recovery_codes: bool,
    /// Just back from replacing the authenticator app.
    changed: bool,
}

pub async fn account_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let summary = state.service.account_summary(&session.user).await?;
    let csrf = Csrf::for_request(&state, &headers)?;
    let authenticator = summary
        .methods
        .contains(&Method::Totp)
        .then(|| AuthenticatorRow {
            added: summary
                .totp_added_at
                .map_or_else(|| "unknown".to_owned(), utc_minute),
            last_used: summary
                .totp_last_used_at
                .map_or_else(|| "never".to_owned(), utc_minute),
        });
    let page = AccountPage {
        title: "Account security",
        csrf: &csrf.token,
        email: summary.user.email.as_str(),
        email_verified: summary.user.email_verified,
        two_factor: summary.two_factor.label(),
        few_recovery_codes: authenticator.is_some()
            && summary.recovery_codes_left < FEW_RECOVERY_CODES,
        authenticator,
        recovery_codes_left: summary.recovery_codes_left,
        changed: query
            .as_deref()
            .is_some_and(|query| query.split('&').any(|pair| pair == "changed=1")),
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_show_to_the_minute_in_utc() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_059).unwrap();
        assert_eq!(utc_minute(at), "2027-01-15 08:00 UTC");
        let elsewhere = at.to_offset(UtcOffset::from_hms(5, 30, 0).unwrap());
        assert_eq!(utc_minute(elsewhere), "2027-01-15 08:00 UTC");
    }
}
