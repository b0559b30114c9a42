//! The authenticator-app pages over HTTP, as a browser without JavaScript uses them: fetch a
//! page, take the CSRF token (and the key) from its HTML, post the form. Codes come from the
//! independent TOTP of `totp.rs`, and the page's QR code is read back with `zbarimg`.

use reqwest::header::HeaderMap;
use reqwest::{Client, Response, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, PASSWORD, TestApp, session_cookie, spawn_app};
use crate::on_both_backends;
use crate::totp::independent_totp;

const WRONG_SETUP_CODE: &str =
    "That code is not right. Check the time on your phone and try the newest code.";
const CODE_FIELD: [&str; 4] = [
    "inputmode=\"numeric\"",
    "autocomplete=\"one-time-code\"",
    "pattern=\"[0-9 ]*\"",
    "maxlength=\"8\"",
];

on_both_backends!(
    forced_enrollment_shows_the_qr_code_and_the_recovery_codes_once,
    the_second_factor_page_takes_a_fresh_code_once,
    a_recovery_code_signs_in_once_through_the_page,
    changing_the_authenticator_asks_for_the_password_first,
);

/// A cookie-keeping client that posts forms like a same-origin browser, with the CSRF token
/// it last read from a page.
struct Browser<'a> {
    app: &'a TestApp,
    client: Client,
    csrf: String,
}

/// A page as received: status, headers and HTML.
struct Page {
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

fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Text between `start` and the next `end`.
fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {html}"))
        + start.len();
    html[from..].split(end).next().unwrap()
}

/// The key of the "Having trouble scanning?" disclosure, without its spaces.
fn key_of(html: &str) -> String {
    between(html, "<code id=\"secret-key\">", "</code>").replace(' ', "")
}

/// The recovery codes listed on a codes page.
fn listed_codes(html: &str) -> Vec<String> {
    between(html, "<ol class=\"codes\"", "</ol>")
        .split("<li><code>")
        .skip(1)
        .map(|item| item.split("</code>").next().unwrap().to_owned())
        .collect()
}

/// A code that is not the right one now.
fn wrong_code(right: &str) -> &'static str {
    if right == "000000" {
        "111111"
    } else {
        "000000"
    }
}

