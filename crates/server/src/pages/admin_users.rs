//! The Users list of the administration (seed 004, steps 2 to 4), and the new-user form, whose
//! "Two-Factor Authentication" choice is "No" until the administrator picks "Yes". The new
//! user's temporary password is either sent to them as a secure message (seed 000: the
//! administrator never sees it; the box is not ticked by default) or shown once, on the answer to
//! the form. It is never emailed (the email only links to the message, or says that an account
//! exists) and never stored in clear.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use secrecy::ExposeSecret;
use serde::Deserialize;
use twofold_core::accounts::{AccountError, NewAccount};
use twofold_core::messages::MessageError;

use super::account::utc_minute;
use super::admin::{Section, Tab, USERS_PER_PAGE, methods_text, query_value, tabs, user_href};
use super::{Csrf, CsrfProtected, PageForm, render, with_retry_after};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

/// One row of the list.
struct UserRow {
    href: String,
    email: String,
    two_factor: &'static str,
    /// `off`, `pending` or `enabled`, for the cell's style.
    two_factor_state: &'static str,
    methods: String,
    role: &'static str,
    status: &'static str,
    last_sign_in: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    search: &'a str,
    rows: Vec<UserRow>,
    total: u64,
    /// The numbers (from 1) of the first and last user shown.
    first: u64,
    last: u64,
    previous: Option<String>,
    next: Option<String>,
}

/// The address of page `page` (from 1) of the list for `search`.
fn page_href(search: &str, page: u64) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if !search.is_empty() {
        query.append_pair("search", search);
    }
    if page > 1 {
        query.append_pair("page", &page.to_string());
    }
    let query = query.finish();
    if query.is_empty() {
        "/admin/users".to_owned()
    } else {
        format!("/admin/users?{query}")
    }
}

/// `GET /admin/users?search=…&page=…`: 50 users a page, by email address.
pub async fn users_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let search = query_value(query.as_deref(), "search").unwrap_or_default();
    let search = search.trim();
    let page = query_value(query.as_deref(), "page")
        .and_then(|page| page.parse::<u64>().ok())
        .filter(|page| *page >= 1)
        .unwrap_or(1);
    let per_page = u64::from(USERS_PER_PAGE);
    let offset = (page - 1).saturating_mul(per_page);
    let listed = state
        .service
        .list_users(Some(search), offset, USERS_PER_PAGE)
        .await?;
    let rows: Vec<UserRow> = listed
        .users
        .into_iter()
        .map(|listed| UserRow {
            href: user_href(listed.user.id),
            email: listed.user.email.as_str().to_owned(),
            two_factor: listed.two_factor.label(),
            two_factor_state: listed.two_factor.as_str(),
            methods: methods_text(&listed.methods),
            role: if listed.user.is_admin {
                "Administrator"
            } else {
                "User"
            },
            status: if listed.user.disabled {
                "Disabled"
            } else {
                "Active"
            },
            last_sign_in: listed
                .user
                .last_login_at
                .map_or_else(|| "Never".to_owned(), utc_minute),
        })
        .collect();
    let shown = rows.len() as u64;
    let csrf = Csrf::for_request(&state, &headers)?;
    let view = UsersPage {
        title: "Users",
        csrf: &csrf.token,
        tabs: tabs(Section::Users),
        search,
        first: if shown == 0 { 0 } else { offset + 1 },
        last: offset + shown,
        previous: (page > 1).then(|| page_href(search, page - 1)),
        next: (offset + shown < listed.total).then(|| page_href(search, page + 1)),
        total: listed.total,
        rows,
    };
    Ok(csrf.apply(render(StatusCode::OK, &view)))
}

#[derive(Template)]
#[template(path = "admin_user_new.html")]
struct NewUserPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    email: &'a str,
    administrator: bool,
    require_two_factor: bool,
    /// "Send the temporary password to the user as a secure message".
    by_message: bool,
    error: Option<String>,
}

/// The answer to the new-user form when the password went as a secure message.
#[derive(Template)]
#[template(path = "admin_user_messaged.html")]
struct MessagedPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    email: &'a str,
    user_href: &'a str,
}

/// The answer to the new-user form and to "Send invitation again": the temporary password,
/// once.
#[derive(Template)]
#[template(path = "admin_temporary_password.html")]
pub struct TemporaryPasswordPage<'a> {
    pub title: &'a str,
    pub csrf: &'a str,
    pub tabs: [Tab; 3],
    pub email: &'a str,
    pub user_href: &'a str,
    pub password: &'a str,
    /// The earlier temporary password stopped working (an invitation sent again).
    pub replaced: bool,
}

