//! The account's email address on pages: verifying it, and email codes as a second factor.
//!
//! - `POST /account/email/send-code` emails a code and answers the code form;
//!   `GET /account/email/verify` is that form (the link in the email fills the code in with
//!   `?code=`; a GET never verifies anything), and `POST /account/email/verify` verifies.
//! - `GET /account/email-2fa` explains email codes (or asks to verify the address first),
//!   `POST /account/email-2fa` sends the code that turns them on, and `GET`/`POST
//!   /account/email-2fa/confirm` take it.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use twofold_core::factors::FactorError;
use twofold_core::login::ActiveSession;
use twofold_core::session::SessionState;
use twofold_core::user::Method;

use super::enroll::{NextSteps, SetupStep, factor_confirmed, next_of, way_out, with_next};
use super::forms::{
    CodeForm, EnterCodePage, Link, NextForm, Resend, SendCodePage, code_failure, digits_only,
    render_with,
};
use super::{Csrf, MessagePage, PageForm, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

fn signed_in(session: &ActiveSession) -> bool {
    session.state == SessionState::Authenticated
}

fn cancel_link(session: &ActiveSession) -> Link {
    let (href, text) = way_out(session);
    Link::new(href, text)
}

/// Where a verified address leads: on to the chosen factors, else the account page.
fn after_verified(next: &NextSteps) -> String {
    next.start_url()
        .unwrap_or_else(|| "/account?done=email-verified".to_owned())
}

fn verify_page<'a>(
    session: &'a ActiveSession,
    csrf: &'a str,
    sent: bool,
    prefill: String,
    next: &NextSteps,
    error: Option<String>,
) -> EnterCodePage<'a> {
    let email = session.user.email.as_str();
    EnterCodePage {
        title: "Verify your email address",
        csrf,
        signed_in: signed_in(session),
        sent_to: sent.then(|| email.to_owned()),
        intro: (!sent).then(|| format!("Enter the code we emailed to {email}.")),
        error,
        action: "/account/email/verify",
        label: "Code from the email",
        button: "Verify",
        prefill,
        next: next.param(),
        resend: Some(Resend {
            action: "/account/email/send-code",
            label: if sent {
                "Send a new code"
            } else {
                "Send verification code"
            },
        }),
        links: vec![cancel_link(session)],
    }
}

/// The page for an address that is verified already.
fn verified_already(next: &NextSteps) -> Response {
    let href = after_verified(next);
    let page = MessagePage {
        title: "Your email address is verified",
        message: "There is nothing more to do here.",
        link_href: &href,
        link_text: "Continue",
    };
    render(StatusCode::OK, &page)
}

