//! A phone for codes by text message (and as the fallback phone), on pages:
//!
//! - `GET /account/phone`: the country (with its calling code), the number, the current
//!   password when it replaces the user's phone, and "Send verification code". When the server
//!   has an inbound number, "Verify by sending a text instead" as a second button.
//! - `POST /account/phone`: sends the code and answers the code form; `GET`/`POST
//!   /account/phone/confirm` take the code. The first factor leads to the recovery codes, then
//!   on to the next chosen factor (`next=`), else the account page.
//! - `POST /account/phone/inbound`: shows the system number and the code to text to it;
//!   `POST /account/phone/inbound/confirm` ("I have sent it") completes once the text arrived.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;
use twofold_core::factors::FactorError;
use twofold_core::login::ActiveSession;
use twofold_core::session::SessionState;
use twofold_core::two_factor::SentTo;
use twofold_core::user::{Method, User};

use super::countries::{Country, countries, country_from_languages, known_country};
use super::enroll::{NextSteps, factor_confirmed, next_of, way_out, with_next};
use super::forms::{CodeForm, EnterCodePage, Link, code_failure, render_with, sentence};
use super::recovery::WRONG_PASSWORD;
use super::{Csrf, PageForm, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

const NOT_ARRIVED: &str = "Your text has not arrived yet. Send it from the phone shown, wait a moment, then select \"I have sent it\" again.";

#[derive(Template)]
#[template(path = "phone.html")]
struct PhonePage<'a> {
    title: &'a str,
    csrf: &'a str,
    signed_in: bool,
    email: &'a str,
    countries: &'static [Country],
    /// The ISO code of the selected country, or empty.
    selected: String,
    phone: String,
    /// The user has a phone already: the password is asked for.
    replacing: bool,
    /// The current phone, masked.
    current: String,
    /// The server can take texts from people ("Verify by sending a text instead").
    inbound: bool,
    next: String,
    error: Option<String>,
    cancel_href: &'a str,
    cancel_text: &'a str,
}

#[derive(Template)]
#[template(path = "phone_inbound.html")]
struct InboundPage<'a> {
    title: &'a str,
    csrf: &'a str,
    signed_in: bool,
    system_number: &'a str,
    code: &'a str,
    from: &'a str,
    next: String,
    back_href: String,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct PhoneForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: Option<SecretString>,
    #[serde(default)]
    next: String,
}

/// "I have sent it": the challenge shown, sent back to show it again if the text is late.
#[derive(Deserialize)]
pub struct InboundForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    system_number: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    from: String,
}

/// The user's verified phone, masked, if they have one.
pub async fn current_phone(state: &AppState, user: &User) -> Result<Option<String>, ApiError> {
    Ok(state.service.masked_phone(user).await?)
}

fn sent_to_text(sent: SentTo) -> String {
    match sent {
        SentTo::Phone(to) | SentTo::Email(to) => to,
    }
}

/// What the phone form shows filled in: the country's ISO code (or empty) and the number.
struct Typed {
    country: String,
    phone: String,
}

/// The phone form, empty or as submitted.
fn phone_page<'a>(
    state: &AppState,
    session: &'a ActiveSession,
    csrf: &'a str,
    current: Option<String>,
    typed: Typed,
    next: &NextSteps,
    error: Option<String>,
) -> PhonePage<'a> {
    let (cancel_href, cancel_text) = way_out(session);
    PhonePage {
        title: if current.is_some() {
            "Change phone"
        } else {
            "Set up text messages (SMS)"
        },
        csrf,
        signed_in: session.state == SessionState::Authenticated,
        email: session.user.email.as_str(),
        countries: countries(),
        selected: typed.country,
        phone: typed.phone,
        replacing: current.is_some(),
        current: current.unwrap_or_default(),
        inbound: state.service.settings().sms_inbound_number.is_some(),
        next: next.param(),
        error,
        cancel_href,
        cancel_text,
    }
}

fn code_page<'a>(
    session: &'a ActiveSession,
    csrf: &'a str,
    sent_to: Option<String>,
    next: &NextSteps,
    error: Option<String>,
) -> EnterCodePage<'a> {
    let (cancel_href, cancel_text) = way_out(session);
    EnterCodePage {
        title: "Verify your phone number",
        csrf,
        signed_in: session.state == SessionState::Authenticated,
        intro: sent_to
            .is_none()
            .then(|| "Enter the code from the text message we sent to your phone.".to_owned()),
        sent_to,
        error,
        action: "/account/phone/confirm",
        label: "Code from the text message",
        button: "Verify",
        prefill: String::new(),
        next: next.param(),
        resend: None,
        links: vec![
            Link::new(
                with_next("/account/phone", next),
                "Send a new code or use another number",
            ),
            Link::new(cancel_href, cancel_text),
        ],
    }
}

