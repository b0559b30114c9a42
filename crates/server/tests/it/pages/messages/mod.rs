//! The secure-message pages (seed 000) as a browser without JavaScript uses them: the compose
//! form posted as `multipart/form-data` (CSRF token first, files last), the link in the email,
//! the read page and its downloads, the pages for a reader without a second factor, for
//! someone else and for an expired message, the invitation link (used only by its button), the
//! return cookie that brings a finished sign-in or enrollment back to the message, and the
//! administrator's new user whose temporary password travels as a secure message.

mod compose;
mod invitations;
mod reading;

use reqwest::{Response, StatusCode};

use super::*;
use crate::helpers::TestApp;
use crate::totp::independent_totp;

const BODY: &str = "Door code 4417-plum\n<script>alert(1)</script>";
const BOUNDARY: &str = "twofold-page-test-4f1c9e";

/// Bytes that are not text, so that they cannot turn up by chance.
fn file_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// A `multipart/form-data` body as a browser sends the compose form: the fields in order,
/// then the files as `attachments` parts.
fn compose_body(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attachments\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The paths (with their invitation token, if any) of the message links emailed to `to`.
fn message_links(app: &TestApp, to: &str) -> Vec<(String, Option<String>)> {
    let origin = app.url("");
    app.messages_to(to)
        .iter()
        .filter_map(|mail| {
            let body = mail["body"].as_str()?;
            let start = body.find(&format!("{origin}/messages/"))? + origin.len();
            let link: String = body[start..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            Some(match link.split_once("?invitation=") {
                Some((path, token)) => (path.to_owned(), Some(token.to_owned())),
                None => (link, None),
            })
        })
        .collect()
}

/// The one message link emailed to `to`.
fn only_link(app: &TestApp, to: &str) -> (String, Option<String>) {
    let links = message_links(app, to);
    assert_eq!(links.len(), 1, "{links:?}");
    links.into_iter().next().unwrap()
}

fn return_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.starts_with("twofold_return="))
        .map(str::to_owned)
}

impl Browser<'_> {
    /// Posts the compose form with `csrf` first (none: no token field at all), as the browser
    /// of `site` (`Sec-Fetch-Site`).
    async fn compose_as(
        &self,
        site: &str,
        csrf: Option<&str>,
        fields: &[(&str, &str)],
        files: &[(&str, &[u8])],
    ) -> Response {
        let mut all = Vec::new();
        if let Some(token) = csrf {
            all.push(("csrf", token));
        }
        all.extend_from_slice(fields);
        self.client
            .post(self.app.url("/messages/new"))
            .header("sec-fetch-site", site)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(compose_body(&all, files))
            .send()
            .await
            .unwrap()
    }

    /// Opens the compose form and sends it.
    async fn compose(&mut self, fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> Response {
        self.open("/messages/new").await;
        let csrf = self.csrf.clone();
        self.compose_as("same-origin", Some(&csrf), fields, files)
            .await
    }

    /// Sends a message to `to` with no file; its path in `to`'s email.
    async fn send_message(&mut self, to: &str, subject: &str, days: &str) -> String {
        let fields = [
            ("to", to),
            ("subject", subject),
            ("body", BODY),
            ("expires_in_days", days),
        ];
        let sent = self.compose(&fields, &[]).await;
        assert_eq!(sent.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&sent), "/messages?done=sent");
        message_links(self.app, to).pop().unwrap().0
    }

    /// Sets up an authenticator through the pages (at enrollment or signed in): the page that
    /// shows the recovery codes.
    async fn set_up_authenticator(&mut self) -> (String, Page) {
        let setup = self.open("/account/totp/setup").await;
        assert_eq!(setup.status, StatusCode::OK, "{}", setup.html);
        let secret = key_of(&setup.html);
        let code = independent_totp(&secret, self.app.now());
        let codes = self
            .submit_page("/account/totp/setup", &[("code", &code)])
            .await;
        assert_eq!(codes.status, StatusCode::OK);
        // Its Continue button leads to the account page, which goes on to the message.
        assert!(
            codes.has("<form method=\"get\" action=\"/account\" class=\"stack no-print\" id=\"codes-saved\">"),
            "{}",
            codes.html
        );
        (secret, codes)
    }

    /// Downloads an attachment: its bytes, after checking that it is a download of bytes.
    async fn download(&self, href: &str) -> Vec<u8> {
        let response = self.app.get(&self.client, href).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(disposition.starts_with("attachment;"), "{disposition}");
        response.bytes().await.unwrap().to_vec()
    }
}

/// A new browser signed in as `email` with the authenticator `secret` (at a new time step).
async fn signed_in<'a>(app: &'a TestApp, email: &str, secret: &str) -> Browser<'a> {
    app.clock.advance_seconds(30);
    let mut browser = Browser::new(app);
    assert_eq!(location(&browser.sign_in(email).await), "/login/verify");
    let verified = browser
        .verify("totp", &independent_totp(secret, app.now()))
        .await;
    assert_eq!(location(&verified), "/account");
    browser
}

/// The download links of a read page.
fn attachment_links(page: &Page) -> Vec<String> {
    between(&page.html, "<ul id=\"attachments\">", "</ul>")
        .split("<a href=\"")
        .skip(1)
        .map(|item| item.split('"').next().unwrap().to_owned())
        .collect()
}
