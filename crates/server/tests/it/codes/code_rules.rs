//! The rules every emailed or texted code follows: ten minutes, once, five tries, the latest
//! send replaces the earlier code, and resends are throttled per user and purpose and per
//! destination.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::helpers::{Backend, assert_error, spawn_app};
use crate::on_both_backends;

const VERIFY_SUBJECT: &str = "Verify your email address";

on_both_backends!(
    a_code_lives_ten_minutes,
    a_code_works_once,
    five_wrong_tries_kill_a_code,
    wrong_codes_for_a_factor_also_count_towards_the_lockout,
    a_new_send_replaces_the_earlier_code,
    resends_wait_a_minute_and_at_most_ten_go_out_an_hour,
    the_throttle_counts_per_destination_and_per_purpose,
);

async fn send_phone_code(app: &TestApp, client: &Client, phone: &str) -> Response {
    app.post(client, "/api/v1/account/phone", json!({"phone": phone}))
        .await
}

async fn confirm_phone(app: &TestApp, client: &Client, code: &str) -> Response {
    app.post(
        client,
        "/api/v1/account/phone/confirm",
        json!({"code": code}),
    )
    .await
}

async fn send_verification(app: &TestApp, client: &Client) -> Response {
    app.post(client, "/api/v1/account/email/send-code", json!({}))
        .await
}

async fn verify_address(app: &TestApp, client: &Client, code: &str) -> Response {
    app.post(
        client,
        "/api/v1/account/email/verify",
        json!({"code": code}),
    )
    .await
}

