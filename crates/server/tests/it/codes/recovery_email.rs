//! New recovery codes with an emailed code instead of the password (seed 002).

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::helpers::{Backend, assert_error, spawn_app};
use crate::on_both_backends;

const SUBJECT: &str = "Make new recovery codes";

on_both_backends!(an_emailed_code_makes_new_recovery_codes_once);

async fn an_emailed_code_makes_new_recovery_codes_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (client, _, old_codes) = app.enroll("alice@example.com").await;

    // Neither or both proofs are refused before anything happens.
    for body in [json!({}), json!({"password": PASSWORD, "code": "123456"})] {
        let response = app
            .post(&client, "/api/v1/account/recovery-codes", body)
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    }

    let sent = app
        .post(
            &client,
            "/api/v1/account/recovery-codes/send-code",
            json!({}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = app.emailed_code("alice@example.com", SUBJECT);

    let wrong = app
        .post(
            &client,
            "/api/v1/account/recovery-codes",
            json!({"code": wrong_code(&code)}),
        )
        .await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_code").await;

    let made = json_of(
        app.post(
            &client,
            "/api/v1/account/recovery-codes",
            json!({"code": code}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new_codes = strings(&made["recovery_codes"]);
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|new| !old_codes.contains(new)));
    app.single_notice("alice@example.com", "New recovery codes");

    // The code works once.
    let replay = app
        .post(
            &client,
            "/api/v1/account/recovery-codes",
            json!({"code": code}),
        )
        .await;
    assert_error(replay, StatusCode::UNAUTHORIZED, "invalid_code").await;

    // The old codes are dead, a new one signs in.
    let step = app
        .at_second_factor_with("alice@example.com", json!(["totp", "recovery_code"]))
        .await;
    let old = app
        .post(
            &step,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": old_codes[0]}),
        )
        .await;
    assert_error(old, StatusCode::UNAUTHORIZED, "invalid_code").await;
    let new = app
        .post(
            &step,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": new_codes[0]}),
        )
        .await;
    assert_eq!(new.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_a_second_factor_there_are_no_recovery_codes_to_make() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let client = app.signed_in("bob@example.com").await;
    let sent = app
        .post(
            &client,
            "/api/v1/account/recovery-codes/send-code",
            json!({}),
        )
        .await;
    assert_error(sent, StatusCode::CONFLICT, "no_second_factor").await;
    assert!(app.messages_to("bob@example.com").is_empty());
}
