//! `/login/verify`: the second step of a sign-in, with a code from the authenticator app, a code
//! sent by text or email on request ("Text me a code", "Email me a code": `POST
//! /login/send-code`), or, behind a disclosure, a recovery code. Each code is accepted once;
//! the session rotates to `authenticated` on success. A user with a phone also gets the
//! "Reset two-factor" link (seed 003).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use twofold_core::factors::FactorError;
use twofold_core::login::ActiveSession;
use twofold_core::two_factor::SentTo;
use twofold_core::user::Method;

use super::forms::send_wait_message;
use super::login::continue_login;
use super::{Csrf, PageForm, factor_failure, render, wait_message, with_retry_after};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const WRONG_CODE: &str = "That code is not right.";

/// The form for a code sent by text or email.
struct SentCode {
    /// `sms` or `email`.
    method: &'static str,
    /// Where the code went, right after sending it.
    to: Option<String>,
    /// "from the text message" / "from the email".
    source: &'static str,
}

impl SentCode {
    fn new(method: Method, to: Option<String>) -> Option<SentCode> {
        let (method, source) = match method {
            Method::Sms => ("sms", "from the text message"),
            Method::Email => ("email", "from the email"),
            Method::Totp | Method::RecoveryCode => return None,
        };
        Some(SentCode { method, to, source })
    }
}

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    /// The recovery-code form is open (the last attempt used it).
    recovery_open: bool,
    /// The user's factors: which forms and buttons to offer.
    totp: bool,
    sms: bool,
    email_codes: bool,
    sent_code: Option<SentCode>,
    /// The user has a (fallback) phone: "Reset two-factor".
    can_reset: bool,
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    method: Method,
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
pub struct SendCodeForm {
    #[serde(default)]
    csrf: String,
    method: Method,
}

/// The page for `session`'s user; `error` and the open forms vary.
async fn verify_page<'a>(
    state: &AppState,
    session: &'a ActiveSession,
    csrf: &'a str,
    error: Option<&'a str>,
    sent_code: Option<SentCode>,
    recovery_open: bool,
) -> Result<VerifyPage<'a>, ApiError> {
    let methods = state.service.enrolled_methods(&session.user).await?;
    let has = |method: Method| methods.contains(&method);
    Ok(VerifyPage {
        title: "Two-step verification",
        csrf,
        email: session.user.email.as_str(),
        error,
        recovery_open,
        totp: has(Method::Totp),
        sms: has(Method::Sms),
        email_codes: has(Method::Email),
        sent_code,
        can_reset: has(Method::Sms),
    })
}

pub async fn verify_page_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = verify_page(&state, &session, &csrf.token, None, None, false).await?;
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

pub async fn verify_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<VerifyForm>,
) -> Result<Response, ApiError> {
    let outcome = state
        .service
        .verify_second_factor(&session, form.method, &form.code)
        .await;
    let (status, message, retry_after) = match outcome {
        Ok(step) => return Ok(continue_login(&state, step)),
        Err(FactorError::InvalidCode) => (StatusCode::UNAUTHORIZED, WRONG_CODE.to_owned(), None),
        Err(FactorError::Throttled { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            wait_message(retry_after),
            Some(retry_after),
        ),
        Err(other) => return factor_failure(other),
    };
    let page = verify_page(
        &state,
        &session,
        &form.csrf,
        Some(&message),
        SentCode::new(form.method, None),
        form.method == Method::RecoveryCode,
    )
    .await?;
    let response = render(status, &page);
    Ok(match retry_after {
        Some(retry_after) => with_retry_after(response, retry_after),
        None => response,
    })
}

/// `POST /login/send-code`: "Text me a code" / "Email me a code"; answers the page with the
/// form for that code.
pub async fn send_code_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<SendCodeForm>,
) -> Result<Response, ApiError> {
    let outcome = state.service.send_login_code(&session, form.method).await;
    let (status, message, retry_after) = match outcome {
        Ok(SentTo::Phone(to) | SentTo::Email(to)) => {
            let sent = SentCode::new(form.method, Some(to));
            let page = verify_page(&state, &session, &form.csrf, None, sent, false).await?;
            return Ok(render(StatusCode::OK, &page));
        }
        Err(FactorError::SendThrottled { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            send_wait_message(retry_after),
            Some(retry_after),
        ),
        Err(FactorError::Throttled { retry_after }) => (
            StatusCode::TOO_MANY_REQUESTS,
            wait_message(retry_after),
            Some(retry_after),
        ),
        Err(FactorError::MethodNotEnrolled) => (
            StatusCode::CONFLICT,
            "Your account has no such way to get a code.".to_owned(),
            None,
        ),
        Err(other) => return factor_failure(other),
    };
    // A code may have gone out a moment ago: keep its form.
    let sent = SentCode::new(form.method, None);
    let page = verify_page(&state, &session, &form.csrf, Some(&message), sent, false).await?;
    let response = render(status, &page);
    Ok(match retry_after {
        Some(retry_after) => with_retry_after(response, retry_after),
        None => response,
    })
}

/// `GET /login/send-code` (a reload): the second-step page.
pub async fn back_to_verify() -> Response {
    Redirect::to("/login/verify").into_response()
}

impl super::CsrfProtected for VerifyForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

impl super::CsrfProtected for SendCodeForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}
