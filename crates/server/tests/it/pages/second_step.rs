//! The second step of a sign-in with a code by text message, and "Reset two-factor" from the
//! fallback phone (seed 003), through the pages.

use reqwest::StatusCode;

use super::*;
use crate::helpers::{Backend, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_texted_code_signs_in_once,
    the_fallback_phone_resets_two_factor_and_leads_to_a_new_choice,
);

async fn a_texted_code_signs_in_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    Browser::new(&app).enroll_by_phone("tom@example.com").await;
    let mut browser = Browser::new(&app);
    assert_eq!(
        location(&browser.sign_in("tom@example.com").await),
        "/login/verify"
    );
    let verify = browser.open("/login/verify").await;
    assert!(verify.has(">Text me a code</button>") && !verify.has("Email me a code"));
    assert!(!verify.has("id=\"totp-form\""), "no authenticator app");
    assert!(verify.has("href=\"/login/reset\" id=\"reset-two-factor\""));

    let sent = browser
        .submit_page("/login/send-code", &[("method", "sms")])
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(sent.has("We sent a 6-digit code to <strong>+••••••••••78</strong>"));
    assert!(
        sent.has("<label for=\"sent-code\">Enter the 6-digit code from the text message</label>")
    );

    // Asking again at once: wait, with Retry-After; the code form stays.
    let again = browser
        .submit("/login/send-code", &[("method", "sms")])
        .await;
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(again.headers().contains_key("retry-after"));
    let again = Page::from(again).await;
    assert!(again.has("A code was sent a moment ago. Wait ") && again.has("id=\"sent-code\""));
    let code = app.latest_code(PHONE_E164);

    let wrong = Page::from(browser.verify("sms", wrong_code(&code)).await).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.has("That code is not right.") && wrong.has("id=\"sent-code\""));
    let signed_in = browser.verify("sms", &code).await;
    assert_eq!(location(&signed_in), "/account");
    assert!(session_cookie(&signed_in).is_some());

    // The same code does not sign in twice.
    let mut other = Browser::new(&app);
    other.sign_in("tom@example.com").await;
    other.open("/login/verify").await;
    let replay = other.verify("sms", &code).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
}

async fn the_fallback_phone_resets_two_factor_and_leads_to_a_new_choice(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    Browser::new(&app).enroll_by_phone("una@example.com").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("una@example.com").await;
    let intro = browser.open("/login/reset").await;
    assert_eq!(intro.status, StatusCode::OK);
    assert!(intro.has("+••••••••••78") && intro.has(">Send reset SMS code</button>"));

    app.clock.advance_seconds(61);
    let sent = browser.submit_page("/login/reset", &[]).await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(sent.has(">Reset Two-Factor</button>"));
    let messages = app.messages_to(PHONE_E164);
    assert!(
        messages.last().unwrap()["body"]
            .as_str()
            .unwrap()
            .contains("reset your two-factor authentication")
    );
    let code = app.latest_code(PHONE_E164);
    let wrong = browser
        .submit_page("/login/reset/confirm", &[("code", wrong_code(&code))])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let reset = browser
        .submit("/login/reset/confirm", &[("code", &code)])
        .await;
    assert_eq!(location(&reset), "/login/enroll");
    assert!(session_cookie(&reset).is_some(), "the session rotates");
    let chooser = browser.open("/login/enroll").await;
    assert!(chooser.has("Use an authenticator app") && chooser.has("Use text messages (SMS)"));
    assert_eq!(browser.redirect_of("/account").await, "/login/enroll");

    // The old factors are gone, the phone with them.
    let user = app.service.find_user("una@example.com").await.unwrap();
    assert!(
        app.service
            .enrolled_methods(&user)
            .await
            .unwrap()
            .is_empty()
    );
    let mut later = Browser::new(&app);
    assert_eq!(
        location(&later.sign_in("una@example.com").await),
        "/login/enroll"
    );
}

#[tokio::test]
async fn without_a_phone_there_is_no_reset() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut browser = Browser::new(&app);
    browser.enroll("vic@example.com").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("vic@example.com").await;
    let verify = browser.open("/login/verify").await;
    assert!(!verify.has("/login/reset") && verify.has("id=\"totp-form\""));
    assert!(!verify.has("Text me a code"));
    let intro = browser.open("/login/reset").await;
    assert_eq!(intro.status, StatusCode::CONFLICT);
    assert!(intro.has("No fallback phone"));
}
