//! Regressions from a security test: concurrent sends past the per-destination limit, email
//! verification while the account is locked, and the webhook's answer to an oversized body.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::helpers::{Backend, Options, assert_error, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(concurrent_sends_to_one_phone_never_pass_ten_an_hour);

/// Thirty accounts ask at the same moment for a code to one phone: exactly ten get one (the
/// check and the record of a send are one atomic step), the rest 429 with `Retry-After`.
async fn concurrent_sends_to_one_phone_never_pass_ten_an_hour(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut clients = Vec::new();
    for index in 0..30 {
        clients.push(app.signed_in(&format!("user{index}@example.com")).await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let url = app.url("/api/v1/account/phone");
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let barrier = barrier.clone();
            let url = url.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let response = client
                    .post(url)
                    .json(&json!({"phone": PHONE}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let waits = response.headers().contains_key("retry-after");
                (status, waits)
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        let (status, waits) = task.await.unwrap();
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => assert!(waits, "429 without Retry-After"),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(app.messages_to(PHONE).len(), 10);
}

/// A locked account is sent no verification email, and wrong verification codes count
/// towards the lockout.
#[tokio::test]
async fn email_verification_respects_the_lockout() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let client = app.signed_in("carol@example.com").await;
    let sent = app
        .post(&client, "/api/v1/account/email/send-code", json!({}))
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = app.emailed_code("carol@example.com", "Verify your email address");
    for _ in 0..5 {
        let wrong = app
            .post(
                &client,
                "/api/v1/account/email/verify",
                json!({"code": wrong_code(&code)}),
            )
            .await;
        assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_code").await;
    }
    // Five wrong codes: the account is locked, the right code too is refused for now…
    let locked = app
        .post(
            &client,
            "/api/v1/account/email/verify",
            json!({"code": code}),
        )
        .await;
    assert!(retry_after(&locked) > 0);
    assert_error(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    // …and no new code is sent while it lasts.
    let before = app.messages_to("carol@example.com").len();
    let refused = app
        .post(&client, "/api/v1/account/email/send-code", json!({}))
        .await;
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert_eq!(app.messages_to("carol@example.com").len(), before);
    assert_eq!(app.account(&client).await["email_verified"], false);
}

#[tokio::test]
async fn an_oversized_webhook_body_gets_the_contract_error() {
    let app = spawn_app_with(
        Backend::Sqlite,
        Options {
            sms_inbound: Some(("+15005550006".into(), "test-token".into())),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let response = app
        .client()
        .post(app.url("/api/v1/sms/inbound"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("Body={}", "a".repeat(70_000)))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}
