//! A phone as the SMS factor, verified by a code texted to it.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::helpers::{Backend, PASSWORD, assert_error, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_national_number_is_verified_by_text_and_becomes_the_first_factor,
    replacing_the_phone_needs_the_password,
    a_phone_added_beside_an_authenticator_brings_no_new_recovery_codes,
);

async fn a_national_number_is_verified_by_text_and_becomes_the_first_factor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.enrollment_session("alice@example.com").await;
    let sent = app
        .post(
            &client,
            "/api/v1/account/phone",
            json!({"phone": PHONE_NATIONAL, "country": "GB"}),
        )
        .await;
    let body = json_of(sent, StatusCode::ACCEPTED).await;
    assert_eq!(body["channel"], "sms");
    let masked = body["to"].as_str().unwrap();
    assert!(
        masked.ends_with(PHONE_TAIL) && !masked.contains("7400123"),
        "{masked}"
    );

    // The text goes to the number in E.164, and nowhere else.
    let texts = app.messages_to(PHONE);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["channel"], "sms");
    assert!(
        texts[0]["body"]
            .as_str()
            .unwrap()
            .contains("verify your phone number"),
        "{}",
        texts[0]
    );
    assert!(app.messages_to(PHONE_NATIONAL).is_empty());
    assert!(app.messages_to("alice@example.com").is_empty());
    let code = app.texted_code(PHONE);

    // Not yet a factor: the session still has to enroll.
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let wrong = app
        .post(
            &client,
            "/api/v1/account/phone/confirm",
            json!({"code": wrong_code(&code)}),
        )
        .await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_code").await;

    let confirmed = app
        .post(
            &client,
            "/api/v1/account/phone/confirm",
            json!({"code": code}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(session_cookie(&confirmed).is_some(), "the session rotates");
    let codes = strings(&json_of(confirmed, StatusCode::OK).await["recovery_codes"]);
    assert_eq!(codes.len(), 10, "the first factor brings recovery codes");

    let account = app.account(&client).await;
    assert_eq!(account["two_factor"], "enabled");
    assert_eq!(account["methods"], json!(["sms", "recovery_code"]));
    assert_eq!(account["recovery_codes_left"], 10);
    let notice = app.single_notice("alice@example.com", FACTOR_ADDED);
    assert!(notice.contains("Codes by text message"), "{notice}");

    // The next sign-in asks for the second factor.
    app.post(&client, "/api/v1/logout", json!({})).await;
    app.at_second_factor_with("alice@example.com", json!(["sms", "recovery_code"]))
        .await;
}

async fn replacing_the_phone_needs_the_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.phone_user("bob@example.com", PHONE).await;
    let client = app
        .at_second_factor_with("bob@example.com", json!(["sms", "recovery_code"]))
        .await;
    // A half signed-in session cannot touch the phone at all.
    assert_error(
        app.post(
            &client,
            "/api/v1/account/phone",
            json!({"phone": OTHER_PHONE, "password": PASSWORD}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    app.post(&client, "/api/v1/login/send-code", json!({"method": "sms"}))
        .await;
    let code = app.texted_code(PHONE);
    let verified = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "sms", "code": code}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);

    // A sign-in code sent to the old phone before the change must not work after it.
    app.clock.advance_seconds(61);
    let pending = app
        .at_second_factor_with("bob@example.com", json!(["sms", "recovery_code"]))
        .await;
    let sent = app
        .post(
            &pending,
            "/api/v1/login/send-code",
            json!({"method": "sms"}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code_to_old_phone = app.texted_code(PHONE);

    for body in [
        json!({"phone": OTHER_PHONE}),
        json!({"phone": OTHER_PHONE, "password": "not the password at all"}),
    ] {
        let refused = app.post(&client, "/api/v1/account/phone", body).await;
        assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert!(
        app.messages_to(OTHER_PHONE).is_empty(),
        "no text without the password"
    );

    let sent = app
        .post(
            &client,
            "/api/v1/account/phone",
            json!({"phone": OTHER_PHONE, "password": PASSWORD}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    // Until the new phone is confirmed, the old one stays the factor.
    assert_eq!(
        app.account(&client).await["methods"],
        json!(["sms", "recovery_code"])
    );
    let code = app.texted_code(OTHER_PHONE);
    let confirmed = app
        .post(
            &client,
            "/api/v1/account/phone/confirm",
            json!({"code": code}),
        )
        .await;
    assert_eq!(
        json_of(confirmed, StatusCode::OK).await,
        json!({"recovery_codes": []}),
        "not the first factor: no new codes"
    );
    assert_eq!(app.account(&client).await["recovery_codes_left"], 10);

    // The change ended the half signed-in session; in a new one, the code sent to the old
    // phone is refused.
    assert_error(
        app.post(
            &pending,
            "/api/v1/login/verify",
            json!({"method": "sms", "code": code_to_old_phone}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let next = app
        .at_second_factor_with("bob@example.com", json!(["sms", "recovery_code"]))
        .await;
    assert_error(
        app.post(
            &next,
            "/api/v1/login/verify",
            json!({"method": "sms", "code": code_to_old_phone}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;

    // Sign-in codes now go to the new phone only.
    app.clock.advance_seconds(61);
    let texts_to_old = app.messages_to(PHONE).len();
    let sent = app
        .post(&next, "/api/v1/login/send-code", json!({"method": "sms"}))
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    assert_eq!(app.messages_to(PHONE).len(), texts_to_old);
    let code = app.texted_code(OTHER_PHONE);
    let verified = app
        .post(
            &next,
            "/api/v1/login/verify",
            json!({"method": "sms", "code": code}),
        )
        .await;
    assert_eq!(
        json_of(verified, StatusCode::OK).await["state"],
        "authenticated"
    );
}

async fn a_phone_added_beside_an_authenticator_brings_no_new_recovery_codes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (client, _, codes) = app.enroll("carol@example.com").await;
    assert_eq!(codes.len(), 10);
    // Adding (not replacing) a phone needs no password.
    assert_eq!(app.add_phone(&client, PHONE).await, Vec::<String>::new());
    let account = app.account(&client).await;
    assert_eq!(account["methods"], json!(["totp", "sms", "recovery_code"]));
    assert_eq!(account["recovery_codes_left"], 10);
    assert_eq!(
        app.emails_titled("carol@example.com", FACTOR_ADDED).len(),
        2,
        "one notice per factor"
    );
}

#[tokio::test]
async fn numbers_that_are_not_phones_are_refused() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let client = app.enrollment_session("dave@example.com").await;
    for body in [
        json!({"phone": "not a number"}),
        json!({"phone": "+44 123"}),
        json!({"phone": "12345678901234567890123"}),
        json!({"phone": ""}),
        json!({"phone": PHONE_NATIONAL}),
        json!({"phone": PHONE_NATIONAL, "country": "ZZ"}),
        json!({"phone": PHONE_NATIONAL, "country": "United Kingdom"}),
        json!({"phone": "+99 1234 5678"}),
    ] {
        let refused = app
            .post(&client, "/api/v1/account/phone", body.clone())
            .await;
        let error = assert_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone").await;
        assert!(!error["message"].as_str().unwrap().is_empty(), "{body}");
    }
    assert_error(
        app.post(
            &client,
            "/api/v1/account/phone",
            json!({"phone": PHONE, "sms": true}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    let outbox = std::fs::read_dir(&app.outbox_dir).map_or(0, Iterator::count);
    assert_eq!(outbox, 0, "nothing was sent");
    // The same number typed with its country code needs no country (and ignores one).
    for body in [
        json!({"phone": "+44 7400 123456"}),
        json!({"phone": "+44 7400 123456", "country": "US"}),
    ] {
        let sent = app.post(&client, "/api/v1/account/phone", body).await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
        app.clock.advance_seconds(61);
    }
    assert_eq!(app.messages_to(PHONE).len(), 2);
}
