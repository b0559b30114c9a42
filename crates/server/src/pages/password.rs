//! `/account/password`: a signed-in user changes their own password — the current one, then
//! the new one twice. On success the other sessions end, this one gets a new cookie, and the
//! account page says so.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use twofold_core::account_password::PasswordChangeError;
use twofold_core::factors::FactorError;
use twofold_core::login::LoginError;

use super::forms::sentence;
use super::recovery::WRONG_PASSWORD;
use super::{Csrf, CsrfProtected, PageForm, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

/// The account page's notice after a change (`/account?done=password`).
pub const CHANGED_NOTICE: &str =
    "Your password is changed. Everywhere else you were signed in, you are signed out.";

const MISMATCH: &str = "The two new passwords are not the same.";

#[derive(Template)]
#[template(path = "account_password.html")]
struct ChangePasswordPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct ChangePasswordForm {
    #[serde(default)]
    csrf: String,
    current_password: SecretString,
    new_password: SecretString,
    confirm_password: SecretString,
}

impl CsrfProtected for ChangePasswordForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

fn form_page(csrf: &str, email: &str, status: StatusCode, error: Option<String>) -> Response {
    let page = ChangePasswordPage {
        title: "Change password",
        csrf,
        email,
        error,
    };
    render(status, &page)
}

/// `GET /account/password`.
pub async fn change_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = form_page(
        &csrf.token,
        session.user.email.as_str(),
        StatusCode::OK,
        None,
    );
    Ok(csrf.apply(page))
}

/// `POST /account/password`.
pub async fn change_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<ChangePasswordForm>,
) -> Result<Response, ApiError> {
    let email = session.user.email.as_str();
    if form.new_password.expose_secret() != form.confirm_password.expose_secret() {
        return Ok(form_page(
            &form.csrf,
            email,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(MISMATCH.to_owned()),
        ));
    }
    let refused = |status, message: String| Ok(form_page(&form.csrf, email, status, Some(message)));
    match state
        .service
        .change_password(&session, &form.current_password, &form.new_password)
        .await
    {
        Ok(changed) => {
            let mut response = Redirect::to("/account?done=password").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                state.cookies.session_cookie(changed.token.expose()),
            );
            Ok(response)
        }
        Err(PasswordChangeError::Reentry(FactorError::InvalidPassword)) => {
            refused(StatusCode::UNAUTHORIZED, WRONG_PASSWORD.to_owned())
        }
        Err(PasswordChangeError::WeakPassword(reason)) => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence(&reason.to_string()),
        ),
        Err(PasswordChangeError::SameAsCurrent) => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence(&PasswordChangeError::SameAsCurrent.to_string()),
        ),
        Err(PasswordChangeError::Reentry(other)) => factor_failure(other),
        Err(PasswordChangeError::Session(LoginError::SessionEnded)) => {
            Ok(Redirect::to("/login").into_response())
        }
        Err(PasswordChangeError::Session(other)) => Err(other.into()),
    }
}
