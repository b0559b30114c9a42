//! The account's address: verified by an emailed code (or its link), then email codes as a
//! second factor.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::helpers::{Backend, assert_error, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    an_address_is_verified_then_email_codes_become_a_factor,
    an_enrollment_session_can_enroll_email_codes,
);

async fn an_address_is_verified_then_email_codes_become_a_factor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.signed_in("alice@example.com").await;
    let account = app.account(&client).await;
    assert_eq!(account["email_verified"], false);
    assert_eq!(account["two_factor"], "off");

    // Email codes need a verified address.
    assert_error(
        app.post(&client, "/api/v1/account/email-2fa/send-code", json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    assert_error(
        app.post(
            &client,
            "/api/v1/account/email-2fa/confirm",
            json!({"code": "123456"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    assert!(app.messages_to("alice@example.com").is_empty());

    let sent = app
        .post(&client, "/api/v1/account/email/send-code", json!({}))
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = app.emailed_code("alice@example.com", "Verify your email address");
    let messages = app.messages_to("alice@example.com");
    assert_eq!(messages.len(), 1);
    let body = messages[0]["body"].as_str().unwrap();
    let link = app.url(&format!("/account/email/verify?code={code}"));
    assert!(
        body.lines().any(|line| line == link),
        "no link {link} in {body}"
    );
    assert_eq!(
        digit_runs(body).iter().filter(|run| **run != code).count(),
        0,
        "{body}"
    );

    let wrong = app
        .post(
            &client,
            "/api/v1/account/email/verify",
            json!({"code": wrong_code(&code)}),
        )
        .await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_code").await;
    assert_eq!(app.account(&client).await["email_verified"], false);
    let verified = app
        .post(
            &client,
            "/api/v1/account/email/verify",
            json!({"code": code}),
        )
        .await;
    assert_eq!(
        json_of(verified, StatusCode::OK).await,
        json!({"email_verified": true})
    );
    let account = app.account(&client).await;
    assert_eq!(account["email_verified"], true);
    assert_eq!(
        account["two_factor"], "off",
        "a verified address is no factor"
    );
    assert_eq!(account["methods"], json!([]));
    assert_error(
        app.post(&client, "/api/v1/account/email/send-code", json!({}))
            .await,
        StatusCode::CONFLICT,
        "email_already_verified",
    )
    .await;

    // Now email codes can be turned on.
    app.clock.advance_seconds(61);
    let sent = app
        .post(&client, "/api/v1/account/email-2fa/send-code", json!({}))
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = app.emailed_code("alice@example.com", "Turn on sign-in codes by email");
    let body = app.messages_to("alice@example.com").last().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        digit_runs(&body),
        std::slice::from_ref(&code),
        "no link, the code once"
    );
    let wrong = app
        .post(
            &client,
            "/api/v1/account/email-2fa/confirm",
            json!({"code": wrong_code(&code)}),
        )
        .await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_code").await;
    assert_eq!(app.account(&client).await["methods"], json!([]));
    let confirmed = app
        .post(
            &client,
            "/api/v1/account/email-2fa/confirm",
            json!({"code": code}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(session_cookie(&confirmed).is_some(), "the session rotates");
    let codes = strings(&json_of(confirmed, StatusCode::OK).await["recovery_codes"]);
    assert_eq!(codes.len(), 10);
    let account = app.account(&client).await;
    assert_eq!(account["two_factor"], "enabled");
    assert_eq!(account["methods"], json!(["email", "recovery_code"]));
    let notice = app.single_notice("alice@example.com", FACTOR_ADDED);
    assert!(notice.contains("Codes by email"), "{notice}");

    app.post(&client, "/api/v1/logout", json!({})).await;
    app.at_second_factor_with("alice@example.com", json!(["email", "recovery_code"]))
        .await;
}

async fn an_enrollment_session_can_enroll_email_codes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let codes = app.email_user("bob@example.com").await;
    assert_eq!(codes.len(), 10);
    let client = app
        .at_second_factor_with("bob@example.com", json!(["email", "recovery_code"]))
        .await;
    // A half signed-in session can do nothing with the address.
    for path in [
        "/api/v1/account/email/send-code",
        "/api/v1/account/email-2fa/send-code",
    ] {
        assert_error(
            app.post(&client, path, json!({})).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
    }
}
