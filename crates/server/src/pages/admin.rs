//! The administration pages (seed 004, "Requiring Two-Factor Authentication for Your Users";
//! seed 002, "Security Policy"): what every one of them shares. The tabs, the reading of query
//! strings and `{id}` paths, the words for the second factors, and the pages for what an
//! administrator's action can run into (an unknown user, their own account, an invitation
//! already accepted).
//!
//! The sections live beside this module: `admin_users` (the list and the new-user form),
//! `admin_user` (one user: require, reset, disable, send the invitation again),
//! `admin_policy` and `admin_audit`. Every route is behind `Gate::AdminPage`; every change is a
//! POST carrying the CSRF token, answered by a redirect whose notice is picked from a fixed
//! list by a key (never text taken from the URL).

use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use twofold_core::accounts::AccountError;
use twofold_core::audit::EventKind;
use twofold_core::store::AuditRecord;
use twofold_core::user::{Method, UserId};

use super::{MessagePage, render};
use crate::error::ApiError;

/// Users on one page of the list.
pub const USERS_PER_PAGE: u32 = 50;

/// The sections of the administration, one tab each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Users,
    Policy,
    Audit,
}

/// One tab of the administration's tab bar.
#[derive(Debug, Clone)]
pub struct Tab {
    pub href: &'static str,
    pub text: &'static str,
    /// The tab of the page shown (`aria-current="page"`).
    pub current: bool,
}

/// The tab bar, with `section` marked as the current one.
pub fn tabs(section: Section) -> [Tab; 3] {
    [
        (Section::Users, "/admin/users", "Users"),
        (Section::Policy, "/admin/policy", "Security policy"),
        (Section::Audit, "/admin/audit", "Audit log"),
    ]
    .map(|(of, href, text)| Tab {
        href,
        text,
        current: of == section,
    })
}

/// `GET /admin`: the administration opens on its users.
pub async fn home() -> Redirect {
    Redirect::to("/admin/users")
}

/// The value of `key` in a query string (the first one, decoded).
pub fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
}

/// The user of a `/admin/users/{id}` path; `None` for anything but a UUID.
pub fn user_id(text: &str) -> Option<UserId> {
    text.parse().ok()
}

/// The address of a user's page.
pub fn user_href(id: UserId) -> String {
    format!("/admin/users/{id}")
}

/// What the pages call a second factor.
pub fn method_label(method: Method) -> &'static str {
    match method {
        Method::Totp => "Authenticator app",
        Method::Sms => "Text message (SMS)",
        Method::Email => "Email codes",
        Method::RecoveryCode => "Recovery codes",
    }
}

/// The factors of a user in a few words, for a table cell.
pub fn methods_text(methods: &[Method]) -> String {
    let labels: Vec<&str> = methods
        .iter()
        .filter(|method| **method != Method::RecoveryCode)
        .map(|method| method_label(*method))
        .collect();
    if labels.is_empty() {
        "None".to_owned()
    } else {
        labels.join(", ")
    }
}

const UTC_SECOND: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");

/// `YYYY-MM-DD HH:MM:SS UTC`, for the log.
pub fn utc_second(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(UTC_SECOND)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// The sentence for an entry of the log (its kind as stored when this version does not know
/// it).
pub fn describe(record: &AuditRecord) -> String {
    EventKind::parse(&record.event.kind).map_or_else(
        || record.event.kind.clone(),
        |kind| kind.describe().to_owned(),
    )
}

/// A detail object as `key: value` pairs (strings without quotes).
pub fn details_text(detail: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(detail) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(text) => format!("{key}: {text}"),
                other => format!("{key}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => detail.to_owned(),
    }
}

/// The page for a user that does not exist (or an `{id}` that is no user id).
pub fn unknown_user() -> Response {
    let page = MessagePage {
        title: "No such user",
        message: "There is no user with this address. They may have been removed.",
        link_href: "/admin/users",
        link_text: "Back to the users",
    };
    render(StatusCode::NOT_FOUND, &page)
}

/// The page for an administrator's action that the domain refused, with a link back to
/// `back` (the user's page); an unexpected failure stays a logged 500.
pub fn refusal(error: AccountError, back: &str) -> Result<Response, ApiError> {
    let (status, title, message) = match error {
        AccountError::NotFound => return Ok(unknown_user()),
        AccountError::OwnAccount => (
            StatusCode::CONFLICT,
            "Not on your own account",
            "Administrators cannot disable their own account or reset their own two-factor authentication here. Another administrator can; your own second factor can be changed from your account page.",
        ),
        AccountError::InvitationAccepted => (
            StatusCode::CONFLICT,
            "There is no invitation to send again",
            "This user has signed in and chosen their own password already.",
        ),
        AccountError::Overloaded => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy",
            "Go back and try again in a few seconds.",
        ),
        other => return Err(other.into()),
    };
    let page = MessagePage {
        title,
        message,
        link_href: back,
        link_text: "Back to the user",
    };
    Ok(render(status, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tab_is_current() {
        let tabs = tabs(Section::Policy);
        let current: Vec<&str> = tabs
            .iter()
            .filter(|tab| tab.current)
            .map(|tab| tab.text)
            .collect();
        assert_eq!(current, ["Security policy"]);
    }

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            query_value(Some("search=a%40b.c&page=2"), "search").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(query_value(Some("page=2"), "search"), None);
        assert_eq!(query_value(None, "search"), None);
    }

    #[test]
    fn methods_read_as_words() {
        assert_eq!(methods_text(&[]), "None");
        assert_eq!(
            methods_text(&[Method::Totp, Method::Sms, Method::RecoveryCode]),
            "Authenticator app, Text message (SMS)"
        );
    }

    #[test]
    fn only_uuids_are_user_ids() {
        assert!(user_id("not-a-uuid").is_none());
        assert!(user_id(&UserId::random().to_string()).is_some());
    }
}
