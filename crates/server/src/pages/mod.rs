//! Server-rendered pages (askama templates, no JavaScript). Forms carry a CSRF token that must
//! match the `twofold_csrf` cookie (SameSite=Strict, HttpOnly): a cross-site form cannot read the
//! cookie to copy it, and the comparison is constant-time.

pub mod account;
pub mod admin;
pub mod admin_audit;
pub mod admin_policy;
pub mod admin_sign_out;
pub mod admin_user;
pub mod admin_users;
pub mod countries;
pub mod email;
pub mod enroll;
pub mod forms;
pub mod login;
pub mod messages;
pub mod password;
pub mod phone;
pub mod recovery;
pub mod recovery_email;
pub mod reset;
pub mod sessions;
pub mod totp;
pub mod two_factor;
pub mod verify;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use twofold_core::factors::FactorError;
use twofold_core::throttle::retry_after_seconds;

use crate::cookies::read_cookie;
use crate::error::ApiError;
use crate::state::AppState;

/// The CSRF token for a page, and the cookie to set when the browser had none.
pub struct Csrf {
    pub token: String,
    set_cookie: Option<HeaderValue>,
}

impl Csrf {
    pub fn for_request(state: &AppState, headers: &HeaderMap) -> Result<Csrf, ApiError> {
        if let Some(existing) =
            read_cookie(headers, &state.cookies.csrf_name).filter(|value| is_token(value))
        {
            return Ok(Csrf {
                token: existing.to_owned(),
                set_cookie: None,
            });
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|error| ApiError::internal(&error))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let set_cookie = Some(state.cookies.csrf_cookie(&token));
        Ok(Csrf { token, set_cookie })
    }

    /// Attaches the cookie, if new, to a response.
    pub fn apply(&self, mut response: Response) -> Response {
        if let Some(cookie) = &self.set_cookie {
            response
                .headers_mut()
                .append(header::SET_COOKIE, cookie.clone());
        }
        response
    }
}

fn is_token(value: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(value)
        .is_ok_and(|bytes| bytes.len() == 32)
}

/// Whether a submitted form comes from this origin and its token matches the browser's CSRF
/// cookie. The origin check stops forms posted from another port or subdomain of the same host,
/// which could otherwise plant a CSRF cookie of their choosing (cookies ignore ports).
pub(crate) fn csrf_matches(state: &AppState, headers: &HeaderMap, submitted: &str) -> bool {
    if !same_origin(headers) {
        return false;
    }
    match read_cookie(headers, &state.cookies.csrf_name) {
        Some(cookie) if is_token(cookie) => {
            bool::from(cookie.as_bytes().ct_eq(submitted.as_bytes()))
        }
        _ => false,
    }
}

/// `Sec-Fetch-Site` when the browser sends it (all current ones do), else `Origin` against the
/// `Host` the browser addressed; a request with neither (not a browser) relies on the token.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (header("origin"), header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// Renders a template with a status; a template error is a logged 500.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => ApiError::internal(&error).into_response(),
    }
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
    /// Where the page's one link goes, and its words.
    pub link_href: &'a str,
    pub link_text: &'a str,
}

impl<'a> MessagePage<'a> {
    /// A message whose link leads back to the sign-in page.
    pub fn to_sign_in(title: &'a str, message: &'a str) -> Self {
        Self {
            title,
            message,
            link_href: "/login",
            link_text: "Back to sign in",
        }
    }
}

/// What a signed-in person who may not use the administration sees there.
pub fn forbidden_page(_session: &twofold_core::login::ActiveSession) -> Response {
    let page = MessagePage {
        title: "Administrators only",
        message: "This page is for administrators who signed in with two-factor authentication.",
        link_href: "/account",
        link_text: "Back to your account",
    };
    render(StatusCode::FORBIDDEN, &page)
}

/// The words for a lockout (wrong codes or a password typed again): how long to wait.
pub fn wait_message(retry_after: time::Duration) -> String {
    let seconds = retry_after_seconds(retry_after);
    let unit = if seconds == 1 { "second" } else { "seconds" };
    format!("Too many wrong attempts. Wait {seconds} {unit}, then try again.")
}

/// Adds `Retry-After` to a throttled page.
pub fn with_retry_after(mut response: Response, retry_after: time::Duration) -> Response {
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_seconds(retry_after)),
    );
    response
}

