//! The pages over HTTP, as a browser without JavaScript uses them: fetch a page, take the CSRF
//! token (and the key) from its HTML, post the form. Authenticator codes come from the
//! independent TOTP of `totp.rs`, and the page's QR code is read back with `zbarimg`; codes by
//! text and email come from the outbox.

mod account;
mod admin;
mod email;
mod messages;
mod phone;
mod recovery_email;
mod second_step;
mod signin;

use reqwest::header::HeaderMap;
use reqwest::{Client, Response, StatusCode};

use crate::helpers::{PASSWORD, TestApp};
use crate::totp::independent_totp;

pub(super) const WRONG_SETUP_CODE: &str =
    "That code is not right. Check the time on your phone and try the newest code.";
pub(super) const CODE_FIELD: [&str; 4] = [
    "inputmode=\"numeric\"",
    "autocomplete=\"one-time-code\"",
    "pattern=\"[0-9 ]*\"",
    "maxlength=\"8\"",
];

/// A cookie-keeping client that posts forms like a same-origin browser, with the CSRF token
/// it last read from a page.
pub(super) struct Browser<'a> {
    app: &'a TestApp,
    client: Client,
    csrf: String,
}

/// A page as received: status, headers and HTML.
pub(super) struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    async fn from(response: Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let html = response.text().await.unwrap();
        // No inline style or script: the CSP would block them.
        assert!(
            !html.contains(" style=") && !html.contains("<style"),
            "inline style"
        );
        assert!(
            !html.contains("<script>") && !html.contains(" onclick="),
            "inline script"
        );
        Page {
            status,
            headers,
            html,
        }
    }

    fn has(&self, text: &str) -> bool {
        self.html.contains(text)
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            client: app.client(),
            csrf: String::new(),
        }
    }

    /// GETs a page and keeps its CSRF token, if it has a form.
    async fn open(&mut self, path: &str) -> Page {
        let page = Page::from(self.app.get(&self.client, path).await).await;
        if page.has("name=\"csrf\"") {
            self.csrf = between(&page.html, "name=\"csrf\" value=\"", "\"").to_owned();
        }
        page
    }

    /// Where a GET of `path` redirects to.
    async fn redirect_of(&self, path: &str) -> String {
        location(&self.app.get(&self.client, path).await)
    }

    /// POSTs a form with the page's CSRF token.
    async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut form = vec![("csrf", self.csrf.as_str())];
        form.extend_from_slice(fields);
        self.client
            .post(self.app.url(path))
            .header("sec-fetch-site", "same-origin")
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in through `/login`; where it leads.
    async fn sign_in(&mut self, email: &str) -> Response {
        self.open("/login").await;
        let response = self
            .submit("/login", &[("email", email), ("password", PASSWORD)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response
    }

    /// Submits a code on `/login/verify`.
    async fn verify(&self, method: &str, code: &str) -> Response {
        self.submit("/login/verify", &[("method", method), ("code", code)])
            .await
    }

    /// A user held at enrollment sets up an authenticator through the pages: the key and the
    /// recovery codes.
    async fn enroll(&mut self, email: &str) -> (String, Vec<String>) {
        self.app.create_user(email, Some(PASSWORD), true).await;
        self.sign_in(email).await;
        let setup = self.open("/account/totp/setup").await;
        let secret = key_of(&setup.html);
        let code = independent_totp(&secret, self.app.now());
        let confirmed =
            Page::from(self.submit("/account/totp/setup", &[("code", &code)]).await).await;
        assert_eq!(confirmed.status, StatusCode::OK);
        (secret, listed_codes(&confirmed.html))
    }
}

/// The number the phone tests type (with country GB), and where its texts go.
pub(super) const NATIONAL_PHONE: &str = "0121 234 5678";
pub(super) const PHONE_E164: &str = "+441212345678";

impl Browser<'_> {
    /// POSTs a form and reads the page it answers.
    async fn submit_page(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Page::from(self.submit(path, fields).await).await
    }

    /// A user held at enrollment sets up text messages through the pages, with
    /// [`NATIONAL_PHONE`] in the United Kingdom: the recovery codes.
    async fn enroll_by_phone(&mut self, email: &str) -> Vec<String> {
        self.app.create_user(email, Some(PASSWORD), true).await;
        self.sign_in(email).await;
        self.open("/account/phone").await;
        let sent = self
            .submit_page(
                "/account/phone",
                &[("country", "GB"), ("phone", NATIONAL_PHONE)],
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.html);
        let to = self.app.messages_to(PHONE_E164);
        let code = crate::helpers::code_in(to.last().unwrap()["body"].as_str().unwrap()).unwrap();
        let confirmed = self
            .submit_page("/account/phone/confirm", &[("code", &code)])
            .await;
        assert_eq!(confirmed.status, StatusCode::OK);
        listed_codes(&confirmed.html)
    }
}

pub(super) fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Text between `start` and the next `end`.
pub(super) fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {html}"))
        + start.len();
    html[from..].split(end).next().unwrap()
}

/// The key of the "Having trouble scanning?" disclosure, without its spaces.
pub(super) fn key_of(html: &str) -> String {
    between(html, "<code id=\"secret-key\">", "</code>").replace(' ', "")
}

/// The recovery codes listed on a codes page.
pub(super) fn listed_codes(html: &str) -> Vec<String> {
    between(html, "<ol class=\"codes\"", "</ol>")
        .split("<li><code>")
        .skip(1)
        .map(|item| item.split("</code>").next().unwrap().to_owned())
        .collect()
}

/// A code that is not the right one now.
pub(super) fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

pub(super) fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            out.push(u8::from_str_radix(std::str::from_utf8(&tail[..2]).unwrap(), 16).unwrap());
            rest = &tail[2..];
        } else {
            out.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Renders the page's SVG to PNG and reads it with zbarimg.
pub(super) fn read_qr(svg: &str) -> String {
    let directory = tempfile::tempdir().unwrap();
    let (svg_path, png_path) = (
        directory.path().join("qr.svg"),
        directory.path().join("qr.png"),
    );
    std::fs::write(&svg_path, svg).unwrap();
    let rendered = std::process::Command::new("rsvg-convert")
        .args(["--width", "400", "--background-color", "white", "-o"])
        .arg(&png_path)
        .arg(&svg_path)
        .status()
        .expect("rsvg-convert (Debian package librsvg2-bin) is installed");
    assert!(rendered.success());
    let output = std::process::Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(&png_path)
        .output()
        .expect("zbarimg (Debian package zbar-tools) is installed");
    assert!(output.status.success(), "zbarimg found no QR code");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}
