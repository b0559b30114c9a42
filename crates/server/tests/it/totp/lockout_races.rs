//! Regression: a burst of concurrent guesses slipped past the second-factor lockout, because
//! the failure count was read before a code was checked and written after (400 guesses at once
//! got 216 evaluated after a lockout ran out). Each check now takes its attempt in advance with
//! one conditional statement.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::helpers::{Backend, spawn_app};
use crate::on_both_backends;

on_both_backends!(a_burst_of_guesses_gets_no_more_tries_than_the_lockout_allows);

/// Fires `count` wrong TOTP codes at once from one `second_factor` session; how many were
/// evaluated (401) and how many told to wait (429).
async fn burst(app: &TestApp, client: &Client, count: usize) -> (usize, usize) {
    let url = app.url("/api/v1/login/verify");
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(count));
    let tasks: Vec<_> = (0..count)
        .map(|index| {
            let client = client.clone();
            let url = url.clone();
            let barrier = barrier.clone();
            // Six-digit codes that no authenticator shows at once (one in a million is right by
            // chance; a right one would end the burst with a 200 and fail the counts below).
            let code = format!("{:06}", 100_000 + index * 7_919);
            tokio::spawn(async move {
                barrier.wait().await;
                client
                    .post(url)
                    .json(&json!({"method": "totp", "code": code}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let (mut evaluated, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::UNAUTHORIZED => evaluated += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    (evaluated, refused)
}

async fn a_burst_of_guesses_gets_no_more_tries_than_the_lockout_allows(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, secret, _) = app.enroll("trent@example.com").await;
    let client = app.at_second_factor("trent@example.com").await;

    // Five free failures, however many arrive at once.
    assert_eq!(burst(&app, &client, 60).await, (5, 55));
    // Once the 30 s wait has passed: one more guess, then a longer wait.
    app.clock.advance_seconds(30);
    assert_eq!(burst(&app, &client, 60).await, (1, 59));
    // The owner, after the 60 s wait, signs in with the right code.
    app.clock.advance_seconds(60);
    let right = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": independent_totp(&secret, app.now())}),
        )
        .await;
    assert_eq!(right.status(), StatusCode::OK);
}