fn percent_decode(text: &str) -> String {
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
fn read_qr(svg: &str) -> String {
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

async fn forced_enrollment_shows_the_qr_code_and_the_recovery_codes_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), true)
        .await;
    let mut browser = Browser::new(&app);
    assert_eq!(
        location(&browser.sign_in("alice@example.com").await),
        "/login/enroll"
    );

    // The choice, and the apps known to work.
    let enroll = browser.open("/login/enroll").await;
    assert_eq!(enroll.status, StatusCode::OK);
    assert!(enroll.has("Use an authenticator app") && enroll.has("href=\"/account/totp/setup\""));
    for name in [
        "Microsoft Authenticator",
        "Google Authenticator",
        "FreeOTP",
        "Authy",
        "Duo Mobile",
        "LastPass Authenticator",
        "OneLogin Protect",
        "desktop TOTP apps",
    ] {
        assert!(enroll.has(name), "{name} is not named");
    }
    assert_eq!(
        browser.redirect_of("/account").await,
        "/login/enroll",
        "nothing else first"
    );

    // The QR code, in a labelled figure, carries the exact otpauth URI of the key shown.
    let setup = browser.open("/account/totp/setup").await;
    assert_eq!(setup.status, StatusCode::OK);
    assert!(setup.has("<figure class=\"qr\" id=\"qr\" aria-labelledby=\"qr-caption\">"));
    assert!(setup.has("role=\"img\" aria-label=\"QR code"));
    assert!(setup.has("<summary>Having trouble scanning? Enter this key</summary>"));
    let grouped = between(&setup.html, "<code id=\"secret-key\">", "</code>");
    let groups: Vec<&str> = grouped.split(' ').collect();
    assert!(
        groups.len() == 8 && groups.iter().all(|group| group.len() == 4),
        "{grouped}"
    );
    let secret = key_of(&setup.html);
    let svg = format!("<svg{}</svg>", between(&setup.html, "<svg", "</svg>"));
    assert_eq!(
        read_qr(&svg),
        format!(
            "otpauth://totp/Twofold%20Test:alice%40example.com?secret={secret}\
             &issuer=Twofold%20Test&algorithm=SHA1&digits=6&period=30"
        )
    );
    let code_input = between(&setup.html, "<input id=\"code\"", ">");
    assert!(
        CODE_FIELD
            .iter()
            .all(|attribute| code_input.contains(attribute)),
        "{code_input}"
    );
    assert!(setup.has(">Verify</button>"));

    // A wrong code: 401; the key stays pending but is not shown again; a way to start over.
    let right = independent_totp(&secret, app.now());
    let refused = Page::from(
        browser
            .submit("/account/totp/setup", &[("code", wrong_code(&right))])
            .await,
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.has(WRONG_SETUP_CODE));
    assert!(refused.has("href=\"/account/totp/setup\" id=\"start-again\""));
    assert!(
        !refused.has("<svg") && !refused.has(grouped),
        "the key is not shown again"
    );

    // The right code for the pending key: ten recovery codes, shown once, with a download.
    let confirmed = browser
        .submit("/account/totp/setup", &[("code", &right)])
        .await;
    assert!(session_cookie(&confirmed).is_some(), "the session rotates");
    let codes_page = Page::from(confirmed).await;
    assert_eq!(codes_page.status, StatusCode::OK);
    assert_eq!(codes_page.headers["cache-control"], "no-store");
    let codes = listed_codes(&codes_page.html);
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|code| code.len() == 19), "{codes:?}");
    let link = between(
        &codes_page.html,
        "<a class=\"button\" id=\"download-codes\"",
        ">",
    );
    assert!(
        link.contains("download=\"twofold-recovery-codes.txt\""),
        "{link}"
    );
    let data = between(link, "href=\"", "\"").strip_prefix("data:text/plain;charset=utf-8,");
    let text = percent_decode(data.unwrap());
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Twofold recovery codes for alice@example.com"),
        "{text}"
    );
    assert_eq!(
        lines[2..],
        codes.iter().map(String::as_str).collect::<Vec<_>>(),
        "one a line"
    );
    assert!(codes_page.has("<script src=\"/static/print.js\" defer></script>"));
    assert!(
        codes_page.has("data-print hidden>Print</button>"),
        "shown by the script only"
    );
    assert!(codes_page.has(
        "<input type=\"checkbox\" id=\"saved\" required> <label for=\"saved\">I have saved these codes</label>"
    ));
    assert!(codes_page.has("<form method=\"get\" action=\"/account\""));

    // Now fully signed in; the codes are not shown anywhere again.
    let account = browser.open("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.has("<dd id=\"two-factor\">Enabled</dd>"));
    assert!(account.has("<th scope=\"row\">Authenticator app</th>"));
    assert!(
        account.has("Added 2027-01-15 08:00 UTC"),
        "dates as YYYY-MM-DD HH:MM UTC"
    );
    assert!(account.has("10 left") && !account.has("class=\"warning\""));
    assert!(account.has("href=\"/account/totp/change\">Change authenticator</a>"));
    assert!(codes.iter().all(|code| !account.has(code)));
    assert_eq!(browser.redirect_of("/login/enroll").await, "/account");
}

