//! Recovery codes on pages: the one page that shows a fresh set (after the first authenticator
//! is confirmed, and after making a new set), with a `.txt` download and a print layout, and
//! `/account/recovery-codes`, where a signed-in user makes a new set with their password.
//!
//! Codes are shown once, in the response of the request that made them; nothing keeps them
//! for a later page. The download is a `data:` link in that same response, so the codes never
//! travel again.

use std::fmt::Write as _;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use secrecy::SecretString;
use serde::Deserialize;
use twofold_core::factors::FactorError;

use super::account::utc_minute;
use super::{Csrf, PageForm, factor_failure, render};
use crate::error::ApiError;
use crate::gate::CurrentSession;
use crate::state::AppState;

pub const DOWNLOAD_FILE_NAME: &str = "twofold-recovery-codes.txt";
pub const WRONG_PASSWORD: &str = "The password is not right.";

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage<'a> {
    title: &'a str,
    csrf: &'a str,
    email: &'a str,
    codes: &'a [String],
    download_name: &'a str,
    download_href: &'a str,
    /// An earlier set existed and has just stopped working.
    replaced: bool,
    continue_to: ContinueTo,
}

/// Where the Continue button of the codes page leads: a GET form to `path`, with `next` as a
/// hidden field when a further factor is to be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinueTo {
    pub path: &'static str,
    pub next: String,
}

impl ContinueTo {
    pub fn account() -> Self {
        Self {
            path: "/account",
            next: String::new(),
        }
    }
}

/// A form asking for the current password before a sensitive change.
#[derive(Template)]
#[template(path = "confirm_password.html")]
pub struct PasswordPage<'a> {
    pub title: &'a str,
    pub csrf: &'a str,
    pub email: &'a str,
    pub intro: &'a str,
    pub action: &'a str,
    pub button: &'a str,
    pub error: Option<&'a str>,
    /// Another way to prove it is you: `(href, text)`.
    pub alternative: Option<(&'a str, &'a str)>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub csrf: String,
    pub password: SecretString,
}

/// The page showing a fresh set of codes, once; Continue leads to the account page.
pub fn codes_page(
    state: &AppState,
    csrf: &str,
    email: &str,
    codes: &[String],
    replaced: bool,
) -> Response {
    codes_page_then(state, csrf, email, codes, replaced, ContinueTo::account())
}

/// The page showing a fresh set of codes, once, whose Continue leads to `continue_to`.
pub fn codes_page_then(
    state: &AppState,
    csrf: &str,
    email: &str,
    codes: &[String],
    replaced: bool,
    continue_to: ContinueTo,
) -> Response {
    let created = utc_minute(state.service.clock().now());
    let download_href = download_href(email, &created, codes);
    let page = RecoveryCodesPage {
        title: "Save your recovery codes",
        csrf,
        email,
        codes,
        download_name: DOWNLOAD_FILE_NAME,
        download_href: &download_href,
        replaced,
        continue_to,
    };
    render(StatusCode::OK, &page)
}

const NEW_CODES_INTRO: &str = "New recovery codes replace all of your current ones: the old codes stop working at once. Enter your password to continue.";

fn new_codes_form<'a>(csrf: &'a str, email: &'a str, error: Option<&'a str>) -> PasswordPage<'a> {
    PasswordPage {
        title: "Create new recovery codes",
        csrf,
        email,
        intro: NEW_CODES_INTRO,
        action: "/account/recovery-codes",
        button: "Create new recovery codes",
        error,
        alternative: Some((
            "/account/recovery-codes/email",
            "Send a verification code to your email instead",
        )),
    }
}

/// `GET /account/recovery-codes`: asks for the password.
pub async fn new_codes_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    CurrentSession(session): CurrentSession,
) -> Result<Response, ApiError> {
    let csrf = Csrf::for_request(&state, &headers)?;
    let page = new_codes_form(&csrf.token, session.user.email.as_str(), None);
    Ok(csrf.apply(render(StatusCode::OK, &page)))
}

/// `POST /account/recovery-codes`: with the right password, a new set replaces the old one.
pub async fn new_codes_submit(
    State(state): State<AppState>,
    CurrentSession(session): CurrentSession,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, ApiError> {
    let email = session.user.email.as_str();
    match state
        .service
        .regenerate_recovery_codes(&session, &form.password)
        .await
    {
        Ok(codes) => Ok(codes_page(&state, &form.csrf, email, &codes, true)),
        Err(FactorError::InvalidPassword) => {
            let page = new_codes_form(&form.csrf, email, Some(WRONG_PASSWORD));
            Ok(render(StatusCode::UNAUTHORIZED, &page))
        }
        Err(other) => factor_failure(other),
    }
}

/// The `.txt` file as a `data:` URL: a header line naming the account, then one code a line.
fn download_href(email: &str, created: &str, codes: &[String]) -> String {
    let mut text = format!(
        "Twofold recovery codes for {email} (created {created}). Each code works once.\n\n"
    );
    for code in codes {
        text.push_str(code);
        text.push('\n');
    }
    format!("data:text/plain;charset=utf-8,{}", percent_encode(&text))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so that the text survives
/// as a URL and as an HTML attribute unchanged.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

impl super::CsrfProtected for PasswordForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_characters_only() {
        assert_eq!(percent_encode("ab-12_~."), "ab-12_~.");
        assert_eq!(percent_encode("a b\n"), "a%20b%0A");
        assert_eq!(percent_encode("a@b.c (x)"), "a%40b.c%20%28x%29");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode("<\"'&%>"), "%3C%22%27%26%25%3E");
    }

    #[test]
    fn the_download_names_the_account_and_lists_one_code_a_line() {
        let codes = vec![
            "7k2m-x9qp-4hvd-r3tw".to_owned(),
            "abcd-efgh-jkmn-pqrs".to_owned(),
        ];
        let href = download_href("alice@example.com", "2027-01-15 08:00 UTC", &codes);
        let encoded = href.strip_prefix("data:text/plain;charset=utf-8,").unwrap();
        let text = percent_decode(encoded);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Twofold recovery codes for alice@example.com (created 2027-01-15 08:00 UTC). Each code works once."
        );
        assert_eq!(&lines[2..], ["7k2m-x9qp-4hvd-r3tw", "abcd-efgh-jkmn-pqrs"]);
    }

    fn percent_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] == b'%' {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                index += 3;
            } else {
                out.push(bytes[index]);
                index += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}
