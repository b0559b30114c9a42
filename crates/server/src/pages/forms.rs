//! The two page shapes every emailed or texted code goes through: a page that explains and
//! sends the code (one button), and a page that takes the code. Each flow (phone, email,
//! turning 2FA off, the fallback reset) fills them with its own words and addresses.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use twofold_core::throttle::retry_after_seconds;

use twofold_core::login::ActiveSession;

use super::{render, wait_message, with_retry_after};

/// A link under a form.
#[derive(Debug, Clone)]
pub struct Link {
    pub href: String,
    pub text: &'static str,
}

impl Link {
    pub fn new(href: impl Into<String>, text: &'static str) -> Self {
        Self {
            href: href.into(),
            text,
        }
    }
}

/// A second, smaller form: "Send a new code".
#[derive(Debug, Clone)]
pub struct Resend {
    pub action: &'static str,
    pub label: &'static str,
}

/// Explains what a code is for and sends it.
#[derive(Template)]
#[template(path = "send_code.html")]
pub struct SendCodePage<'a> {
    pub title: &'a str,
    pub csrf: &'a str,
    /// The session is fully signed in (the account page is a way out).
    pub signed_in: bool,
    pub paragraphs: Vec<String>,
    pub error: Option<String>,
    pub action: &'a str,
    pub button: &'a str,
    /// Carried as a hidden `next` field when not empty.
    pub next: String,
    pub links: Vec<Link>,
}

/// Takes a code.
#[derive(Template)]
#[template(path = "enter_code.html")]
pub struct EnterCodePage<'a> {
    pub title: &'a str,
    pub csrf: &'a str,
    pub signed_in: bool,
    /// Where the code just went (masked phone, or the address), for "We sent a code to …".
    pub sent_to: Option<String>,
    pub intro: Option<String>,
    pub error: Option<String>,
    pub action: &'a str,
    pub label: &'a str,
    pub button: &'a str,
    /// The code filled in (from a link in an email); digits only.
    pub prefill: String,
    pub next: String,
    pub resend: Option<Resend>,
    pub links: Vec<Link>,
}

/// A change a signed-in user makes with a code emailed to their registered address (turning
/// 2FA off, new recovery codes): its words and addresses, and the two pages built from them.
#[derive(Debug, Clone, Copy)]
pub struct EmailedCodeStep {
    pub title: &'static str,
    /// What the change does, the first paragraph of the page that sends the code.
    pub what_it_does: &'static str,
    /// Where "Send verification code" (and "Send a new code") posts.
    pub send_action: &'static str,
    /// Where the code is posted.
    pub confirm_action: &'static str,
    pub confirm_button: &'static str,
    /// Links under the sending form before "Cancel".
    pub other_links: &'static [(&'static str, &'static str)],
}

impl EmailedCodeStep {
    fn links(&self) -> Vec<Link> {
        self.other_links
            .iter()
            .map(|(href, text)| Link::new(*href, text))
            .chain([Link::new("/account", "Cancel")])
            .collect()
    }

    /// The page that explains and sends the code.
    pub fn intro_page<'a>(
        &self,
        session: &'a ActiveSession,
        csrf: &'a str,
        error: Option<String>,
    ) -> SendCodePage<'a> {
        SendCodePage {
            title: self.title,
            csrf,
            signed_in: true,
            paragraphs: vec![
                self.what_it_does.to_owned(),
                format!(
                    "To check that it is you, we send a code to your registered email address, {}.",
                    session.user.email.as_str()
                ),
            ],
            error,
            action: self.send_action,
            button: "Send verification code",
            next: String::new(),
            links: self.links(),
        }
    }

    /// The page that takes the code; `sent`: one went out just now.
    pub fn code_page<'a>(
        &self,
        session: &'a ActiveSession,
        csrf: &'a str,
        sent: bool,
        error: Option<String>,
    ) -> EnterCodePage<'a> {
        EnterCodePage {
            title: self.title,
            csrf,
            signed_in: true,
            sent_to: sent.then(|| session.user.email.as_str().to_owned()),
            intro: (!sent).then(|| "Enter the code from the email we sent you.".to_owned()),
            error,
            action: self.confirm_action,
            label: "Code from the email",
            button: self.confirm_button,
            prefill: String::new(),
            next: String::new(),
            resend: Some(Resend {
                action: self.send_action,
                label: "Send a new code",
            }),
            links: vec![Link::new("/account", "Cancel")],
        }
    }
}

/// A form with nothing but the CSRF token and the set-up plan.
#[derive(Deserialize)]
pub struct NextForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub next: String,
}

/// A code, with the set-up plan.
#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub next: String,
}

impl super::CsrfProtected for NextForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

impl super::CsrfProtected for CodeForm {
    fn csrf_token(&self) -> &str {
        &self.csrf
    }
}

pub const WRONG_CODE: &str =
    "That code is not right. Check the newest message and try again, or send a new code.";

/// The words for a code asked for again too soon: how long to wait.
pub fn send_wait_message(retry_after: time::Duration) -> String {
    let seconds = retry_after_seconds(retry_after);
    let unit = if seconds == 1 { "second" } else { "seconds" };
    format!("A code was sent a moment ago. Wait {seconds} {unit} before asking for another.")
}

/// The message and status for the failures a code page answers itself; `None` for the rest.
pub fn code_failure(
    error: &twofold_core::factors::FactorError,
) -> Option<(StatusCode, String, Option<time::Duration>)> {
    use twofold_core::factors::FactorError;
    match error {
        FactorError::InvalidCode => Some((StatusCode::UNAUTHORIZED, WRONG_CODE.to_owned(), None)),
        FactorError::Throttled { retry_after } => Some((
            StatusCode::TOO_MANY_REQUESTS,
            wait_message(*retry_after),
            Some(*retry_after),
        )),
        FactorError::SendThrottled { retry_after } => Some((
            StatusCode::TOO_MANY_REQUESTS,
            send_wait_message(*retry_after),
            Some(*retry_after),
        )),
        _ => None,
    }
}

/// Renders `page` with `status`, adding `Retry-After` when there is a wait.
pub fn render_with(
    status: StatusCode,
    page: &impl Template,
    retry_after: Option<time::Duration>,
) -> Response {
    match retry_after {
        Some(retry_after) => with_retry_after(render(status, page), retry_after),
        None => render(status, page),
    }
}

/// A reason from core ("enter the number …") as a sentence.
pub fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// The digits of a code from a link, for pre-filling (anything else is dropped).
pub fn digits_only(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_told_in_seconds() {
        assert_eq!(
            send_wait_message(time::Duration::seconds(42)),
            "A code was sent a moment ago. Wait 42 seconds before asking for another."
        );
        assert!(send_wait_message(time::Duration::seconds(1)).contains("Wait 1 second "));
    }

    #[test]
    fn reasons_become_sentences() {
        assert_eq!(
            sentence("this is not a valid phone number"),
            "This is not a valid phone number."
        );
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn prefilled_codes_keep_digits_only() {
        assert_eq!(digits_only("123456"), "123456");
        assert_eq!(digits_only("12\"><script>3456"), "123456");
        assert_eq!(digits_only("1234567890"), "12345678");
    }
}
