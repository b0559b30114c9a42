//! The account security page of a signed-in user: the email address (verified or not, with
//! "Send verification code"), the two-factor status (with "Set up two-factor" or "Turn off
//! two-factor" when the user may), each second factor (the authenticator app, the phone masked
//! with "Change phone", email codes), the recovery codes left (with a form to make a new set)
//! and the user's recent security activity from the audit log.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use twofold_core::recovery::FEW_RECOVERY_CODES;
use twofold_core::store::AuditRecord;
use twofold_core::user::{Method, UserId};

use super::phone::current_phone;
use super::two_factor::REQUIRED_REASON;
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

/// Entries of "Recent security activity".
const RECENT_ACTIVITY: u32 = 10;

/// One entry of "Recent security activity".
struct ActivityRow {
    at: String,
    what: String,
    ip: String,
}

/// The account's recent audit entries; one an administrator caused says so.
fn activity_rows(user: UserId, records: Vec<AuditRecord>) -> Vec<ActivityRow> {
    records
        .into_iter()
        .map(|record| {
            let mut what = super::admin::describe(&record);
            if record.event.actor.is_some_and(|actor| actor != user) {
                what.push_str(" (by an administrator)");
            }
            ActivityRow {
                at: utc_minute(record.event.at),
                what,
                ip: record.event.ip.unwrap_or_default(),
            }
        })
        .collect()
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
    /// The verified phone, masked.
    phone: Option<String>,
    email_codes: bool,
    /// Rows of factors the policy allows (or the user has anyway).
    sms_offered: bool,
    email_codes_offered: bool,
    has_factor: bool,
    /// 2FA is required: it cannot be turned off.
    required_reason: Option<&'a str>,
    recovery_codes_left: u32,
    few_recovery_codes: bool,
    /// What the user just did, in a sentence.
    notice: Option<&'a str>,
    activity: Vec<ActivityRow>,
    /// "Where you are signed in".
    sessions: Vec<super::sessions::SessionRow>,
    /// The top bar links to the administration.
    administration: bool,
}

/// The notice for `?done=…` (or the older `?changed=1`).
fn notice_of(query: Option<&str>) -> Option<&'static str> {
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes()).find_map(|(key, value)| {
        match (key.as_ref(), value.as_ref()) {
            ("changed", "1") => {
                Some("Your new authenticator app is set up. The old one no longer works.")
            }
            ("done", "totp") => Some("Your authenticator app is set up."),
            ("done", "phone") => Some(
                "Your phone number is verified. Sign-in codes can now be texted to it, and it is your fallback phone.",
            ),
            ("done", "email-verified") => Some("Your email address is verified."),
            ("done", "email-2fa") => Some("Sign-in codes by email are turned on."),
            ("done", "password") => Some(super::password::CHANGED_NOTICE),
            ("done", "session-ended") => Some("That session is signed out."),
            ("done", "sessions-ended") => Some("Every other session is signed out."),
            ("done", "two-factor-off") => Some(
                "Two-factor authentication is off. Signing in now needs only your password.",
            ),
            _ => None,
        }
    })
}

/// The notice of a signed-in user with a secure message waiting (the return cookie) and no
/// second factor to read it with.
const MESSAGE_WAITING: &str = "A secure message is waiting for you. Set up two-factor authentication to read it: you are taken to it when you are done.";

/// `GET /account`, where every finished sign-in and enrollment lands. A browser that asked for
/// a secure message on the way (the return cookie) goes on to it, once its user has a second
/// factor to read it with; until then the cookie stays and the page says why.
pub async fn account_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut notice = notice_of(query.as_deref());
    if let Some(path) = state.cookies.return_path(&headers) {
        if state
            .service
            .usable_methods(&session.user)
            .await?
            .is_empty()
        {
            notice = Some(MESSAGE_WAITING);
        } else {
            let mut response = Redirect::to(path).into_response();
            response
                .headers_mut()
                .append(header::SET_COOKIE, state.cookies.clear_return_cookie());
            return Ok(response);
        }
    }
    let summary = state.service.account_summary(&session.user).await?;
    let phone = current_phone(&state, &session.user).await?;
    let csrf = Csrf::for_request(&state, &headers)?;
    let allowed = &state.service.allowed_methods().await?;
    let required = state.service.two_factor_required(&session.user).await?;
    let activity = activity_rows(
        session.user.id,
        state
            .service
            .recent_activity(session.user.id, RECENT_ACTIVITY)
            .await?,
    );
    let administration = state.service.may_administer(&session).await?;
    let sessions = super::sessions::session_rows(&state, &session).await?;
    let has = |method: Method| summary.methods.contains(&method);
    let authenticator = has(Method::Totp).then(|| AuthenticatorRow {
        added: summary
            .totp_added_at
            .map_or_else(|| "unknown".to_owned(), utc_minute),
        last_used: summary
            .totp_last_used_at
            .map_or_else(|| "never".to_owned(), utc_minute),
    });
    let has_factor = [Method::Totp, Method::Sms, Method::Email]
        .into_iter()
        .any(has);
    let page = AccountPage {
        title: "Account security",
        csrf: &csrf.token,
        email: summary.user.email.as_str(),
        email_verified: summary.user.email_verified,
        two_factor: summary.two_factor.label(),
        authenticator,
        sms_offered: phone.is_some() || allowed.contains(&Method::Sms),
        phone,
        email_codes: has(Method::Email),
        email_codes_offered: has(Method::Email) || allowed.contains(&Method::Email),
        has_factor,
        required_reason: required.then_some(REQUIRED_REASON),
        few_recovery_codes: has_factor && summary.recovery_codes_left < FEW_RECOVERY_CODES,
        recovery_codes_left: summary.recovery_codes_left,
        notice,
        activity,
        sessions,
        administration,
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

    #[test]
    fn notices_are_chosen_from_a_fixed_list() {
        assert_eq!(
            notice_of(Some("done=phone")).map(|text| text.starts_with("Your phone")),
            Some(true)
        );
        assert!(notice_of(Some("changed=1")).is_some());
        assert_eq!(notice_of(Some("done=%3Cscript%3E")), None);
        assert_eq!(notice_of(None), None);
    }
}
