//! The sign-in pages: email and password, a new password in place of a temporary one, and
//! sign-out. The choice of second factor at forced enrollment is in `enroll`.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;
use twofold_core::login::{LoginError, LoginStep};
use twofold_core::session::SessionState;
use twofold_core::throttle::retry_after_seconds;

use super::{Csrf, PageForm, render, with_retry_after};
use crate::error::ApiError;
use crate::gate::{CurrentSession, MaybeSession, page_for};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    error: Option<String>,
}

/// Authenticator apps known to work (seed 000's tested list); any TOTP app does.
pub const KNOWN_AUTHENTICATOR_APPS: &[&str] = &[
    "Microsoft Authenticator",
    "Google Authenticator",
    "FreeOTP",
    "Authy",
    "Duo Mobile",
    "LastPass Authenticator",
    "OneLogin Protect",
];

#[derive(Deserialize)]
pub struct LoginForm {
    // Missing is treated as wrong (403), not as a malformed form.
    #[serde(default)]
    csrf: String,
    email: String,
    password: SecretString,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    new_password: SecretString,
}

#[derive(Deserialize)]
pub struct CsrfOnlyForm {
    #[serde(default)]
    csrf: String,
}

/// `/`: wherever the session belongs.
pub async fn root(MaybeSession(session): MaybeSession) -> Redirect {
    Redirect::to(page_for(session.map(|session| session.state)))
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeSession(session): MaybeSession,
) -> Result<Response, ApiError> {
    if session
        .as_ref()
        .is_some_and(|session| session.state == SessionState::Authenticated)
    {
        return Ok(Redirect::to("/account").into_response());
    }
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = LoginPage {
        title: "Sign in",
        csrf: &csrf.token,
        email: "",
        error: None,
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

pub async fn login_submit(
    State(state): State<AppState>,
    MaybeSession(previous): MaybeSession,
    PageForm(form): PageForm<LoginForm>,
) -> Result<Response, ApiError> {
    match state.service.login(&form.email, &form.password).await {
        Ok(step) => {
            // A new login replaces whatever session this browser held.
            if let Some(previous) = previous {
                state.service.logout(&previous.id_hash).await?;
            }
            Ok(continue_login(&state, step))
        }
        Err(LoginError::InvalidCredentials) => {
            let page = LoginPage {
                title: "Sign in",
                csrf: &form.csrf,
                email: &form.email,
                error: Some("The email or password is not right."),
            };
            Ok(render(StatusCode::UNAUTHORIZED, &page))
        }
        Err(LoginError::Throttled { retry_after }) => {
            let message = try_again_message(retry_after);
            let page = LoginPage {
                title: "Sign in",
                csrf: &form.csrf,
                email: &form.email,
                error: Some(&message),
            };
            Ok(with_retry_after(
                render(StatusCode::TOO_MANY_REQUESTS, &page),
                retry_after,
            ))
        }
        Err(other) => Err(other.into()),
    }
}

/// "Too many attempts. Try again in 30 seconds." (minutes, rounded up, from a minute on).
fn try_again_message(retry_after: time::Duration) -> String {
    let seconds = retry_after_seconds(retry_after);
    let (count, unit) = if seconds < 60 {
        (seconds, "second")
    } else {
        (seconds.div_ceil(60), "minute")
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("Too many attempts. Try again in {count} {unit}{plural}.")
}

pub async fn password_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = PasswordPage {
        title: "Choose a new password",
        csrf: &csrf.token,
        email: session.user.email.as_str(),
        error: None,
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

pub async fn password_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, ApiError> {
    match state
        .service
        .change_temporary_password(&session, &form.new_password)
        .await
    {
        Ok(step) => Ok(continue_login(&state, step)),
        Err(LoginError::WeakPassword(reason)) => {
            let page = PasswordPage {
                title: "Choose a new password",
                csrf: &form.csrf,
                email: session.user.email.as_str(),
                error: Some(capitalise(&reason.to_string())),
            };
            Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn logout_submit(
    State(state): State<AppState>,
    MaybeSession(session): MaybeSession,
    PageForm(_checked): PageForm<CsrfOnlyForm>,
) -> Result<Response, ApiError> {
    if let Some(session) = session {
        state.service.logout(&session.id_hash).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, state.cookies.clear_session_cookie());
    Ok(response)
}

/// Sets the rotated session cookie and sends the browser to the page of the new state.
pub(crate) fn continue_login(state: &AppState, step: LoginStep) -> Response {
    let mut response = Redirect::to(page_for(Some(step.state))).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        state.cookies.session_cookie(step.token.expose()),
    );
    response
}

pub fn method_label(method: &str) -> &'static str {
    match method {
        "totp" => "Authenticator app",
        "sms" => "Text message (SMS)",
        "email" => "Email code",
        "recovery_code" => "Recovery code",
        _ => "Other",
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

impl super::CsrfProtected for CsrfOnlyForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

impl super::CsrfProtected for LoginForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

impl super::CsrfProtected for PasswordForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_told_in_seconds_then_whole_minutes() {
        let message = |seconds| try_again_message(time::Duration::seconds(seconds));
        assert_eq!(message(1), "Too many attempts. Try again in 1 second.");
        assert_eq!(message(30), "Too many attempts. Try again in 30 seconds.");
        assert_eq!(message(60), "Too many attempts. Try again in 1 minute.");
        assert_eq!(message(61), "Too many attempts. Try again in 2 minutes.");
        assert_eq!(message(900), "Too many attempts. Try again in 15 minutes.");
    }
}
