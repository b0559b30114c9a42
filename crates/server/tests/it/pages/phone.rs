//! Text messages on pages: choosing them at enrollment, the phone form (countries with calling
//! codes, refused numbers), the code from the outbox, the recovery codes; SMS and the app chosen
//! together (seed 001); changing the phone; verifying by texting the system number (seed 004).

use reqwest::StatusCode;

use super::*;
use crate::helpers::{Backend, Options, PASSWORD, session_cookie, spawn_app, spawn_app_with};
use crate::on_both_backends;
use crate::totp::independent_totp;

on_both_backends!(
    forced_enrollment_by_text_message_ends_with_the_recovery_codes,
    sms_and_app_chosen_together_set_up_the_phone_first_then_the_app,
);

const WRONG_CODE: &str = "That code is not right.";

async fn forced_enrollment_by_text_message_ends_with_the_recovery_codes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("sam@example.com", Some(PASSWORD), true)
        .await;
    let mut browser = Browser::new(&app);
    assert_eq!(
        location(&browser.sign_in("sam@example.com").await),
        "/login/enroll"
    );
    let enroll = browser.open("/login/enroll").await;
    for choice in [
        "href=\"/account/totp/setup\"",
        "href=\"/account/phone\"",
        "href=\"/account/email-2fa\"",
        "Use text messages (SMS)",
        "Use email codes",
        "<summary>More options</summary>",
    ] {
        assert!(enroll.has(choice), "{choice}");
    }

    // The form: countries by name with their calling codes, no password for a first phone.
    let form = browser.open("/account/phone").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.has("<option value=\"GB\">United Kingdom (+44)</option>"));
    assert!(form.has("<option value=\"US\">United States (+1)</option>"));
    assert!(form.has(">Send verification code</button>"));
    // ASVS 6.6.1: SMS is offered beside stronger methods, with its risk told.
    assert!(form.has("id=\"sms-risk\"") && form.has("SIM swap"));
    assert!(enroll.has("SIM swap"), "the choice of SMS names its risk");
    assert!(
        !form.has("type=\"password\""),
        "no password for a first phone"
    );
    assert!(
        !form.has("Verify by sending a text instead"),
        "no inbound number"
    );

    // Refused numbers keep what was typed and say why.
    let refused = browser
        .submit_page("/account/phone", &[("country", "GB"), ("phone", "12")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.has("This is not a valid phone number."));
    assert!(refused.has("value=\"12\"") && refused.has("<option value=\"GB\" selected>"));
    let no_country = browser
        .submit_page(
            "/account/phone",
            &[("country", ""), ("phone", NATIONAL_PHONE)],
        )
        .await;
    assert_eq!(no_country.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_country.has("Enter the number with its country code"));
    assert!(app.messages_to(PHONE_E164).is_empty());

    // The code goes to the number in E.164; the page names it masked.
    let sent = browser
        .submit_page(
            "/account/phone",
            &[("country", "GB"), ("phone", NATIONAL_PHONE)],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    assert!(sent.has("We sent a 6-digit code to <strong>+••••••••••78</strong>"));
    assert!(sent.has("action=\"/account/phone/confirm\"") && sent.has(">Verify</button>"));
    let messages = app.messages_to(PHONE_E164);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["channel"], "sms");
    let code = app.latest_code(PHONE_E164);

    let wrong = browser
        .submit_page("/account/phone/confirm", &[("code", wrong_code(&code))])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.has(WRONG_CODE));

    let confirmed = browser
        .submit("/account/phone/confirm", &[("code", &code)])
        .await;
    assert!(session_cookie(&confirmed).is_some(), "the session rotates");
    let codes_page = Page::from(confirmed).await;
    assert_eq!(codes_page.status, StatusCode::OK);
    assert_eq!(listed_codes(&codes_page.html).len(), 10);
    assert!(codes_page.has("<form method=\"get\" action=\"/account\""));

    let account = browser.open("/account").await;
    assert!(account.has("<dd id=\"two-factor\">Enabled</dd>"));
    assert!(account.has("<span id=\"phone-number\">+••••••••••78</span>"));
    assert!(account.has(">Change phone</a>") && account.has("10 left"));
    assert!(account.has(">Turn off two-factor</a>") || account.has("two-factor-required"));

    // Changing the phone asks for the password.
    let change = browser.open("/account/phone").await;
    assert!(change.has("<h1>Change phone</h1>") && change.has("type=\"password\""));
    let refused = browser
        .submit_page(
            "/account/phone",
            &[
                ("country", "GB"),
                ("phone", "0121 234 5679"),
                ("password", "not the password"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.has("The password is not right."));
}

async fn sms_and_app_chosen_together_set_up_the_phone_first_then_the_app(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("sue@example.com", Some(PASSWORD), true)
        .await;
    let mut browser = Browser::new(&app);
    browser.sign_in("sue@example.com").await;
    let nothing_chosen = browser.open("/login/enroll?choose=1").await;
    assert!(nothing_chosen.has("Choose at least one way to sign in."));
    assert_eq!(
        browser
            .redirect_of("/login/enroll?choose=1&method=totp&method=sms")
            .await,
        "/account/phone?next=totp",
        "text messages first"
    );

    let form = browser.open("/account/phone?next=totp").await;
    assert!(form.has("<input type=\"hidden\" name=\"next\" value=\"totp\">"));
    let fields = [
        ("country", "GB"),
        ("phone", NATIONAL_PHONE),
        ("next", "totp"),
    ];
    let sent = browser.submit_page("/account/phone", &fields).await;
    assert!(sent.has("<input type=\"hidden\" name=\"next\" value=\"totp\">"));
    let code = app.latest_code(PHONE_E164);
    let codes_page = browser
        .submit_page(
            "/account/phone/confirm",
            &[("code", &code), ("next", "totp")],
        )
        .await;
    assert_eq!(listed_codes(&codes_page.html).len(), 10);
    assert!(
        codes_page.has("<form method=\"get\" action=\"/account/totp/setup\""),
        "Continue leads on to the app"
    );

    // The app next: a new key, not the password form of a replacement.
    let setup = browser.open("/account/totp/setup").await;
    assert_eq!(setup.status, StatusCode::OK);
    let secret = key_of(&setup.html);
    let confirmed = browser
        .submit(
            "/account/totp/setup",
            &[("code", &independent_totp(&secret, app.now()))],
        )
        .await;
    assert_eq!(location(&confirmed), "/account?done=totp");
    let account = browser.open("/account?done=totp").await;
    assert!(account.has("Your authenticator app is set up."));
    assert!(account.has(">Change authenticator</a>") && account.has(">Change phone</a>"));
    assert!(account.has("10 left"), "one set of recovery codes");
}

#[tokio::test]
async fn the_inbound_page_shows_the_number_and_the_code_to_text() {
    let options = Options {
        sms_inbound: Some(("+15005550006".to_owned(), "inbound-token".to_owned())),
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options).await.unwrap();
    app.create_user("ivy@example.com", Some(PASSWORD), true)
        .await;
    let mut browser = Browser::new(&app);
    browser.sign_in("ivy@example.com").await;
    let form = browser.open("/account/phone").await;
    assert!(form.has(
        "formaction=\"/account/phone/inbound\" id=\"verify-by-text\">Verify by sending a text instead</button>"
    ));
    let fields = [("country", "GB"), ("phone", NATIONAL_PHONE)];
    let challenge = browser.submit_page("/account/phone/inbound", &fields).await;
    assert_eq!(challenge.status, StatusCode::OK);
    assert!(challenge.has("<code id=\"system-number\">+15005550006</code>"));
    assert!(challenge.has("<strong>+••••••••••78</strong>"));
    let code = between(&challenge.html, "<code id=\"inbound-code\">", "</code>").to_owned();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    assert!(app.messages_to(PHONE_E164).is_empty(), "nothing is texted");

    let echoed = [
        ("system_number", "+15005550006"),
        ("code", code.as_str()),
        ("from", "+••••••••••78"),
    ];
    let early = browser
        .submit_page("/account/phone/inbound/confirm", &echoed)
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert!(early.has("Your text has not arrived yet."));
    assert!(early.has(&format!("<code id=\"inbound-code\">{code}</code>")));

    let received = app
        .service
        .record_inbound_sms(PHONE_E164, &format!("My code is {code}"))
        .await
        .unwrap();
    assert!(received);
    let confirmed = browser
        .submit_page("/account/phone/inbound/confirm", &echoed)
        .await;
    assert_eq!(confirmed.status, StatusCode::OK);
    assert_eq!(listed_codes(&confirmed.html).len(), 10);
    let account = browser.open("/account").await;
    assert!(account.has("<span id=\"phone-number\">+••••••••••78</span>"));
}

#[tokio::test]
async fn without_an_inbound_number_texting_us_is_not_offered() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.create_user("joy@example.com", Some(PASSWORD), true)
        .await;
    let mut browser = Browser::new(&app);
    browser.sign_in("joy@example.com").await;
    browser.open("/account/phone").await;
    let fields = [("country", "GB"), ("phone", NATIONAL_PHONE)];
    let page = browser.submit_page("/account/phone/inbound", &fields).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.has("not available"));
    assert_eq!(
        browser.redirect_of("/account/phone/inbound").await,
        "/account/phone"
    );
}
