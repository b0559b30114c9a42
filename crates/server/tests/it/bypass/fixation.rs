//! Session fixation: the session token changes at every step of a login (password, new
//! password, enrollment, second factor), the old value is dead after each, and a token the
//! browser brought along (planted by an attacker) is never adopted.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{send_as, totp_now};
use crate::codes::json_of;
use crate::helpers::{Backend, assert_error, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(every_step_issues_a_new_token_and_kills_the_old_one);

const NEW_PASSWORD: &str = "a long enough passphrase for sybil";

/// Sends a step with `token`; the new token it set and the JSON answer.
async fn step(
    app: &crate::helpers::TestApp,
    token: Option<&str>,
    path: &str,
    body: Value,
) -> (String, Value) {
    let response = send_as(app, token, Method::POST, path, &body).await;
    let new = session_cookie(&response).unwrap_or_else(|| panic!("{path} set no session"));
    (new, json_of(response, StatusCode::OK).await)
}

/// Asserts that `token` is no session at all, using a call its old state could make.
async fn dead(app: &crate::helpers::TestApp, token: &str, path: &str, body: Value) {
    let response = send_as(app, Some(token), Method::POST, path, &body).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let account = send_as(app, Some(token), Method::GET, "/api/v1/account", &json!({})).await;
    assert_error(account, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

async fn every_step_issues_a_new_token_and_kills_the_old_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let email = "sybil@example.com";
    let temporary = app.create_user(email, None, true).await.unwrap();

    // The attacker's own half-signed-in session, and a well-formed made-up token, planted in
    // the victim's browser before the victim signs in.
    app.create_user("trent@example.com", Some(crate::helpers::PASSWORD), true)
        .await;
    let (planted, _) = step(
        &app,
        None,
        "/api/v1/login",
        json!({"email": "trent@example.com", "password": crate::helpers::PASSWORD}),
    )
    .await;
    let made_up = "A".repeat(planted.len());
    let login = json!({"email": email, "password": temporary});
    for brought in [planted.as_str(), made_up.as_str()] {
        let (token, state) = step(&app, Some(brought), "/api/v1/login", login.clone()).await;
        assert_eq!(state["state"], "password_change_required");
        assert_ne!(token, brought, "the brought token was adopted");
    }
    // The attacker's token did not become the victim's session.
    let change = json!({"new_password": "an attacker's chosen passphrase"});
    let response = send_as(
        &app,
        Some(&planted),
        Method::POST,
        "/api/v1/login/password",
        &change,
    )
    .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    // Password → new password → enrollment → signed in; each step a new token.
    let (first, _) = step(&app, None, "/api/v1/login", login).await;
    let change = json!({"new_password": NEW_PASSWORD});
    let (second, state) = step(&app, Some(&first), "/api/v1/login/password", change.clone()).await;
    assert_eq!(state["state"], "enrollment_required");
    assert_ne!(second, first);
    dead(&app, &first, "/api/v1/login/password", change).await;

    let started = send_as(
        &app,
        Some(&second),
        Method::POST,
        "/api/v1/account/totp",
        &json!({}),
    )
    .await;
    let secret = json_of(started, StatusCode::OK).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirm = json!({"code": totp_now(&app, &secret)});
    let (third, _) = step(&app, Some(&second), "/api/v1/account/totp/confirm", confirm).await;
    assert_ne!(third, second);
    dead(&app, &second, "/api/v1/account/totp", json!({})).await;
    let account = send_as(
        &app,
        Some(&third),
        Method::GET,
        "/api/v1/account",
        &json!({}),
    )
    .await;
    assert_eq!(
        json_of(account, StatusCode::OK).await["two_factor"],
        "enabled"
    );

    // A later sign-in: password → second factor.
    app.clock.advance_seconds(30);
    let credentials = json!({"email": email, "password": NEW_PASSWORD});
    let (fourth, state) = step(&app, Some(&third), "/api/v1/login", credentials).await;
    assert_eq!(state["state"], "second_factor");
    assert_ne!(fourth, third);
    let code = json!({"method": "totp", "code": totp_now(&app, &secret)});
    let (fifth, state) = step(&app, Some(&fourth), "/api/v1/login/verify", code).await;
    assert_eq!(state["state"], "authenticated");
    assert_ne!(fifth, fourth);
    app.clock.advance_seconds(30);
    let next = json!({"method": "totp", "code": totp_now(&app, &secret)});
    dead(&app, &fourth, "/api/v1/login/verify", next).await;
    let account = send_as(
        &app,
        Some(&fifth),
        Method::GET,
        "/api/v1/account",
        &json!({}),
    )
    .await;
    assert_eq!(account.status(), StatusCode::OK);
}