/// The page for a second-factor failure that the page at hand does not answer itself; an
/// unexpected failure stays a logged 500.
pub fn factor_failure(error: FactorError) -> Result<Response, ApiError> {
    let (status, page) = match error {
        FactorError::SessionEnded => return Ok(Redirect::to("/login").into_response()),
        FactorError::Throttled { retry_after } => {
            let message = wait_message(retry_after);
            let page = MessagePage {
                title: "Wait a moment",
                message: &message,
                link_href: "/",
                link_text: "Continue",
            };
            return Ok(with_retry_after(
                render(StatusCode::TOO_MANY_REQUESTS, &page),
                retry_after,
            ));
        }
        FactorError::NoPendingEnrollment => (
            StatusCode::CONFLICT,
            MessagePage {
                title: "Start the set-up again",
                message: "There is no authenticator app waiting for its first code. Start again to get a new QR code.",
                link_href: "/account/totp/setup",
                link_text: "Start again",
            },
        ),
        FactorError::NoSecondFactor => (
            StatusCode::CONFLICT,
            MessagePage {
                title: "Set up a second factor first",
                message: "Recovery codes stand in for a second factor; set one up first.",
                link_href: "/account/two-factor",
                link_text: "Set up two-factor",
            },
        ),
        FactorError::SendThrottled { retry_after } => {
            let message = forms::send_wait_message(retry_after);
            let page = MessagePage {
                title: "Wait a moment",
                message: &message,
                link_href: "/",
                link_text: "Continue",
            };
            return Ok(with_retry_after(
                render(StatusCode::TOO_MANY_REQUESTS, &page),
                retry_after,
            ));
        }
        FactorError::EmailNotVerified => (
            StatusCode::FORBIDDEN,
            MessagePage {
                title: "Verify your email address first",
                message: "Codes by email need a verified address. Verify yours, then try again.",
                link_href: "/account/email/verify",
                link_text: "Verify your email address",
            },
        ),
        FactorError::EmailAlreadyVerified => (
            StatusCode::CONFLICT,
            MessagePage {
                title: "Your email address is verified",
                message: "There is nothing more to do here.",
                link_href: "/",
                link_text: "Continue",
            },
        ),
        FactorError::TwoFactorRequired => (
            StatusCode::FORBIDDEN,
            MessagePage {
                title: "Two-factor authentication stays on",
                message: two_factor::REQUIRED_REASON,
                link_href: "/",
                link_text: "Continue",
            },
        ),
        FactorError::MethodNotAllowed => (
            StatusCode::FORBIDDEN,
            MessagePage {
                title: "Not allowed here",
                message: "Your organisation does not allow this kind of second factor. Choose another.",
                link_href: "/",
                link_text: "Choose another way",
            },
        ),
        FactorError::MethodNotEnrolled => (
            StatusCode::CONFLICT,
            MessagePage {
                title: "Not set up",
                message: "Your account has no such second factor. Use another way to sign in.",
                link_href: "/",
                link_text: "Continue",
            },
        ),
        FactorError::InvalidPhone(reason) => {
            let message = format!(
                "{} Go back and check the number and the country.",
                forms::sentence(&reason.to_string())
            );
            let page = MessagePage {
                title: "This phone number cannot be used",
                message: &message,
                link_href: "/account/phone",
                link_text: "Enter the number again",
            };
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        FactorError::InboundUnavailable => (
            StatusCode::NOT_FOUND,
            MessagePage {
                title: "Not available",
                message: "Verifying a phone by sending us a text is not available here. We can text you a code instead.",
                link_href: "/account/phone",
                link_text: "Get a code by text message",
            },
        ),
        FactorError::InboundNotReceived => (
            StatusCode::CONFLICT,
            MessagePage {
                title: "Your text has not arrived yet",
                message: "Send the code from your phone, wait a moment, then try again.",
                link_href: "/account/phone",
                link_text: "Start again",
            },
        ),
        FactorError::Overloaded => {
            let page = MessagePage {
                title: "The server is busy",
                message: "Go back and try again in a few seconds.",
                link_href: "/",
                link_text: "Continue",
            };
            return Ok(with_retry_after(
                render(StatusCode::SERVICE_UNAVAILABLE, &page),
                time::Duration::seconds(2),
            ));
        }
        other => return Err(other.into()),
    };
    Ok(render(status, &page))
}

/// A form that carries the page's CSRF token.
pub trait CsrfProtected {
    fn csrf_token(&self) -> &str;
}

/// A submitted form of type `T` whose CSRF token and origin were checked: a handler that takes
/// one cannot forget the check. A forged or cross-origin submission gets the 403 page, a
/// malformed one a 4xx page (not axum's plain text).
pub struct PageForm<T>(pub T);

impl<T> FromRequest<AppState> for PageForm<T>
where
    T: DeserializeOwned + CsrfProtected,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        match Form::<T>::from_request(request, state).await {
            Ok(Form(value)) if csrf_matches(state, &headers, value.csrf_token()) => {
                Ok(PageForm(value))
            }
            Ok(_) => Err(csrf_failure()),
            Err(rejection) => {
                let status = rejection.status();
                let page = MessagePage::to_sign_in(
                    "This form could not be read",
                    "Go back, reload the page and try again.",
                );
                Err(render(
                    if status.is_client_error() {
                        status
                    } else {
                        StatusCode::BAD_REQUEST
                    },
                    &page,
                ))
            }
        }
    }
}

/// The answer to a form whose CSRF token did not match.
pub(crate) fn csrf_failure() -> Response {
    render(
        StatusCode::FORBIDDEN,
        &MessagePage::to_sign_in(
            "This form has expired",
            "Go back, reload the page and try again.",
        ),
    )
}

pub async fn stylesheet() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

/// The Print button's script; every page works without it.
pub async fn print_script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../../static/print.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn forms_from_another_origin_are_refused() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(same_origin(&headers(&[("sec-fetch-site", "none")])));
        assert!(
            !same_origin(&headers(&[("sec-fetch-site", "same-site")])),
            "another port or subdomain"
        );
        assert!(!same_origin(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://a:1"),
            ("host", "a:1")
        ])));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(
            same_origin(&headers(&[])),
            "not a browser: the token decides"
        );
    }
}