/// `GET /account/phone`.
pub async fn phone_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let current = current_phone(&state, &session.user).await?;
    if current.is_none()
        && !state
            .service
            .allowed_methods()
            .await?
            .contains(&Method::Sms)
    {
        return factor_failure(FactorError::MethodNotAllowed);
    }
    let csrf = Csrf::for_request(&state, &headers)?;
    let typed = Typed {
        country: country_from_languages(&headers)
            .unwrap_or_default()
            .to_owned(),
        phone: String::new(),
    };
    let next = next_of(query.as_deref());
    let page = phone_page(&state, &session, &csrf.token, current, typed, &next, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// The phone form again, with what was typed and why it was refused; `None` for failures the
/// form does not answer.
async fn refused_phone(
    state: &AppState,
    session: &ActiveSession,
    form: &PhoneForm,
    error: &FactorError,
) -> Result<Option<Response>, ApiError> {
    let (status, message, retry_after) = match error {
        FactorError::InvalidPhone(reason) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            sentence(&reason.to_string()),
            None,
        ),
        FactorError::InvalidPassword => (StatusCode::UNAUTHORIZED, WRONG_PASSWORD.to_owned(), None),
        other => match code_failure(other) {
            Some(failure) => failure,
            None => return Ok(None),
        },
    };
    let current = current_phone(state, &session.user).await?;
    let typed = Typed {
        country: known_country(form.country.trim())
            .unwrap_or_default()
            .to_owned(),
        phone: form.phone.clone(),
    };
    let next = NextSteps::parse(&form.next);
    let page = phone_page(
        state,
        session,
        &form.csrf,
        current,
        typed,
        &next,
        Some(message),
    );
    Ok(Some(render_with(status, &page, retry_after)))
}

fn country_of(form: &PhoneForm) -> Option<&str> {
    Some(form.country.trim()).filter(|country| !country.is_empty())
}

/// `POST /account/phone`: sends the code; answers the code form.
pub async fn phone_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<PhoneForm>,
) -> Result<Response, ApiError> {
    let outcome = state
        .service
        .start_phone_enrollment(
            &session,
            &form.phone,
            country_of(&form),
            form.password.as_ref(),
        )
        .await;
    match outcome {
        Ok(sent) => {
            let next = NextSteps::parse(&form.next);
            let page = code_page(&session, &form.csrf, Some(sent_to_text(sent)), &next, None);
            Ok(render(StatusCode::OK, &page))
        }
        Err(error) => match refused_phone(&state, &session, &form, &error).await? {
            Some(response) => Ok(response),
            None => factor_failure(error),
        },
    }
}

/// `GET /account/phone/confirm`: the code form (after a reload, say).
pub async fn confirm_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let next = next_of(query.as_deref());
    let page = code_page(&session, &csrf.token, None, &next, None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/phone/confirm`.
pub async fn confirm_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<CodeForm>,
) -> Result<Response, ApiError> {
    let next = NextSteps::parse(&form.next);
    match state.service.confirm_phone(&session, &form.code).await {
        Ok(confirmed) => Ok(factor_confirmed(
            &state, &form.csrf, &session, confirmed, &next, "phone",
        )),
        Err(error) => match code_failure(&error) {
            Some((status, message, retry_after)) => {
                let page = code_page(&session, &form.csrf, None, &next, Some(message));
                Ok(render_with(status, &page, retry_after))
            }
            None => factor_failure(error),
        },
    }
}

/// `POST /account/phone/inbound`: the number to text and the code to send.
pub async fn inbound_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<PhoneForm>,
) -> Result<Response, ApiError> {
    let outcome = state
        .service
        .start_inbound_phone_check(
            &session,
            &form.phone,
            country_of(&form),
            form.password.as_ref(),
        )
        .await;
    match outcome {
        Ok(challenge) => {
            let next = NextSteps::parse(&form.next);
            let page = InboundPage {
                title: "Verify by sending a text",
                csrf: &form.csrf,
                signed_in: session.state == SessionState::Authenticated,
                system_number: &challenge.system_number,
                code: &challenge.code,
                from: &challenge.phone_masked,
                back_href: with_next("/account/phone", &next),
                next: next.param(),
                error: None,
            };
            Ok(render(StatusCode::OK, &page))
        }
        Err(error) => match refused_phone(&state, &session, &form, &error).await? {
            Some(response) => Ok(response),
            None => factor_failure(error),
        },
    }
}

/// `POST /account/phone/inbound/confirm`: "I have sent it".
pub async fn inbound_confirm(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<InboundForm>,
) -> Result<Response, ApiError> {
    let next = NextSteps::parse(&form.next);
    match state.service.confirm_inbound_phone(&session).await {
        Ok(confirmed) => Ok(factor_confirmed(
            &state, &form.csrf, &session, confirmed, &next, "phone",
        )),
        Err(FactorError::InboundNotReceived) => {
            let page = InboundPage {
                title: "Verify by sending a text",
                csrf: &form.csrf,
                signed_in: session.state == SessionState::Authenticated,
                system_number: &form.system_number,
                code: &form.code,
                from: &form.from,
                back_href: with_next("/account/phone", &next),
                next: next.param(),
                error: Some(NOT_ARRIVED),
            };
            Ok(render(StatusCode::CONFLICT, &page))
        }
        Err(error) => factor_failure(error),
    }
}

/// `GET` of the inbound addresses (a reload, a bookmark): the phone form.
pub async fn back_to_phone_form(RawQuery(query): RawQuery) -> Redirect {
    Redirect::to(&with_next("/account/phone", &next_of(query.as_deref())))
}

impl super::CsrfProtected for PhoneForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

impl super::CsrfProtected for InboundForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}
