//! Choosing second factors: `/login/enroll` (a login held at enrollment) and
//! `/account/two-factor` (a signed-in user), with one link per factor the policy allows and,
//! under "More options", several at once. Chosen together they are set up one after another —
//! text messages first, then email codes, then the authenticator app (seed 001) — and the rest
//! of the plan travels with each page as `next=` (e.g. `/account/phone?next=totp`).
//!
//! Choosing changes nothing on the server, so the choice is a GET form that only redirects.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use twofold_core::factors::FactorConfirmed;
use twofold_core::login::ActiveSession;
use twofold_core::session::SessionState;
use twofold_core::user::Method;

use super::login::KNOWN_AUTHENTICATOR_APPS;
use super::recovery::{ContinueTo, codes_page_then};
use super::{Csrf, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

/// A factor the pages set up, in the order of set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SetupStep {
    Phone,
    Email,
    App,
}

impl SetupStep {
    fn name(self) -> &'static str {
        match self {
            SetupStep::Phone => "sms",
            SetupStep::Email => "email",
            SetupStep::App => "totp",
        }
    }

    fn parse(name: &str) -> Option<SetupStep> {
        match name {
            "sms" => Some(SetupStep::Phone),
            "email" => Some(SetupStep::Email),
            "totp" => Some(SetupStep::App),
            _ => None,
        }
    }

    fn method(self) -> Method {
        match self {
            SetupStep::Phone => Method::Sms,
            SetupStep::Email => Method::Email,
            SetupStep::App => Method::Totp,
        }
    }

    /// The page that sets this factor up.
    pub fn path(self) -> &'static str {
        match self {
            SetupStep::Phone => "/account/phone",
            SetupStep::Email => "/account/email-2fa",
            SetupStep::App => "/account/totp/setup",
        }
    }
}

/// The factors still to set up after the current one. Only the three names are read back, so
/// `next=` can never send anyone elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NextSteps(Vec<SetupStep>);

impl NextSteps {
    /// `sms,email,totp` in any order; unknown names are dropped.
    pub fn parse(text: &str) -> NextSteps {
        NextSteps::from_steps(text.split(',').filter_map(SetupStep::parse).collect())
    }

    fn from_steps(mut steps: Vec<SetupStep>) -> NextSteps {
        steps.sort();
        steps.dedup();
        NextSteps(steps)
    }

    /// The value of `next=` (empty when nothing follows).
    pub fn param(&self) -> String {
        self.0
            .iter()
            .map(|step| step.name())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// These steps with `step` first (the page at hand, when it sends the person elsewhere first).
    pub fn after(&self, step: SetupStep) -> NextSteps {
        let mut steps = self.0.clone();
        steps.push(step);
        NextSteps::from_steps(steps)
    }

    /// The page of the first step, with the rest in `next=`.
    pub fn start_url(&self) -> Option<String> {
        let (first, rest) = self.0.split_first()?;
        let rest = NextSteps(rest.to_vec());
        Some(with_next(first.path(), &rest))
    }

    /// Where the Continue button of the recovery codes leads.
    pub fn continue_to(&self) -> ContinueTo {
        match self.0.split_first() {
            Some((first, rest)) => ContinueTo {
                path: first.path(),
                next: NextSteps(rest.to_vec()).param(),
            },
            None => ContinueTo::account(),
        }
    }
}

/// `path`, with `?next=…` when steps follow.
pub fn with_next(path: &str, next: &NextSteps) -> String {
    if next.0.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?next={}", next.param())
    }
}