/// `GET /admin/users/new`.
pub async fn new_user_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = NewUserPage {
        title: "New user",
        csrf: &csrf.token,
        tabs: tabs(Section::Users),
        email: "",
        administrator: false,
        require_two_factor: false,
        // Seed 004's flow (the password shown once, to hand over) stays the default.
        by_message: false,
        error: None,
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

#[derive(Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    /// The checkbox: present when ticked.
    administrator: Option<String>,
    /// `no` or `yes`.
    #[serde(default)]
    two_factor: String,
    /// The "send as a secure message" checkbox: present when ticked.
    by_message: Option<String>,
}

impl CsrfProtected for NewUserForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

/// `POST /admin/users/new`: creates the user and sends the temporary password as a secure
/// message, or shows it once.
pub async fn new_user_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<NewUserForm>,
) -> Result<Response, ApiError> {
    let administrator = form.administrator.is_some();
    let require_two_factor = form.two_factor == "yes";
    let by_message = form.by_message.is_some();
    let again = |status: StatusCode, error: String| {
        let page = NewUserPage {
            title: "New user",
            csrf: &form.csrf,
            tabs: tabs(Section::Users),
            email: &form.email,
            administrator,
            require_two_factor,
            by_message,
            error: Some(error),
        };
        Ok(render(status, &page))
    };
    if !matches!(form.two_factor.as_str(), "no" | "yes") {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose No or Yes for two-factor authentication.".to_owned(),
        );
    }
    let account = NewAccount {
        email: form.email.trim(),
        password: None,
        is_admin: administrator,
        require_2fa: require_two_factor,
    };
    if by_message {
        let messaged = match state
            .service
            .create_account_by_message(&session.user, account, None)
            .await
        {
            Ok(messaged) => messaged,
            Err(MessageError::InvalidRecipient(reason)) => {
                return again(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    super::forms::sentence(&reason.to_string()),
                );
            }
            Err(MessageError::Invalid(reason)) => {
                return again(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    super::forms::sentence(reason),
                );
            }
            Err(MessageError::EmailTaken) => {
                return again(
                    StatusCode::CONFLICT,
                    "A user with this email address exists already.".to_owned(),
                );
            }
            Err(MessageError::Overloaded) => {
                return again(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy. Try again in a few seconds.".to_owned(),
                );
            }
            Err(MessageError::Throttled { retry_after }) => {
                let response = again(
                    StatusCode::TOO_MANY_REQUESTS,
                    "You have sent too many secure messages in the last hour. Wait, then try again."
                        .to_owned(),
                )?;
                return Ok(with_retry_after(response, retry_after));
            }
            Err(other) => return Err(other.into()),
        };
        let href = user_href(messaged.user.id);
        let page = MessagedPage {
            title: "User created",
            csrf: &form.csrf,
            tabs: tabs(Section::Users),
            email: messaged.user.email.as_str(),
            user_href: &href,
        };
        return Ok(render(StatusCode::OK, &page));
    }
    let created = match state
        .service
        .create_account(Some(session.user.id), account)
        .await
    {
        Ok(created) => created,
        Err(AccountError::InvalidEmail(reason)) => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                super::forms::sentence(&reason.to_string()),
            );
        }
        Err(AccountError::EmailTaken) => {
            return again(
                StatusCode::CONFLICT,
                "A user with this email address exists already.".to_owned(),
            );
        }
        Err(AccountError::Overloaded) => {
            return again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy. Try again in a few seconds.".to_owned(),
            );
        }
        Err(other) => return Err(other.into()),
    };
    let Some(password) = created.temporary_password else {
        return Err(ApiError::internal(
            &"a new user without a chosen password got no temporary password",
        ));
    };
    let href = user_href(created.user.id);
    let page = TemporaryPasswordPage {
        title: "User created",
        csrf: &form.csrf,
        tabs: tabs(Section::Users),
        email: created.user.email.as_str(),
        user_href: &href,
        password: password.expose_secret(),
        replaced: false,
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_the_search() {
        assert_eq!(page_href("", 1), "/admin/users");
        assert_eq!(page_href("", 2), "/admin/users?page=2");
        assert_eq!(
            page_href("a&b@x.org", 3),
            "/admin/users?search=a%26b%40x.org&page=3"
        );
    }
}