/// `GET /account/email/verify[?code=…]`: the code form, filled in from the email's link.
pub async fn verify_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let next = next_of(query.as_deref());
    if session.user.email_verified {
        return Ok(verified_already(&next));
    }
    let prefill = query
        .as_deref()
        .and_then(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "code")
                .map(|(_, code)| digits_only(&code))
        })
        .unwrap_or_default();
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = verify_page(&session, &csrf.token, false, prefill, &next, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/email/send-code`: emails a code; answers the code form.
pub async fn send_verification(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<NextForm>,
) -> Result<Response, ApiError> {
    let next = NextSteps::parse(&form.next);
    match state.service.send_email_verification(&session).await {
        Ok(()) => {
            let page = verify_page(&session, &form.csrf, true, String::new(), &next, None);
            Ok(render(StatusCode::OK, &page))
        }
        Err(FactorError::EmailAlreadyVerified) => Ok(verified_already(&next)),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = verify_page(
                    &session,
                    &form.csrf,
                    false,
                    String::new(),
                    &next,
                    Some(message),
                );
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}

/// `GET /account/email/send-code` (a reload): the code form.
pub async fn back_to_verify_form(RawQuery(query): RawQuery) -> Redirect {
    Redirect::to(&with_next(
        "/account/email/verify",
        &next_of(query.as_deref()),
    ))
}

/// `POST /account/email/verify`.
pub async fn verify_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, ApiError> {
    let next = NextSteps::parse(&form.next);
    match state.service.verify_email(&session, &form.code).await {
        Ok(()) | Err(FactorError::EmailAlreadyVerified) => {
            Ok(Redirect::to(&after_verified(&next)).into_response())
        }
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = verify_page(
                    &session,
                    &form.csrf,
                    false,
                    String::new(),
                    &next,
                    Some(message),
                );
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}

fn intro_page<'a>(
    session: &'a ActiveSession,
    csrf: &'a str,
    next: &NextSteps,
    error: Option<String>,
) -> SendCodePage<'a> {
    let email = session.user.email.as_str();
    if session.user.email_verified {
        SendCodePage {
            title: "Turn on email codes",
            csrf,
            signed_in: signed_in(session),
            paragraphs: vec![
                format!(
                    "Each time you sign in, we email a 6-digit code to {email} to type after your password."
                ),
                "To check that our emails reach you, we send one now.".to_owned(),
            ],
            error,
            action: "/account/email-2fa",
            button: "Send verification code",
            next: next.param(),
            links: vec![cancel_link(session)],
        }
    } else {
        SendCodePage {
            title: "Verify your email address first",
            csrf,
            signed_in: signed_in(session),
            paragraphs: vec![format!(
                "Codes by email need a verified address. We send a code to {email} to verify it; then you turn on email codes."
            )],
            error,
            action: "/account/email/send-code",
            button: "Send verification code",
            next: next.after(SetupStep::Email).param(),
            links: vec![
                Link::new(
                    with_next("/account/email/verify", &next.after(SetupStep::Email)),
                    "I have a code already",
                ),
                cancel_link(session),
            ],
        }
    }
}

fn factor_code_page<'a>(
    session: &'a ActiveSession,
    csrf: &'a str,
    sent: bool,
    next: &NextSteps,
    error: Option<String>,
) -> EnterCodePage<'a> {
    EnterCodePage {
        title: "Turn on email codes",
        csrf,
        signed_in: signed_in(session),
        sent_to: sent.then(|| session.user.email.as_str().to_owned()),
        intro: (!sent).then(|| "Enter the code from the email we sent you.".to_owned()),
        error,
        action: "/account/email-2fa/confirm",
        label: "Code from the email",
        button: "Verify",
        prefill: String::new(),
        next: next.param(),
        resend: Some(Resend {
            action: "/account/email-2fa",
            label: "Send a new code",
        }),
        links: vec![cancel_link(session)],
    }
}

/// `GET /account/email-2fa`.
pub async fn factor_intro(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let next = next_of(query.as_deref());
    let methods = state.service.enrolled_methods(&session.user).await?;
    if methods.contains(&Method::Email) {
        let href = next.start_url().unwrap_or_else(|| "/account".to_owned());
        let page = MessagePage {
            title: "Email codes are on",
            message: "Sign-in codes already go to your email address.",
            link_href: &href,
            link_text: "Continue",
        };
        return Ok(render(StatusCode::OK, &page));
    }
    if !state
        .service
        .allowed_methods()
        .await?
        .contains(&Method::Email)
    {
        return factor_failure(FactorError::MethodNotAllowed);
    }
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = intro_page(&session, &csrf.token, &next, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/email-2fa`: emails the code; answers the code form.
pub async fn factor_send(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<NextForm>,
) -> Result<Response, ApiError> {
    let next = NextSteps::parse(&form.next);
    match state.service.start_email_factor(&session).await {
        Ok(()) => {
            let page = factor_code_page(&session, &form.csrf, true, &next, None);
            Ok(render(StatusCode::OK, &page))
        }
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = intro_page(&session, &form.csrf, &next, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}

/// `GET /account/email-2fa/confirm`: the code form.
pub async fn factor_code_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let next = next_of(query.as_deref());
    let page = factor_code_page(&session, &csrf.token, false, &next, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/email-2fa/confirm`.
pub async fn factor_confirm(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, ApiError> {
    let next = NextSteps::parse(&form.next);
    match state
        .service
        .confirm_email_factor(&session, &form.code)
        .await
    {
        Ok(confirmed) => Ok(factor_confirmed(
            &state,
            &form.csrf,
            &session,
            confirmed,
            &next,
            "email-2fa",
        )),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = factor_code_page(&session, &form.csrf, false, &next, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}
