//! Server-rendered pages (askama templates, no JavaScript). Forms carry a CSRF token that must
//! match the `twofold_csrf` cookie (SameSite=Strict, HttpOnly): a cross-site form cannot read the
//! cookie to copy it, and the comparison is constant-time.

pub mod account;
pub mod login;

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
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

/// Whether a submitted form comes from this origin and its token matches the browser's CSRF
/// cookie. The origin check stops forms posted from another port or subdomain of the same host,
/// which could otherwise plant a CSRF cookie of their choosing (cookies ignore ports).
pub fn csrf_matches(state: &AppState, headers: &HeaderMap, submitted: &str) -> bool {
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
}

/// A submitted form of type `T`; a malformed submission gets a page, not axum's plain text.
pub struct PageForm<T>(pub T);

impl<S, T> FromRequest<S> for PageForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Form::<T>::from_request(request, state).await {
            Ok(Form(value)) => Ok(PageForm(value)),
            Err(rejection) => {
                let status = rejection.status();
                let page = MessagePage {
                    title: "This form could not be read",
                    message: "Go back, reload the page and try again.",
                };
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
