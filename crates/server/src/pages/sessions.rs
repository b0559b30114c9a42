//! The "Where you are signed in" section of the account page and its actions: each live
//! session with when it signed in and was last used, and "Sign out" for one of them or for all
//! the others. Each action opens a page that asks for the password (OWASP ASVS 5.0 7.5.2: ending
//! sessions needs the credentials re-entered), whose form POSTs with the CSRF token.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use twofold_core::account_sessions::SessionsError;
use twofold_core::factors::FactorError;
use twofold_core::login::ActiveSession;
use twofold_core::session::SessionState;

use super::account::utc_minute;
use super::recovery::{PasswordForm, PasswordPage, WRONG_PASSWORD};
use super::{Csrf, MessagePage, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::pages::PageForm;
use crate::state::AppState;

/// One row of "Where you are signed in".
pub struct SessionRow {
    pub id: String,
    pub current: bool,
    pub signed_in: String,
    pub last_used: String,
    /// Empty for a finished sign-in; else the step it stands at.
    pub pending: &'static str,
}

/// The rows for the account page, most recently used first.
pub async fn session_rows(
    state: &AppState,
    session: &ActiveSession,
) -> Result<Vec<SessionRow>, ApiError> {
    Ok(state
        .service
        .list_sessions(session)
        .await?
        .into_iter()
        .map(|view| SessionRow {
            id: view.id.as_str().to_owned(),
            current: view.current,
            signed_in: utc_minute(view.created_at),
            last_used: utc_minute(view.last_seen_at),
            pending: match view.state {
                SessionState::Authenticated => "",
                SessionState::PasswordChangeRequired => "choosing a new password",
                SessionState::SecondFactor => "at the second step of signing in",
                SessionState::EnrollmentRequired => "setting up a second factor",
            },
        })
        .collect())
}

fn end_one_form<'a>(
    csrf: &'a str,
    email: &'a str,
    action: &'a str,
    error: Option<&'a str>,
) -> PasswordPage<'a> {
    PasswordPage {
        title: "Sign out this session",
        csrf,
        email,
        intro: "Enter your password to sign this session out. Whoever uses it will have to sign in again.",
        action,
        button: "Sign out",
        error,
        alternative: None,
    }
}

fn end_others_form<'a>(csrf: &'a str, email: &'a str, error: Option<&'a str>) -> PasswordPage<'a> {
    PasswordPage {
        title: "Sign out everywhere else",
        csrf,
        email,
        intro: "Enter your password to sign out every other session of your account. This one stays signed in.",
        action: "/account/sessions/end-others",
        button: "Sign out all other sessions",
        error,
        alternative: None,
    }
}

/// A session id as the list shows it: 32 lowercase hex digits.
fn is_session_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

fn session_gone() -> Response {
    let page = MessagePage {
        title: "This session has ended",
        message: "It is not signed in any more.",
        link_href: "/account",
        link_text: "Back to your account",
    };
    render(StatusCode::NOT_FOUND, &page)
}

/// `GET /account/sessions/{id}/end`: asks for the password.
pub async fn end_one_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !is_session_id(&id) {
        return Ok(session_gone());
    }
    let csrf = Csrf::for_request(&state, &headers)?;
    let action = format!("/account/sessions/{id}/end");
    let page = end_one_form(&csrf.token, session.user.email.as_str(), &action, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/sessions/{id}/end`: with the right password, that session ends; ending the
/// current one signs out.
pub async fn end_one_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    Path(id): Path<String>,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, ApiError> {
    if !is_session_id(&id) {
        return Ok(session_gone());
    }
    match state
        .service
        .end_session(&session, &form.password, &id)
        .await
    {
        Ok(ended) if ended.current => {
            let mut response = Redirect::to("/login").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, state.cookies.clear_session_cookie());
            Ok(response)
        }
        Ok(_) => Ok(Redirect::to("/account?done=session-ended").into_response()),
        Err(SessionsError::Reentry(FactorError::InvalidPassword)) => {
            let action = format!("/account/sessions/{id}/end");
            let page = end_one_form(
                &form.csrf,
                session.user.email.as_str(),
                &action,
                Some(WRONG_PASSWORD),
            );
            Ok(render(StatusCode::UNAUTHORIZED, &page))
        }
        Err(SessionsError::Reentry(other)) => factor_failure(other),
        Err(SessionsError::NotFound) => Ok(session_gone()),
        Err(other) => Err(other.into()),
    }
}

/// `GET /account/sessions/end-others`: asks for the password.
pub async fn end_others_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = end_others_form(&csrf.token, session.user.email.as_str(), None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/sessions/end-others`: with the right password, every other session ends.
pub async fn end_others_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, ApiError> {
    match state
        .service
        .end_other_sessions(&session, &form.password)
        .await
    {
        Ok(_) => Ok(Redirect::to("/account?done=sessions-ended").into_response()),
        Err(SessionsError::Reentry(FactorError::InvalidPassword)) => {
            let page = end_others_form(
                &form.csrf,
                session.user.email.as_str(),
                Some(WRONG_PASSWORD),
            );
            Ok(render(StatusCode::UNAUTHORIZED, &page))
        }
        Err(SessionsError::Reentry(other)) => factor_failure(other),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_ids_reach_a_form_action() {
        assert!(is_session_id("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "\"><script>x</script>0123456789ab",
        ] {
            assert!(!is_session_id(bad), "{bad}");
        }
    }
}
