//! New recovery codes with an emailed code instead of the password (seed 002: "Create new
//! Recover Key → Send verification code to your registered email → Enter the code →
//! Download"): `GET /account/recovery-codes/email` explains, `POST` sends the code and answers
//! the code form, `POST /account/recovery-codes/email/confirm` shows the new codes.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::forms::{CodeForm, EmailedCodeStep, NextForm, code_failure, render_with};
use super::recovery::codes_page;
use super::{Csrf, PageForm, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const TITLE: &str = "Create new recovery codes";

const STEP: EmailedCodeStep = EmailedCodeStep {
    title: TITLE,
    what_it_does: "New recovery codes replace all of your current ones: the old codes stop working at once.",
    send_action: "/account/recovery-codes/email",
    confirm_action: "/account/recovery-codes/email/confirm",
    confirm_button: "Create new recovery codes",
    other_links: &[("/account/recovery-codes", "Use your password instead")],
};

/// `GET /account/recovery-codes/email`.
pub async fn intro(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = STEP.intro_page(&session, &csrf.token, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/recovery-codes/email`: emails the code; answers the code form.
pub async fn send(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<NextForm>,
) -> Result<Response, ApiError> {
    match state.service.send_recovery_codes_code(&session).await {
        Ok(()) => Ok(render(
            StatusCode::OK,
            &STEP.code_page(&session, &form.csrf, true, None),
        )),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = STEP.intro_page(&session, &form.csrf, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}

/// `GET /account/recovery-codes/email/confirm`: the code form.
pub async fn code_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = STEP.code_page(&session, &csrf.token, false, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/recovery-codes/email/confirm`: the new codes, shown once.
pub async fn confirm(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, ApiError> {
    match state
        .service
        .regenerate_recovery_codes_with_code(&session, &form.code)
        .await
    {
        Ok(codes) => Ok(codes_page(
            &state,
            &form.csrf,
            session.user.email.as_str(),
            &codes,
            true,
        )),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = STEP.code_page(&session, &form.csrf, false, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}
