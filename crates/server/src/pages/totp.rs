//! Setting up an authenticator app on pages: at forced enrollment and by a signed-in user.
//!
//! - `GET /account/totp/setup` starts an enrollment (replacing any pending one) and shows the QR
//!   code, the key for typing, and the field for the first code. A user who already has an
//!   authenticator is sent to `/account/totp/change`, which asks for the password first.
//! - `POST /account/totp/setup` confirms with the first code: the first factor leads to the
//!   recovery codes (shown once, in this response); an app added beside another factor, or a
//!   replacement, leads to the account page.
//!   A wrong code keeps the pending authenticator, so the page asks for a newer code without
//!   showing the key again (the page never holds the secret beyond what it showed once).
//! - `GET`/`POST /account/totp/change`: the password, then the QR code of a new authenticator
//!   ("Change phone" / "Retrieve New Code"); the old one works until the new one is confirmed.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use twofold_core::factors::{FactorError, TotpEnrollment};
use twofold_core::login::ActiveSession;
use twofold_core::session::SessionState;
use twofold_core::user::Method;

use super::login::KNOWN_AUTHENTICATOR_APPS;
use super::recovery::{PasswordForm, PasswordPage, WRONG_PASSWORD, codes_page};
use super::{Csrf, PageForm, factor_failure, render, wait_message, with_retry_after};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const WRONG_CODE: &str =
    "That code is not right. Check the time on your phone and try the newest code.";
const CHANGE_INTRO: &str = "To move your sign-in codes to a new phone or app, enter your password. Your current authenticator app keeps working until the new one is set up.";

#[derive(Template)]
#[template(path = "totp_setup.html")]
struct SetupPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    /// The new key, shown right after it was made; `None` when asking again for a code.
    enrollment: Option<&'a TotpEnrollment>,
    error: Option<&'a str>,
    /// The user is signed in (not held at enrollment), so the account page is a way out.
    signed_in: bool,
    apps: &'static [&'static str],
}

impl<'a> SetupPage<'a> {
    fn new(session: &'a ActiveSession, csrf: &'a str) -> Self {
        let signed_in = session.state == SessionState::Authenticated;
        Self {
            title: if signed_in {
                "Set up your authenticator app"
            } else {
                "Set up two-factor authentication"
            },
            csrf,
            email: session.user.email.as_str(),
            enrollment: None,
            error: None,
            signed_in,
            apps: KNOWN_AUTHENTICATOR_APPS,
        }
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// `GET /account/totp/setup`: a new key and its QR code.
pub async fn setup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    match state.service.start_totp_enrollment(&session, None).await {
        Ok(enrollment) => {
            let csrf = Csrf::for_request(&state, &headers)?;
            let page = SetupPage {
                enrollment: Some(&enrollment),
                ..SetupPage::new(&session, &csrf.token)
            };
            Ok(csrf.apply(render(StatusCode::OK, &page)))
        }
        // An authenticator exists: replacing it needs the password.
        Err(FactorError::InvalidPassword) => {
            Ok(Redirect::to("/account/totp/change").into_response())
        }
        Err(other) => factor_failure(other),
    }
}

/// `POST /account/totp/setup`: the first code from the app.
pub async fn setup_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, ApiError> {
    let ask_again = |status: StatusCode, error: &str| {
        let page = SetupPage {
            error: Some(error),
            ..SetupPage::new(&session, &form.csrf)
        };
        render(status, &page)
    };
    // Whether an authenticator is being replaced (not added beside another factor).
    let replacing = state
        .service
        .enrolled_methods(&session.user)
        .await?
        .contains(&Method::Totp);
    match state.service.confirm_totp(&session, &form.code).await {
        Ok(confirmed) => {
            let mut response = if confirmed.recovery_codes.is_empty() {
                Redirect::to(if replacing {
                    "/account?changed=1"
                } else {
                    "/account?done=totp"
                })
                .into_response()
            } else {
                let email = session.user.email.as_str();
                codes_page(&state, &form.csrf, email, &confirmed.recovery_codes, false)
            };
            response.headers_mut().insert(
                header::SET_COOKIE,
                state.cookies.session_cookie(confirmed.token.expose()),
            );
            Ok(response)
        }
        Err(FactorError::InvalidCode) => Ok(ask_again(StatusCode::UNAUTHORIZED, WRONG_CODE)),
        Err(FactorError::Throttled { retry_after }) => Ok(with_retry_after(
            ask_again(StatusCode::TOO_MANY_REQUESTS, &wait_message(retry_after)),
            retry_after,
        )),
        Err(other) => factor_failure(other),
    }
}

fn change_form<'a>(csrf: &'a str, email: &'a str, error: Option<&'a str>) -> PasswordPage<'a> {
    PasswordPage {
        title: "Change authenticator app",
        csrf,
        email,
        intro: CHANGE_INTRO,
        action: "/account/totp/change",
        button: "Retrieve new code",
        error,
        alternative: None,
    }
}

/// `GET /account/totp/change`: asks for the password.
pub async fn change_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = change_form(&csrf.token, session.user.email.as_str(), None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/totp/change`: with the right password, the QR code of a new authenticator.
pub async fn change_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, ApiError> {
    match state
        .service
        .start_totp_enrollment(&session, Some(&form.password))
        .await
    {
        Ok(enrollment) => {
            let page = SetupPage {
                title: "Set up your new authenticator app",
                enrollment: Some(&enrollment),
                ..SetupPage::new(&session, &form.csrf)
            };
            Ok(render(StatusCode::OK, &page))
        }
        Err(FactorError::InvalidPassword) => {
            let page = change_form(
                &form.csrf,
                session.user.email.as_str(),
                Some(WRONG_PASSWORD),
            );
            Ok(render(StatusCode::UNAUTHORIZED, &page))
        }
        Err(other) => factor_failure(other),
    }
}

impl super::CsrfProtected for CodeForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}
