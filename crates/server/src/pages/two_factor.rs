//! Turning two-factor authentication off on pages (seed 002): `GET
//! /account/two-factor/disable` explains and offers "Send verification code" (to the registered
//! address), `POST` sends it and answers the code form, and `POST
//! /account/two-factor/disable/confirm` turns 2FA off with the code. A user who must keep 2FA
//! (required by an administrator, or an administrator) is told why it cannot be turned off.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use twofold_core::factors::FactorError;

use super::forms::{CodeForm, EmailedCodeStep, NextForm, code_failure, render_with};
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

const STEP: EmailedCodeStep = EmailedCodeStep {
    title: TITLE,
    what_it_does: "This removes your authenticator app, phone, email codes and recovery codes: signing in will need only your password.",
    send_action: "/account/two-factor/disable",
    confirm_action: "/account/two-factor/disable/confirm",
    confirm_button: "Turn off two-factor authentication",
    other_links: &[],
};

/// `GET /account/two-factor/disable`.
pub async fn disable_intro(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    if state.service.two_factor_required(&session.user).await? {
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
    let page = STEP.intro_page(&session, &csrf.token, None);
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
            &STEP.code_page(&session, &form.csrf, true, None),
        )),
        Err(FactorError::TwoFactorRequired) => Ok(required_page()),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = STEP.intro_page(&session, &form.csrf, Some(message));
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
    if state.service.two_factor_required(&session.user).await? {
        return Ok(required_page());
    }
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = STEP.code_page(&session, &csrf.token, false, None);
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
                let page = STEP.code_page(&session, &form.csrf, false, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}
