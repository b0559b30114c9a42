//! "Reset two-factor" at the second step of a sign-in (seed 003): `GET /login/reset` offers to
//! text a reset code to the fallback phone ("Send reset SMS code"), `POST /login/reset` sends it
//! and answers the code form, and `POST /login/reset/confirm` ("Reset Two-Factor") removes the
//! user's second factors and moves the login on to choosing a new one.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use twofold_core::factors::FactorError;
use twofold_core::two_factor::SentTo;

use super::forms::{
    CodeForm, EnterCodePage, Link, NextForm, Resend, SendCodePage, code_failure, render_with,
};
use super::login::continue_login;
use super::phone::current_phone;
use super::{Csrf, MessagePage, PageForm, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const TITLE: &str = "Reset two-factor authentication";

fn intro_page<'a>(csrf: &'a str, phone: &str, error: Option<String>) -> SendCodePage<'a> {
    SendCodePage {
        title: TITLE,
        csrf,
        signed_in: false,
        paragraphs: vec![
            format!(
                "No longer have your authenticator app or other second step? We can text a reset code to your fallback phone, {phone}."
            ),
            "With the code, your current second factors are removed and you set up a new one right away. The code works for ten minutes.".to_owned(),
        ],
        error,
        action: "/login/reset",
        button: "Send reset SMS code",
        next: String::new(),
        links: vec![Link::new("/login/verify", "Back to two-step verification")],
    }
}

fn code_page(csrf: &str, sent_to: Option<String>, error: Option<String>) -> EnterCodePage<'_> {
    EnterCodePage {
        title: TITLE,
        csrf,
        signed_in: false,
        intro: sent_to
            .is_none()
            .then(|| "Enter the reset code from the text message we sent you.".to_owned()),
        sent_to,
        error,
        action: "/login/reset/confirm",
        label: "Reset code",
        button: "Reset Two-Factor",
        prefill: String::new(),
        next: String::new(),
        resend: Some(Resend {
            action: "/login/reset",
            label: "Send a new reset code",
        }),
        links: vec![Link::new("/login/verify", "Back to two-step verification")],
    }
}

fn no_fallback_phone() -> Response {
    let page = MessagePage {
        title: "No fallback phone",
        message: "Your account has no phone to send a reset code to. Use a recovery code, or ask your administrator to reset your two-factor authentication.",
        link_href: "/login/verify",
        link_text: "Back to two-step verification",
    };
    render(StatusCode::CONFLICT, &page)
}

/// `GET /login/reset`.
pub async fn reset_intro(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let Some(phone) = current_phone(&state, &session.user).await? else {
        return Ok(no_fallback_phone());
    };
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = intro_page(&csrf.token, &phone, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /login/reset`: texts the reset code; answers the code form.
pub async fn reset_send(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<NextForm>,
) -> Result<Response, ApiError> {
    match state.service.send_reset_code(&session).await {
        Ok(SentTo::Phone(to) | SentTo::Email(to)) => Ok(render(
            StatusCode::OK,
            &code_page(&form.csrf, Some(to), None),
        )),
        Err(FactorError::MethodNotEnrolled) => Ok(no_fallback_phone()),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let phone = current_phone(&state, &session.user)
                    .await?
                    .unwrap_or_default();
                let page = intro_page(&form.csrf, &phone, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}

/// `GET /login/reset/confirm`: the code form.
pub async fn reset_code_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = code_page(&csrf.token, None, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /login/reset/confirm`: with the right code, on to choosing a new second factor.
pub async fn reset_confirm(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, ApiError> {
    match state
        .service
        .reset_with_fallback_phone(&session, &form.code)
        .await
    {
        Ok(step) => Ok(continue_login(&state, step)),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = code_page(&form.csrf, None, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}