async fn the_second_factor_page_takes_a_fresh_code_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut browser = Browser::new(&app);
    let (secret, _) = browser.enroll("bob@example.com").await;
    browser.open("/account").await;
    assert_eq!(location(&browser.submit("/logout", &[]).await), "/login");

    let password_only = browser.sign_in("bob@example.com").await;
    assert_eq!(location(&password_only), "/login/verify");
    let password_only_cookie = session_cookie(&password_only).unwrap();
    assert_eq!(browser.redirect_of("/account").await, "/login/verify");
    assert_eq!(
        browser.redirect_of("/account/totp/setup").await,
        "/login/verify"
    );

    let verify = browser.open("/login/verify").await;
    assert_eq!(verify.status, StatusCode::OK);
    assert!(verify.has("Enter the 6-digit code from your authenticator app"));
    let code_input = between(&verify.html, "<input id=\"code\"", ">");
    assert!(
        CODE_FIELD
            .iter()
            .all(|attribute| code_input.contains(attribute)),
        "{code_input}"
    );
    assert!(verify.has("<summary>Use a recovery code instead</summary>"));
    assert!(
        between(&verify.html, "<input id=\"recovery-code\"", ">").contains("autocomplete=\"off\"")
    );

    // The code of the enrollment's step was used up by the enrollment.
    let replay = Page::from(
        browser
            .verify("totp", &independent_totp(&secret, app.now()))
            .await,
    )
    .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.has("That code is not right."));

    app.clock.advance_seconds(30);
    let fresh = independent_totp(&secret, app.now());
    let accepted = browser.verify("totp", &fresh).await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&accepted), "/account");
    assert_ne!(
        session_cookie(&accepted).unwrap(),
        password_only_cookie,
        "the session rotates"
    );
    let account = browser.open("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(
        account.has("Last used 2027-01-15 08:00 UTC"),
        "the sign-in counts as use"
    );

    // The same code again, in another browser: refused.
    let mut other = Browser::new(&app);
    other.sign_in("bob@example.com").await;
    other.open("/login/verify").await;
    let reused = other.verify("totp", &fresh).await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    assert!(session_cookie(&reused).is_none());
    assert_eq!(other.redirect_of("/account").await, "/login/verify");
}

async fn a_recovery_code_signs_in_once_through_the_page(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, codes) = Browser::new(&app).enroll("carol@example.com").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("carol@example.com").await;
    browser.open("/login/verify").await;
    let accepted = browser
        .verify("recovery_code", &codes[0].to_uppercase())
        .await;
    assert_eq!(location(&accepted), "/account");
    assert!(browser.open("/account").await.has("9 left"));

    let mut other = Browser::new(&app);
    other.sign_in("carol@example.com").await;
    other.open("/login/verify").await;
    let reused = Page::from(other.verify("recovery_code", &codes[0]).await).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert!(reused.has("That code is not right."));
    assert!(
        reused.has("id=\"use-recovery-code\" open>"),
        "the recovery-code form stays open"
    );
    assert_eq!(
        location(&other.verify("recovery_code", &codes[1]).await),
        "/account"
    );
}

async fn changing_the_authenticator_asks_for_the_password_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut browser = Browser::new(&app);
    let (old_secret, _) = browser.enroll("dave@example.com").await;
    // The set-up page of a user with an authenticator asks for the password first.
    assert_eq!(
        browser.redirect_of("/account/totp/setup").await,
        "/account/totp/change"
    );
    let change = browser.open("/account/totp/change").await;
    assert_eq!(change.status, StatusCode::OK);
    assert!(change.has("type=\"password\"") && change.has(">Retrieve new code</button>"));
    assert!(!change.has("<svg"));

    let wrong = [("password", "not the password at all")];
    let refused = Page::from(browser.submit("/account/totp/change", &wrong).await).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.has("The password is not right.") && !refused.has("<svg"));

    let started = browser
        .submit("/account/totp/change", &[("password", PASSWORD)])
        .await;
    let started = Page::from(started).await;
    assert_eq!(started.status, StatusCode::OK);
    assert!(started.has("<svg"));
    let new_secret = key_of(&started.html);
    assert_ne!(new_secret, old_secret);

    app.clock.advance_seconds(30);
    let code = independent_totp(&new_secret, app.now());
    let confirmed = browser
        .submit("/account/totp/setup", &[("code", &code)])
        .await;
    assert_eq!(
        location(&confirmed),
        "/account?changed=1",
        "no new codes for a replacement"
    );
    assert!(session_cookie(&confirmed).is_some(), "the session rotates");
    let account = browser.open("/account?changed=1").await;
    assert!(account.has("Your new authenticator app is set up."));

    // Only the new authenticator signs in now.
    app.clock.advance_seconds(30);
    let other = app.at_second_factor("dave@example.com").await;
    for (secret, status) in [
        (&old_secret, StatusCode::UNAUTHORIZED),
        (&new_secret, StatusCode::OK),
    ] {
        let body = json!({"method": "totp", "code": independent_totp(secret, app.now())});
        assert_eq!(
            app.post(&other, "/api/v1/login/verify", body)
                .await
                .status(),
            status
        );
    }
}

