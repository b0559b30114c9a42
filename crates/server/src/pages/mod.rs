//! Server-rendered pages (askama templates, no JavaScript). Forms carry a CSRF token that must
//! match the `twofold_csrf` cookie (SameSite=Strict, HttpOnly): a cross-site form cannot read the
//! cookie to copy it, and the comparison is constant-time.

pub mod account;
pub mod login;

use askama::Template;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

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

/// Whether a submitted form's token matches the browser's CSRF cookie.
pub fn csrf_matches(state: &AppState, headers: &HeaderMap, submitted: &str) -> bool {
    match read_cookie(headers, &state.cookies.csrf_name) {
        Some(cookie) if is_token(cookie) => {
            bool::from(cookie.as_bytes().ct_eq(submitted.as_bytes()))
        }
        _ => false,
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
}

/// The answer to a form whose CSRF token did not match.
pub fn csrf_failure() -> Response {
    render(
        StatusCode::FORBIDDEN,
        &MessagePage {
            title: "This form has expired",
            message: "Go back, reload the page and try again.",
        },
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
