//! `/login/verify`: the second step of a sign-in, with a code from the authenticator app or,
//! behind a disclosure, a recovery code. Each code is accepted once; the session rotates to
//! `authenticated` on success.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use twofold_core::factors::FactorError;
use twofold_core::user::Method;

use super::login::continue_login;
use super::{Csrf, PageForm, factor_failure, render, wait_message, with_retry_after};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const WRONG_CODE: &str = "That code is not right.";

#[derive(Template)]
#[template(path = "verify.html")]
struct VerifyPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    /// The recovery-code form is open (the last attempt used it).
    recovery_open: bool,
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    method: Method,
    #[serde(default)]
    code: String,
}

pub async fn verify_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = VerifyPage {
        title: "Two-step verification",
        csrf: &csrf.token,
        email: session.user.email.as_str(),
        error: None,
        recovery_open: false,
    };
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
    let again = |status: StatusCode, error: &str| {
        let page = VerifyPage {
            title: "Two-step verification",
            csrf: &form.csrf,
            email: session.user.email.as_str(),
            error: Some(error),
            recovery_open: form.method == Method::RecoveryCode,
        };
        render(status, &page)
    };
    match outcome {
        Ok(step) => Ok(continue_login(&state, step)),
        Err(FactorError::InvalidCode) => Ok(again(StatusCode::UNAUTHORIZED, WRONG_CODE)),
        Err(FactorError::Throttled { retry_after }) => Ok(with_retry_after(
            again(StatusCode::TOO_MANY_REQUESTS, &wait_message(retry_after)),
            retry_after,
        )),
        Err(other) => factor_failure(other),
    }
}

impl super::CsrfProtected for VerifyForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}