/// The `next` of a page's query string.
pub fn next_of(query: Option<&str>) -> NextSteps {
    query
        .map(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "next")
                .map(|(_, value)| NextSteps::parse(&value))
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// A factor was confirmed: the recovery codes when this was the first (their Continue leads on
/// to the next step), else straight to the next step or the account page with `done` as its
/// notice. The rotated session cookie goes with either.
pub fn factor_confirmed(
    state: &AppState,
    csrf: &str,
    session: &ActiveSession,
    confirmed: FactorConfirmed,
    next: &NextSteps,
    done: &str,
) -> Response {
    let mut response = if confirmed.recovery_codes.is_empty() {
        let to = next
            .start_url()
            .unwrap_or_else(|| format!("/account?done={done}"));
        Redirect::to(&to).into_response()
    } else {
        let email = session.user.email.as_str();
        let codes = &confirmed.recovery_codes;
        codes_page_then(state, csrf, email, codes, false, next.continue_to())
    };
    response.headers_mut().insert(
        header::SET_COOKIE,
        state.cookies.session_cookie(confirmed.token.expose()),
    );
    response
}

/// Where a set-up page's "Cancel" leads, and its words.
pub fn way_out(session: &ActiveSession) -> (&'static str, &'static str) {
    if session.state == SessionState::Authenticated {
        ("/account", "Cancel")
    } else {
        ("/login/enroll", "Choose another way")
    }
}

#[derive(Template)]
#[template(path = "enroll.html")]
struct EnrollPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    /// Where the "More options" form goes (this page).
    action: &'a str,
    signed_in: bool,
    totp_allowed: bool,
    sms_allowed: bool,
    email_allowed: bool,
    email_verified: bool,
    /// More than one factor is allowed, so "More options" can combine them.
    several: bool,
    apps: &'static [&'static str],
    error: Option<&'a str>,
}

/// `GET /login/enroll`: the choice at forced enrollment.
pub async fn enroll_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    chooser(
        &state,
        &headers,
        &session,
        query.as_deref(),
        "/login/enroll",
    )
    .await
}

/// `GET /account/two-factor`: the same choice for a signed-in user.
pub async fn account_chooser_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    chooser(
        &state,
        &headers,
        &session,
        query.as_deref(),
        "/account/two-factor",
    )
    .await
}

async fn chooser(
    state: &AppState,
    headers: &HeaderMap,
    session: &ActiveSession,
    query: Option<&str>,
    action: &str,
) -> Result<Response, ApiError> {
    let allowed = &state.service.allowed_methods().await?;
    let mut error = None;
    if let Some(query) = query {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if pairs.iter().any(|(key, _)| key == "choose") {
            let chosen = pairs
                .iter()
                .filter(|(key, _)| key == "method")
                .filter_map(|(_, value)| SetupStep::parse(value))
                .filter(|step| allowed.contains(&step.method()))
                .collect();
            if let Some(url) = NextSteps::from_steps(chosen).start_url() {
                return Ok(Redirect::to(&url).into_response());
            }
            error = Some("Choose at least one way to sign in.");
        }
    }
    let csrf = Csrf::for_request(state, headers)?;
    let signed_in = session.state == SessionState::Authenticated;
    let [totp_allowed, sms_allowed, email_allowed] =
        [Method::Totp, Method::Sms, Method::Email].map(|method| allowed.contains(&method));
    let page = EnrollPage {
        title: "Set up two-factor authentication",
        csrf: &csrf.token,
        email: session.user.email.as_str(),
        action,
        signed_in,
        totp_allowed,
        sms_allowed,
        email_allowed,
        email_verified: session.user.email_verified,
        several: [totp_allowed, sms_allowed, email_allowed]
            .iter()
            .filter(|allowed| **allowed)
            .count()
            > 1,
        apps: KNOWN_AUTHENTICATOR_APPS,
        error,
    };
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_seed_order_whatever_the_order_chosen() {
        let next = NextSteps::parse("totp,sms");
        assert_eq!(next.param(), "sms,totp");
        assert_eq!(next.start_url().unwrap(), "/account/phone?next=totp");
        let continue_to = next.continue_to();
        assert_eq!(
            (continue_to.path, continue_to.next.as_str()),
            ("/account/phone", "totp")
        );
        assert_eq!(
            NextSteps::parse("totp").start_url().unwrap(),
            "/account/totp/setup"
        );
        assert_eq!(
            NextSteps::parse("totp,email,sms").start_url().unwrap(),
            "/account/phone?next=email,totp"
        );
    }

    #[test]
    fn only_the_three_names_are_read() {
        assert_eq!(NextSteps::parse("//evil.example,totp,totp").param(), "totp");
        assert_eq!(NextSteps::parse("").start_url(), None);
        assert_eq!(next_of(Some("next=email%2Ctotp")).param(), "email,totp");
        assert_eq!(next_of(Some("code=1")).param(), "");
        assert_eq!(next_of(None).param(), "");
        assert_eq!(
            NextSteps::parse("totp").after(SetupStep::Email).param(),
            "email,totp"
        );
    }
}
