//! The account page of a signed-in user.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::login::method_label;
use super::{Csrf, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    email_verified: bool,
    two_factor: &'a str,
    methods: Vec<&'static str>,
    recovery_codes_left: u32,
}

pub async fn account_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let summary = state.service.account_summary(&session.user).await?;
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = AccountPage {
        title: "Your account",
        csrf: &csrf.token,
        email: summary.user.email.as_str(),
        email_verified: summary.user.email_verified,
        two_factor: summary.two_factor.label(),
        methods: summary
            .methods
            .iter()
            .map(|method| method_label(method.as_str()))
            .collect(),
        recovery_codes_left: summary.recovery_codes_left,
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}
