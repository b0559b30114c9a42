//! "Sign out everywhere" on a user's page in the administration (OWASP ASVS 5.0 7.4.5): a
//! confirmation page whose button ends every session of the user; the answer is the user's page
//! with a status bar. Not offered on the administrator's own account.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use twofold_core::account_sessions::SessionsError;

use super::admin::{Section, Tab, refusal, tabs, unknown_user, user_href, user_id};
use super::login::CsrfOnlyForm;
use super::{Csrf, MessagePage, PageForm, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

/// The button, the title of the confirmation, and the link on the user's page.
pub const SIGN_OUT_EVERYWHERE: &str = "Sign out everywhere";

#[derive(Template)]
#[template(path = "admin_confirm.html")]
struct ConfirmPage<'a> {
    title: &'a str,
    csrf: &'a str,
    tabs: [Tab; 3],
    email: &'a str,
    user_href: &'a str,
    paragraphs: Vec<String>,
    action: String,
    button: &'a str,
    drastic: bool,
}

/// `GET /admin/users/{id}/sign-out`: the confirmation.
pub async fn sign_out_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = user_id(&id) else {
        return Ok(unknown_user());
    };
    let href = user_href(id);
    if id == session.user.id {
        return Ok(Redirect::to(&format!("{href}/edit")).into_response());
    }
    let shown = match state.service.admin_user(id).await {
        Ok(shown) => shown,
        Err(error) => return refusal(error, &href),
    };
    let email = shown.user.email.as_str();
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = ConfirmPage {
        title: SIGN_OUT_EVERYWHERE,
        csrf: &csrf.token,
        tabs: tabs(Section::Users),
        email,
        user_href: &href,
        paragraphs: vec![format!(
            "Every session of {email} ends at once, on every device: they have to sign in again. Their password and second factors stay as they are."
        )],
        action: format!("{href}/sign-out"),
        button: SIGN_OUT_EVERYWHERE,
        drastic: true,
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /admin/users/{id}/sign-out`: ends the user's sessions.
pub async fn sign_out_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    Path(id): Path<String>,
    PageForm(_checked): PageForm<CsrfOnlyForm>,
) -> Result<Response, ApiError> {
    let Some(id) = user_id(&id) else {
        return Ok(unknown_user());
    };
    let href = user_href(id);
    match state.service.sign_out_user(Some(session.user.id), id).await {
        Ok(_) => Ok(Redirect::to(&format!("{href}?done=signed-out")).into_response()),
        Err(SessionsError::NotFound) => Ok(unknown_user()),
        Err(SessionsError::OwnAccount) => {
            let page = MessagePage {
                title: "Not on your own account",
                message: "To sign out your other sessions, use \"Where you are signed in\" on your account page.",
                link_href: "/account",
                link_text: "Your account",
            };
            Ok(render(StatusCode::CONFLICT, &page))
        }
        Err(other) => Err(other.into()),
    }
}