async fn a_code_lives_ten_minutes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.enrollment_session("alice@example.com").await;
    assert_eq!(
        send_phone_code(&app, &client, PHONE).await.status(),
        StatusCode::ACCEPTED
    );
    let code = app.texted_code(PHONE);
    app.clock.advance_seconds(10 * 60 + 1);
    assert_error(
        confirm_phone(&app, &client, &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;

    assert_eq!(
        send_phone_code(&app, &client, PHONE).await.status(),
        StatusCode::ACCEPTED
    );
    let code = app.texted_code(PHONE);
    app.clock.advance_seconds(10 * 60 - 1);
    assert_eq!(
        confirm_phone(&app, &client, &code).await.status(),
        StatusCode::OK,
        "a second before it expires the code still works"
    );
    assert_eq!(app.account(&client).await["two_factor"], "enabled");
}

async fn a_code_works_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.enrollment_session("bob@example.com").await;
    send_phone_code(&app, &client, PHONE).await;
    let code = app.texted_code(PHONE);
    assert_eq!(
        confirm_phone(&app, &client, &code).await.status(),
        StatusCode::OK
    );
    assert_error(
        confirm_phone(&app, &client, &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;

    // The same for an emailed code, in a session of another user.
    let other = app.signed_in("carol@example.com").await;
    send_verification(&app, &other).await;
    let code = app.emailed_code("carol@example.com", VERIFY_SUBJECT);
    assert_eq!(
        verify_address(&app, &other, &code).await.status(),
        StatusCode::OK
    );
    assert_error(
        verify_address(&app, &other, &code).await,
        StatusCode::CONFLICT,
        "email_already_verified",
    )
    .await;
    assert_eq!(app.account(&other).await["email_verified"], true);
}

async fn five_wrong_tries_kill_a_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Four wrong tries leave the code alive.
    let client = app.signed_in("dave@example.com").await;
    send_verification(&app, &client).await;
    let code = app.emailed_code("dave@example.com", VERIFY_SUBJECT);
    for _ in 0..4 {
        assert_error(
            verify_address(&app, &client, &wrong_code(&code)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    assert_eq!(
        verify_address(&app, &client, &code).await.status(),
        StatusCode::OK
    );

    // The fifth wrong try kills it; malformed input counts as a try.
    let client = app.signed_in("erin@example.com").await;
    send_verification(&app, &client).await;
    let code = app.emailed_code("erin@example.com", VERIFY_SUBJECT);
    for wrong in [wrong_code(&code).as_str(), "000", "abcdef", "1234567", ""] {
        assert_error(
            verify_address(&app, &client, wrong).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    // Five wrong codes also lock the account for 30 s (every wrong code counts there); once
    // that has passed, the right code is still refused: the code itself is dead.
    assert_error(
        verify_address(&app, &client, &code).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    )
    .await;
    app.clock.advance_seconds(31);
    assert_error(
        verify_address(&app, &client, &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    assert_eq!(app.account(&client).await["email_verified"], false);
    // A new code works.
    app.clock.advance_seconds(61);
    send_verification(&app, &client).await;
    let code = app.emailed_code("erin@example.com", VERIFY_SUBJECT);
    assert_eq!(
        verify_address(&app, &client, &code).await.status(),
        StatusCode::OK
    );
}

/// A code that would make a second factor also counts wrong tries against the account's
/// second-factor lockout: a fresh code must not buy five more guesses.
async fn wrong_codes_for_a_factor_also_count_towards_the_lockout(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.enrollment_session("frank@example.com").await;
    send_phone_code(&app, &client, PHONE).await;
    let code = app.texted_code(PHONE);
    for _ in 0..5 {
        assert_error(
            confirm_phone(&app, &client, &wrong_code(&code)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    let locked = confirm_phone(&app, &client, &code).await;
    assert!((1..=30).contains(&retry_after(&locked)));
    assert_error(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    // After the wait the code is still dead: it had its five tries.
    app.clock.advance_seconds(31);
    assert_error(
        confirm_phone(&app, &client, &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    app.clock.advance_seconds(61);
    send_phone_code(&app, &client, PHONE).await;
    let code = app.texted_code(PHONE);
    assert_eq!(
        confirm_phone(&app, &client, &code).await.status(),
        StatusCode::OK
    );
}

async fn a_new_send_replaces_the_earlier_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.signed_in("grace@example.com").await;
    assert_eq!(
        send_verification(&app, &client).await.status(),
        StatusCode::ACCEPTED
    );
    let first = app.emailed_code("grace@example.com", VERIFY_SUBJECT);
    app.clock.advance_seconds(61);
    assert_eq!(
        send_verification(&app, &client).await.status(),
        StatusCode::ACCEPTED
    );
    let second = app.emailed_code("grace@example.com", VERIFY_SUBJECT);
    assert_eq!(
        app.emails_titled("grace@example.com", VERIFY_SUBJECT).len(),
        2
    );
    assert_ne!(first, second, "a new send makes a new code");
    assert_error(
        verify_address(&app, &client, &first).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    assert_eq!(
        verify_address(&app, &client, &second).await.status(),
        StatusCode::OK
    );

    // The same for texts.
    let client = app.enrollment_session("heidi@example.com").await;
    send_phone_code(&app, &client, PHONE).await;
    let first = app.texted_code(PHONE);
    app.clock.advance_seconds(61);
    send_phone_code(&app, &client, PHONE).await;
    let second = app.texted_code(PHONE);
    assert_ne!(first, second);
    assert_error(
        confirm_phone(&app, &client, &first).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    assert_eq!(
        confirm_phone(&app, &client, &second).await.status(),
        StatusCode::OK
    );
}

async fn resends_wait_a_minute_and_at_most_ten_go_out_an_hour(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.signed_in("ivy@example.com").await;
    assert_eq!(
        send_verification(&app, &client).await.status(),
        StatusCode::ACCEPTED
    );
    let again = send_verification(&app, &client).await;
    assert_eq!(retry_after(&again), 60);
    assert_error(again, StatusCode::TOO_MANY_REQUESTS, "too_many_codes").await;
    app.clock.advance_seconds(30);
    let again = send_verification(&app, &client).await;
    assert_eq!(retry_after(&again), 30);
    assert_error(again, StatusCode::TOO_MANY_REQUESTS, "too_many_codes").await;
    assert_eq!(
        app.emails_titled("ivy@example.com", VERIFY_SUBJECT).len(),
        1,
        "a refused send sends nothing"
    );
    app.clock.advance_seconds(31);

    // Sends 2 to 10 at 61-second intervals (the first was at 0 s).
    for send in 2..=10 {
        assert_eq!(
            send_verification(&app, &client).await.status(),
            StatusCode::ACCEPTED,
            "send {send}"
        );
        app.clock.advance_seconds(61);
    }
    // 610 s after the first send: the eleventh in the hour is refused until the first leaves
    // the hour.
    let eleventh = send_verification(&app, &client).await;
    assert_eq!(retry_after(&eleventh), 3600 - 610);
    assert_error(eleventh, StatusCode::TOO_MANY_REQUESTS, "too_many_codes").await;
    assert_eq!(
        app.emails_titled("ivy@example.com", VERIFY_SUBJECT).len(),
        10
    );

    // After that wait one more may go out (the session timed out meanwhile).
    app.clock.advance_seconds(3600 - 610 + 1);
    let client = app.client();
    app.login(&client, "ivy@example.com", crate::helpers::PASSWORD)
        .await;
    assert_eq!(
        send_verification(&app, &client).await.status(),
        StatusCode::ACCEPTED
    );
    let code = app.emailed_code("ivy@example.com", VERIFY_SUBJECT);
    assert_eq!(
        verify_address(&app, &client, &code).await.status(),
        StatusCode::OK
    );
}

async fn the_throttle_counts_per_destination_and_per_purpose(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let jack = app.enrollment_session("jack@example.com").await;
    let kate = app.enrollment_session("kate@example.com").await;
    // Ten texts an hour reach one phone, whoever asks for them: five rounds of two users.
    for round in 0..5 {
        for client in [&jack, &kate] {
            assert_eq!(
                send_phone_code(&app, client, PHONE).await.status(),
                StatusCode::ACCEPTED,
                "round {round}"
            );
        }
        if round == 0 {
            // One user cannot have a code for the same purpose sent anywhere within the
            // minute; a code for another purpose goes at once.
            let refused = send_phone_code(&app, &jack, OTHER_PHONE).await;
            assert_eq!(retry_after(&refused), 60);
            assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_codes").await;
            assert!(app.messages_to(OTHER_PHONE).is_empty());
            assert_eq!(
                send_verification(&app, &jack).await.status(),
                StatusCode::ACCEPTED
            );
            assert_eq!(app.messages_to("jack@example.com").len(), 1);
        }
        app.clock.advance_seconds(61);
    }
    assert_eq!(app.messages_to(PHONE).len(), 10);
    // 305 s after the first text to the phone, the eleventh is refused until the first
    // leaves the hour, though the user asking may have another code.
    let refused = send_phone_code(&app, &jack, PHONE).await;
    assert_eq!(retry_after(&refused), 3600 - 305);
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_codes").await;
    assert_eq!(app.messages_to(PHONE).len(), 10);
    assert_eq!(
        send_phone_code(&app, &jack, OTHER_PHONE).await.status(),
        StatusCode::ACCEPTED
    );
    // Each user's latest code works for them.
    let code = app.texted_code(OTHER_PHONE);
    assert_eq!(
        confirm_phone(&app, &jack, &code).await.status(),
        StatusCode::OK
    );
    let code = app.texted_code(PHONE);
    assert_eq!(
        confirm_phone(&app, &kate, &code).await.status(),
        StatusCode::OK
    );
}
