//! The invitation link of a recipient who cannot sign in yet: `GET /messages/{id}?invitation=…`
//! shows whose invitation it is and a button; only the button's POST uses the token (mail
//! scanners fetch links, and must not spend it). Using it starts a session at choosing a
//! password (or, when the message carries the password, at setting up a second factor), and
//! the return cookie brings the browser to the message once that is done.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use twofold_core::login::ActiveSession;
use twofold_core::messages::MessageError;
use uuid::Uuid;

use super::{message_failure, message_path, not_found_page, remember};
use crate::error::ApiError;
use crate::gate::{MaybeSession, page_for};
use crate::pages::{Csrf, CsrfProtected, MessagePage, PageForm, render};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "messages_invitation.html")]
struct LandingPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    action: String,
    token: &'a str,
    /// The new account chooses its password first (else the message carries it).
    choose_password: bool,
    /// The browser is signed in as someone else: continuing signs that session out.
    signed_in_as: Option<&'a str>,
}

/// The answer to a link that was used, has expired, or never was one.
pub(super) fn invalid_link_page() -> Response {
    let page = MessagePage {
        title: "This link is no longer valid",
        message: "It was used already, or it has expired. If you have chosen a password, sign in to read the message.",
        link_href: "/login",
        link_text: "Sign in",
    };
    render(StatusCode::NOT_FOUND, &page)
}

/// The landing page of the invitation `token` to message `id`, without using the token.
/// `signed_in`: the browser's full session, of someone the message is not for.
pub(super) async fn landing(
    state: &AppState,
    headers: &HeaderMap,
    id: Uuid,
    token: &str,
    signed_in: Option<&ActiveSession>,
) -> Result<Response, ApiError> {
    let view = match state.service.invitation(token).await {
        Ok(view) if view.message_id == id => view,
        Ok(_) | Err(MessageError::InvitationInvalid) => {
            return Ok(match signed_in {
                Some(_) => not_found_page(),
                // Whoever chose a password already can sign in and come back here.
                None => remember(invalid_link_page(), state, id),
            });
        }
        Err(other) => return message_failure(other),
    };
    let csrf = Csrf::for_request(state, headers)?;
    let page = LandingPage {
        title: "You have a secure message",
        csrf: &csrf.token,
        email: view.email.as_str(),
        action: format!("{}/invitation", message_path(id)),
        token,
        choose_password: view.choose_password,
        signed_in_as: signed_in.map(|session| session.user.email.as_str()),
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

#[derive(Deserialize)]
pub struct InvitationForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

impl CsrfProtected for InvitationForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

/// `POST /messages/{id}/invitation`: uses the invitation (once), replacing whatever session
/// the browser held, and sends the browser to its first step with the message remembered.
pub async fn accept_invitation(
    State(state): State<AppState>,
    MaybeSession(previous): MaybeSession,
    Path(id): Path<String>,
    PageForm(form): PageForm<InvitationForm>,
) -> Result<Response, ApiError> {
    let (step, message_id) = match state.service.accept_invitation(&form.token).await {
        Ok(accepted) => accepted,
        Err(MessageError::InvitationInvalid) => {
            let page = invalid_link_page();
            return Ok(match id.parse::<Uuid>() {
                Ok(id) => remember(page, &state, id),
                Err(_) => page,
            });
        }
        Err(other) => return message_failure(other),
    };
    // The invitation's session replaces whatever session this browser held.
    if let Some(previous) = previous {
        state.service.logout(&previous.id_hash).await?;
    }
    let mut response = Redirect::to(page_for(Some(step.state))).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state.cookies.session_cookie(step.token.expose()),
    );
    Ok(remember(response, &state, message_id))
}
