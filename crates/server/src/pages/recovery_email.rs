//! New recovery codes with an emailed code instead of the password (seed 002: "Create new
//! Recover Key → Send verification code to your registered email → Enter the code →
//! Download"): `GET /account/recovery-codes/email` explains, `POST` sends the code and answers
//! the code form, `POST /account/recovery-codes/email/confirm` shows the new codes.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use twofold_core::login::ActiveSession;

use super::forms::{
    CodeForm, EnterCodePage, Link, NextForm, Resend, SendCodePage, code_failure, render_with,
};
use super::recovery::codes_page;
use super::{Csrf, PageForm, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const TITLE: &str = "Create new recovery codes";

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
            "New recovery codes replace all of your current ones: the old codes stop working at once.".to_owned(),
            format!(
                "To check that it is you, we send a code to your registered email address, {}.",
                session.user.email.as_str()
            ),
        ],
        error,
        action: "/account/recovery-codes/email",
        button: "Send verification code",
        next: String::new(),
        links: vec![
            Link::new("/account/recovery-codes", "Use your password instead"),
            Link::new("/account", "Cancel"),
        ],
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
        action: "/account/recovery-codes/email/confirm",
        label: "Code from the email",
        button: "Create new recovery codes",
        prefill: String::new(),
        next: String::new(),
        resend: Some(Resend {
            action: "/account/recovery-codes/email",
            label: "Send a new code",
        }),
        links: vec![Link::new("/account", "Cancel")],
    }
}

/// `GET /account/recovery-codes/email`.
pub async fn intro(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = intro_page(&session, &csrf.token, None);
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
            &code_page(&session, &form.csrf, true, None),
        )),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = intro_page(&session, &form.csrf, Some(message));
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
    let page = code_page(&session, &csrf.token, false, None);
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
                let page = code_page(&session, &form.csrf, false, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}
