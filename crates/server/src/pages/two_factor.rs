//! Turning two-factor authentication off on pages (seed 002): `GET
//! /account/two-factor/disable` explains and offers "Send verification code" (to the registered
//! address), `POST` sends it and answers the code form, and `POST
//! /account/two-factor/disable/confirm` turns 2FA off with the code. A user who must keep 2FA
//! (required by an administrator, or an administrator) is told why it cannot be turned off.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use twofold_core::factors::FactorError;
use twofold_core::login::ActiveSession;

use super::forms::{
    CodeForm, EnterCodePage, Link, NextForm, Resend, SendCodePage, code_failure, render_with,
};
use super::{Csrf, MessagePage, PageForm, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const TITLE: &str = "Turn off two-factor authentication";
pub const REQUIRED_REASON: &str = "Two-factor authentication is required for your account (by your administrator, or because you are an administrator), so it cannot be turned off.";

/// The page for a user who must keep 2FA.
pub fn required_page() -> Response {
    let page = MessagePage {
        title: "Two-factor authentication stays on",
        message: REQUIRED_REASON,
        link_href: "/account",
        link_text: "Back to your account",
    };
    render(StatusCode::FORBIDDEN, &page)
}

fn intro_page<'a>(
    session: &'a ActiveSession,
    csrf: &'a str,
    error: Option<String>,
) -> SendCodePage<'a> {
    SendCodePage {
        title: TITLE,
        csrf,
        signed_in: true,
        paragraphs: vec![
            "This removes your authenticator app, phone, email codes and recovery codes: signing in will need only your password.".to_owned(),
            format!(
                "To check that it is you, we send a code to your registered email address, {}.",
                session.user.email.as_str()
            ),
        ],
        error,
        action: "/account/two-factor/disable",
        button: "Send verification code",
        next: String::new(),
        links: vec![Link::new("/account", "Cancel")],
    }
}

fn code_page<'a>(
    session: &'a ActiveSession,
    csrf: &'a str,
    sent: bool,
    error: Option<String>,
) -> EnterCodePage<'a> {
    EnterCodePage {
        title: TITLE,
        csrf,
        signed_in: true,
        sent_to: sent.then(|| session.user.email.as_str().to_owned()),
        intro: (!sent).then(|| "Enter the code from the email we sent you.".to_owned()),
        error,
        action: "/account/two-factor/disable/confirm",
        label: "Code from the email",
        button: "Turn off two-factor authentication",
        prefill: String::new(),
        next: String::new(),
        resend: Some(Resend {
            action: "/account/two-factor/disable",
            label: "Send a new code",
        }),
        links: vec![Link::new("/account", "Cancel")],
    }
}

/// `GET /account/two-factor/disable`.
pub async fn disable_intro(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    if session.user.two_factor_required() {
        return Ok(required_page());
    }
    if !state.service.has_second_factor(&session.user).await? {
        let page = MessagePage {
            title: "Two-factor authentication is off",
            message: "Signing in needs only your password; there is nothing to turn off.",
            link_href: "/account",
            link_text: "Back to your account",
        };
        return Ok(render(StatusCode::OK, &page));
    }
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = intro_page(&session, &csrf.token, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/two-factor/disable`: emails the code; answers the code form.
pub async fn disable_send(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<NextForm>,
) -> Result<Response, ApiError> {
    match state.service.send_disable_code(&session).await {
        Ok(()) => Ok(render(
            StatusCode::OK,
            &code_page(&session, &form.csrf, true, None),
        )),
        Err(FactorError::TwoFactorRequired) => Ok(required_page()),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = intro_page(&session, &form.csrf, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}

/// `GET /account/two-factor/disable/confirm`: the code form.
pub async fn disable_code_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    if session.user.two_factor_required() {
        return Ok(required_page());
    }
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = code_page(&session, &csrf.token, false, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/two-factor/disable/confirm`.
pub async fn disable_confirm(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, ApiError> {
    match state.service.disable_two_factor(&session, &form.code).await {
        Ok(()) => Ok(Redirect::to("/account?done=two-factor-off").into_response()),
        Err(FactorError::TwoFactorRequired) => Ok(required_page()),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = code_page(&session, &form.csrf, false, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}
