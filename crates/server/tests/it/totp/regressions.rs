//! Regression tests for what the security review of the authenticator flows found.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    an_enrollment_session_from_before_the_owner_enrolled_is_dead,
    replays_do_not_count_towards_a_lockout,
    a_reset_clears_the_lockout,
    reloading_the_set_up_keeps_the_same_key,
);

/// Regression: a password-only enrollment session kept from before the owner enrolled could
/// replace the owner's authenticator and sign in.
async fn an_enrollment_session_from_before_the_owner_enrolled_is_dead(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("mallory-target@example.com", Some(PASSWORD), true)
        .await;
    let attacker = app.client();
    let step: Value = app
        .login(&attacker, "mallory-target@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(step["state"], "enrollment_required");
    // The owner enrolls in their own session.
    let owner = app.client();
    app.login(&owner, "mallory-target@example.com", PASSWORD)
        .await;
    let started: Value = app
        .post(&owner, "/api/v1/account/totp", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = started["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .post(
            &owner,
            "/api/v1/account/totp/confirm",
            json!({"code": independent_totp(&secret, app.now())}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    // The attacker's session is gone, with or without the password.
    for body in [json!({}), json!({"password": PASSWORD})] {
        let response = app.post(&attacker, "/api/v1/account/totp", body).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    assert_error(
        app.post(
            &attacker,
            "/api/v1/account/totp/confirm",
            json!({"code": "123456"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_eq!(
        app.get(&owner, "/api/v1/account").await.status(),
        StatusCode::OK
    );
}

async fn replays_do_not_count_towards_a_lockout(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, secret, _) = app.enroll("ivy@example.com").await;
    let enrollment_code = independent_totp(&secret, app.now());
    let client = app.at_second_factor("ivy@example.com").await;
    for _ in 0..8 {
        let replay = app
            .post(
                &client,
                "/api/v1/login/verify",
                json!({"method": "totp", "code": enrollment_code}),
            )
            .await;
        assert_error(replay, StatusCode::UNAUTHORIZED, "invalid_code").await;
    }
    app.clock.advance_seconds(30);
    let fresh = independent_totp(&secret, app.now());
    assert_eq!(
        app.post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": fresh})
        )
        .await
        .status(),
        StatusCode::OK
    );
}

async fn a_reset_clears_the_lockout(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.enroll("jack@example.com").await;
    let client = app.at_second_factor("jack@example.com").await;
    for _ in 0..6 {
        app.post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": "000000"}),
        )
        .await;
    }
    let user = app.service.find_user("jack@example.com").await.unwrap();
    app.service.reset_two_factor(None, user.id).await.unwrap();
    let client = app.client();
    app.login(&client, "jack@example.com", PASSWORD).await;
    let started: Value = app
        .post(&client, "/api/v1/account/totp", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = started["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .post(
            &client,
            "/api/v1/account/totp/confirm",
            json!({"code": independent_totp(&secret, app.now())}),
        )
        .await;
    assert_eq!(
        confirmed.status(),
        StatusCode::OK,
        "the new device is not locked out by the old one's failures"
    );
}

async fn reloading_the_set_up_keeps_the_same_key(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("kate@example.com", Some(PASSWORD), true)
        .await;
    let client = app.client();
    app.login(&client, "kate@example.com", PASSWORD).await;
    let first: Value = app
        .post(&client, "/api/v1/account/totp", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let again: Value = app
        .post(&client, "/api/v1/account/totp", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["secret"], again["secret"],
        "a scanned code stays valid when the page is reloaded"
    );
    // After the login-step timeout a stale pending key is replaced.
    app.clock.advance_seconds(14 * 60);
    app.get(&client, "/api/v1/account").await;
    app.clock.advance_seconds(2 * 60);
    let client = app.client();
    app.login(&client, "kate@example.com", PASSWORD).await;
    let later: Value = app
        .post(&client, "/api/v1/account/totp", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(first["secret"], later["secret"]);
}
