//! The email address and email codes on pages (seed 002): verifying the address from the
//! emailed code and its link (a GET fills the form in, only the POST verifies), email codes as a
//! second factor (only for a verified address), signing in with one, and turning two-factor
//! authentication off with an emailed code — unless it is required.

use reqwest::StatusCode;

use super::*;
use crate::helpers::{Backend, PASSWORD, spawn_app};
use crate::on_both_backends;

on_both_backends!(email_codes_from_verifying_the_address_to_turning_two_factor_off);

const EMAIL: &str = "eve@example.com";

async fn email_codes_from_verifying_the_address_to_turning_two_factor_off(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user(EMAIL, Some(PASSWORD), false).await;
    let mut browser = Browser::new(&app);
    assert_eq!(location(&browser.sign_in(EMAIL).await), "/account");

    // The account page: not verified, with the button; no factor, so "Set up two-factor".
    let account = browser.open("/account").await;
    assert!(account.has("<span class=\"badge\">not verified</span>"));
    assert!(account.has("action=\"/account/email/send-code\""));
    assert!(account.has("href=\"/account/two-factor\" id=\"set-up-two-factor\""));
    assert!(!account.has("turn-off-two-factor"));
    let chooser = browser.open("/account/two-factor").await;
    assert!(chooser.has("Use email codes") && chooser.has("href=\"/account\">Cancel</a>"));

    // Email codes need a verified address: the page says so, and the action is refused.
    let intro = browser.open("/account/email-2fa").await;
    assert!(intro.has("<h1>Verify your email address first</h1>"));
    assert!(intro.has("<input type=\"hidden\" name=\"next\" value=\"email\">"));
    let refused = browser.submit_page("/account/email-2fa", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.has("Verify your email address first"));
    assert!(refused.has("href=\"/account/email/verify\""));

    // Verifying: the email carries the code and a link that fills it in.
    let sent = browser.submit_page("/account/email/send-code", &[]).await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(sent.has(&format!(
        "We sent a 6-digit code to <strong>{EMAIL}</strong>"
    )));
    let code = app.latest_code(EMAIL);
    let body = app.messages_to(EMAIL).last().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = format!("{}?code={code}", app.url("/account/email/verify"));
    assert!(body.contains(&link), "{body}");

    // Asking again at once: wait, with Retry-After.
    let again = browser.submit("/account/email/send-code", &[]).await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(again.headers().contains_key("retry-after"));
    let again = Page::from(again).await;
    assert!(
        again.has("A code was sent a moment ago. Wait "),
        "{}",
        again.html
    );

    // Opening the link only fills the form in.
    let filled = browser
        .open(&format!("/account/email/verify?code={code}"))
        .await;
    assert_eq!(filled.status, StatusCode::OK);
    assert!(filled.has(&format!("value=\"{code}\"")));
    assert!(
        !app.service.find_user(EMAIL).await.unwrap().email_verified,
        "a GET verifies nothing"
    );
    let hostile = browser
        .open("/account/email/verify?code=%22%3E%3Cb%3E1")
        .await;
    assert!(hostile.has("value=\"1\"") && !hostile.has("<b>"));
    let verified = browser
        .submit("/account/email/verify", &[("code", &code)])
        .await;
    assert_eq!(location(&verified), "/account?done=email-verified");
    let account = browser.open("/account?done=email-verified").await;
    assert!(account.has("Your email address is verified."));
    assert!(account.has("<span class=\"badge ok\">verified</span>"));

    // Turning on email codes: a code to the address, then the recovery codes.
    let intro = browser.open("/account/email-2fa").await;
    assert!(intro.has("<h1>Turn on email codes</h1>"));
    app.clock.advance_seconds(61);
    let sent = browser.submit_page("/account/email-2fa", &[]).await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(sent.has("action=\"/account/email-2fa/confirm\""));
    let code = app.latest_code(EMAIL);
    let confirmed = browser
        .submit_page("/account/email-2fa/confirm", &[("code", &code)])
        .await;
    assert_eq!(listed_codes(&confirmed.html).len(), 10);
    let account = browser.open("/account").await;
    assert!(account.has("On: codes go to eve@example.com"));
    assert!(account.has("href=\"/account/two-factor/disable\" id=\"turn-off-two-factor\""));

    // Signing in again: "Email me a code".
    let mut browser = Browser::new(&app);
    assert_eq!(location(&browser.sign_in(EMAIL).await), "/login/verify");
    let verify = browser.open("/login/verify").await;
    assert!(verify.has(">Email me a code</button>") && !verify.has("Text me a code"));
    assert!(!verify.has("id=\"totp-form\""), "no authenticator app");
    app.clock.advance_seconds(61);
    let sent = browser
        .submit_page("/login/send-code", &[("method", "email")])
        .await;
    assert!(sent.has(&format!(
        "We sent a 6-digit code to <strong>{EMAIL}</strong>"
    )));
    assert!(sent.has("<input type=\"hidden\" name=\"method\" value=\"email\">"));
    let signed_in = browser.verify("email", &app.latest_code(EMAIL)).await;
    assert_eq!(location(&signed_in), "/account");

    // Turning two-factor authentication off with an emailed code.
    let intro = browser.open("/account/two-factor/disable").await;
    assert!(intro.has(">Send verification code</button>"));
    app.clock.advance_seconds(61);
    let sent = browser
        .submit_page("/account/two-factor/disable", &[])
        .await;
    assert!(sent.has("action=\"/account/two-factor/disable/confirm\""));
    let code = app.latest_code(EMAIL);
    let wrong = browser
        .submit_page(
            "/account/two-factor/disable/confirm",
            &[("code", wrong_code(&code))],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let done = browser
        .submit("/account/two-factor/disable/confirm", &[("code", &code)])
        .await;
    assert_eq!(location(&done), "/account?done=two-factor-off");
    let account = browser.open("/account?done=two-factor-off").await;
    assert!(account.has("Two-factor authentication is off."));
    assert!(account.has("<dd id=\"two-factor\">No</dd>"));
}

#[tokio::test]
async fn two_factor_that_is_required_is_not_offered_to_turn_off() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut browser = Browser::new(&app);
    browser.enroll_by_phone("rae@example.com").await;
    let account = browser.open("/account").await;
    assert!(!account.has("turn-off-two-factor"));
    assert!(account.has("id=\"two-factor-required\""));
    let page = browser.open("/account/two-factor/disable").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.has("cannot be turned off"));
    let refused = browser
        .submit_page("/account/two-factor/disable", &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        app.messages_to("rae@example.com")
            .iter()
            .all(|message| { message["subject"] != "Turn off two-factor authentication" })
    );
}