#[tokio::test]
async fn new_recovery_codes_need_the_password_and_few_left_are_flagged() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut browser = Browser::new(&app);
    let (_, old_codes) = browser.enroll("erin@example.com").await;
    // Use eight codes: two left.
    for code in &old_codes[..8] {
        let other = app.at_second_factor("erin@example.com").await;
        let body = json!({"method": "recovery_code", "code": code});
        assert_eq!(
            app.post(&other, "/api/v1/login/verify", body)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let account = browser.open("/account").await;
    assert!(account.has("2 left"));
    assert!(
        between(&account.html, "<p class=\"warning\"", "</p>")
            .contains("Create new recovery codes")
    );
    assert!(account.has("<form method=\"post\" action=\"/account/recovery-codes\""));

    let wrong = [("password", "not the password at all")];
    let refused = Page::from(browser.submit("/account/recovery-codes", &wrong).await).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.has("The password is not right.") && !refused.has("<ol class=\"codes\""));

    let made = browser
        .submit("/account/recovery-codes", &[("password", PASSWORD)])
        .await;
    let made = Page::from(made).await;
    assert_eq!(made.status, StatusCode::OK);
    let codes = listed_codes(&made.html);
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|code| !old_codes.contains(code)));
    assert!(made.has("Your earlier recovery codes no longer work."));
    assert!(made.has("download=\"twofold-recovery-codes.txt\""));
    let account = browser.open("/account").await;
    assert!(account.has("10 left") && !account.has("class=\"warning\""));
    let other = app.at_second_factor("erin@example.com").await;
    let body = json!({"method": "recovery_code", "code": old_codes[9]});
    let old = app.post(&other, "/api/v1/login/verify", body).await;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the old set stopped working"
    );
}

#[tokio::test]
async fn wrong_second_factor_codes_lead_to_a_wait_page() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let (secret, _) = Browser::new(&app).enroll("frank@example.com").await;
    app.clock.advance_seconds(30);
    let mut browser = Browser::new(&app);
    browser.sign_in("frank@example.com").await;
    browser.open("/login/verify").await;
    let right = independent_totp(&secret, app.now());
    for _ in 0..5 {
        let refused = browser.verify("totp", wrong_code(&right)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = Page::from(browser.verify("totp", &right).await).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.headers["retry-after"], "30");
    assert!(locked.has("Too many wrong codes. Wait 30 seconds, then try again."));
}

#[tokio::test]
async fn the_new_forms_refuse_a_missing_forged_or_cross_site_token() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.create_user("grace@example.com", Some(PASSWORD), true)
        .await;
    let mut browser = Browser::new(&app);
    browser.sign_in("grace@example.com").await;
    browser.open("/account/totp/setup").await;
    let token = browser.csrf.clone();
    for (csrf, site) in [
        ("", "same-origin"),
        ("forged", "same-origin"),
        (&token, "cross-site"),
    ] {
        let response = browser
            .client
            .post(app.url("/account/totp/setup"))
            .header("sec-fetch-site", site)
            .form(&[("csrf", csrf), ("code", "123456")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{csrf:?} {site}");
    }
}

#[tokio::test]
async fn the_print_script_is_allowed_by_the_policy() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let response = app.get(&app.client(), "/static/print.js").await;
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/javascript"));
    assert!(response.text().await.unwrap().contains("window.print()"));
}
