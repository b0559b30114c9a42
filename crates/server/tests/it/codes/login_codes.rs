//! The `second_factor` step with a code by SMS or email.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::helpers::{Backend, assert_error, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    sign_in_with_a_texted_code,
    sign_in_with_an_emailed_code,
    wrong_texted_codes_lock_the_second_factor,
    wrong_emailed_codes_lock_the_second_factor,
    codes_go_only_to_enrolled_methods_and_half_signed_in_sessions,
    replays_of_a_used_code_do_not_lock_the_owner_out,
    sixteen_concurrent_requests_with_one_code_have_one_winner,
    a_code_sent_for_one_sign_in_fails_in_the_next,
);

/// Which way a sign-in code travels, and where to read it.
#[derive(Clone, Copy)]
enum Channel {
    Sms,
    Email(&'static str),
}

impl Channel {
    fn method(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email(_) => "email",
        }
    }

    fn code(self, app: &TestApp) -> String {
        match self {
            Channel::Sms => {
                let code = app.texted_code(PHONE);
                let texts = app.messages_to(PHONE);
                let body = texts.last().unwrap()["body"].as_str().unwrap();
                assert!(body.contains("finish signing in"), "{body}");
                code
            }
            Channel::Email(address) => app.emailed_code(address, "Your sign-in code"),
        }
    }

    fn sent(self, app: &TestApp) -> usize {
        match self {
            Channel::Sms => app
                .messages_to(PHONE)
                .iter()
                .filter(|text| {
                    text["body"]
                        .as_str()
                        .is_some_and(|body| body.contains("finish signing in"))
                })
                .count(),
            Channel::Email(address) => app.emails_titled(address, "Your sign-in code").len(),
        }
    }
}

async fn send_code(app: &TestApp, client: &Client, method: &str) -> Response {
    app.post(client, "/api/v1/login/send-code", json!({"method": method}))
        .await
}

async fn verify(app: &TestApp, client: &Client, method: &str, code: &str) -> Response {
    app.post(
        client,
        "/api/v1/login/verify",
        json!({"method": method, "code": code}),
    )
    .await
}

/// Signs in with a sent code, then shows the code is spent.
async fn sign_in_with(app: &TestApp, email: &str, channel: Channel) {
    let method = channel.method();
    let client = app
        .at_second_factor_with(email, json!([method, "recovery_code"]))
        .await;
    let sent = send_code(app, &client, method).await;
    let body = json_of(sent, StatusCode::ACCEPTED).await;
    assert_eq!(body["channel"], method);
    match channel {
        Channel::Sms => assert!(body["to"].as_str().unwrap().ends_with(PHONE_TAIL), "{body}"),
        Channel::Email(address) => assert_eq!(body["to"], address),
    }
    assert_eq!(channel.sent(app), 1);
    let code = channel.code(app);
    // The code is not a pass for another method.
    let other = if method == "sms" { "email" } else { "sms" };
    assert_error(
        verify(app, &client, other, &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    let verified = verify(app, &client, method, &code).await;
    assert_eq!(verified.status(), StatusCode::OK);
    assert!(session_cookie(&verified).is_some(), "the session rotates");
    assert_eq!(
        json_of(verified, StatusCode::OK).await,
        json!({"state": "authenticated", "methods": []})
    );
    assert_eq!(app.account(&client).await["email"], email);

    // Replayed in another sign-in, the code is refused.
    let again = app
        .at_second_factor_with(email, json!([method, "recovery_code"]))
        .await;
    assert_error(
        verify(app, &again, method, &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    assert_error(
        app.get(&again, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}

async fn sign_in_with_a_texted_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.phone_user("alice@example.com", PHONE).await;
    let before = app.messages_to(PHONE).len();
    assert_eq!(before, 1, "the enrollment text");
    sign_in_with(&app, "alice@example.com", Channel::Sms).await;
}

async fn sign_in_with_an_emailed_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.email_user("bob@example.com").await;
    sign_in_with(&app, "bob@example.com", Channel::Email("bob@example.com")).await;
}

/// Five wrong codes lock the second factor: even the right code then gets 429, and no new
/// code is sent until the wait is over.
async fn lockout_case(app: &TestApp, email: &str, channel: Channel) {
    let method = channel.method();
    let client = app
        .at_second_factor_with(email, json!([method, "recovery_code"]))
        .await;
    assert_eq!(
        send_code(app, &client, method).await.status(),
        StatusCode::ACCEPTED
    );
    let code = channel.code(app);
    for _ in 0..5 {
        assert_error(
            verify(app, &client, method, &wrong_code(&code)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    let locked = verify(app, &client, method, &code).await;
    assert!((1..=30).contains(&retry_after(&locked)));
    assert_error(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    // A fresh sign-in does not reset the count, and gets no new code either.
    app.clock.advance_seconds(10);
    let fresh = app
        .at_second_factor_with(email, json!([method, "recovery_code"]))
        .await;
    let refused = send_code(app, &fresh, method).await;
    assert!((1..=20).contains(&retry_after(&refused)));
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert_eq!(channel.sent(app), 1);

    // After the wait (and the resend interval), a new code signs in.
    app.clock.advance_seconds(61);
    assert_eq!(
        send_code(app, &fresh, method).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(channel.sent(app), 2);
    let code = channel.code(app);
    assert_eq!(
        verify(app, &fresh, method, &code).await.status(),
        StatusCode::OK
    );
}

async fn wrong_texted_codes_lock_the_second_factor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.phone_user("carol@example.com", PHONE).await;
    lockout_case(&app, "carol@example.com", Channel::Sms).await;
}

async fn wrong_emailed_codes_lock_the_second_factor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.email_user("dave@example.com").await;
    lockout_case(&app, "dave@example.com", Channel::Email("dave@example.com")).await;
}

async fn codes_go_only_to_enrolled_methods_and_half_signed_in_sessions(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Nobody signed in.
    assert_error(
        send_code(&app, &app.client(), "sms").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // An authenticator only: no phone, no email codes.
    let (_, secret, _) = app.enroll("erin@example.com").await;
    app.clock.advance_seconds(30);
    let client = app
        .at_second_factor_with("erin@example.com", json!(["totp", "recovery_code"]))
        .await;
    for method in ["sms", "email"] {
        assert_error(
            send_code(&app, &client, method).await,
            StatusCode::CONFLICT,
            "method_not_enrolled",
        )
        .await;
        assert_error(
            verify(&app, &client, method, "123456").await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    assert_error(
        send_code(&app, &client, "carrier_pigeon").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    // Like every write of the API, only JSON (a form could be sent cross-site).
    let form = client
        .post(app.url("/api/v1/login/send-code"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("method=sms")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        app.messages_to("erin@example.com")
            .iter()
            .all(|message| { message["subject"] != "Your sign-in code" })
    );
    let code = independent_totp(&secret, app.now());
    assert_eq!(
        verify(&app, &client, "totp", &code).await.status(),
        StatusCode::OK
    );
    // Fully signed in: the step is over.
    assert_error(
        send_code(&app, &client, "sms").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // An enrollment session has no step to send codes for.
    let enrolling = app.enrollment_session("frank@example.com").await;
    assert_error(
        send_code(&app, &enrolling, "email").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert!(app.messages_to("frank@example.com").is_empty());
}

/// Regression: a used code typed again (a double submit, a replay) is no guess at a live code,
/// so it must not count towards the lockout and lock out the owner who just signed in with it
/// (as for authenticator codes, see `totp::regressions`).
async fn replays_of_a_used_code_do_not_lock_the_owner_out(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.phone_user("grace@example.com", PHONE).await;
    let client = app
        .at_second_factor_with("grace@example.com", json!(["sms", "recovery_code"]))
        .await;
    send_code(&app, &client, "sms").await;
    let code = Channel::Sms.code(&app);
    assert_eq!(
        verify(&app, &client, "sms", &code).await.status(),
        StatusCode::OK
    );
    let again = app
        .at_second_factor_with("grace@example.com", json!(["sms", "recovery_code"]))
        .await;
    for _ in 0..8 {
        assert_error(
            verify(&app, &again, "sms", &code).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    app.clock.advance_seconds(61);
    let sent = send_code(&app, &again, "sms").await;
    assert_eq!(json_of(sent, StatusCode::ACCEPTED).await["channel"], "sms");
    let code = Channel::Sms.code(&app);
    assert_eq!(
        verify(&app, &again, "sms", &code).await.status(),
        StatusCode::OK
    );
}

async fn sixteen_concurrent_requests_with_one_code_have_one_winner(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.email_user("heidi@example.com").await;
    // A code is bound to the sign-in it was sent for, so the race is within that sign-in: 16
    // requests carrying its cookie at once.
    let client = app
        .at_second_factor_with("heidi@example.com", json!(["email", "recovery_code"]))
        .await;
    send_code(&app, &client, "email").await;
    let code = Channel::Email("heidi@example.com").code(&app);
    let requests = (0..16).map(|_| client.clone()).map(|client| {
        let url = app.url("/api/v1/login/verify");
        let body = json!({"method": "email", "code": code});
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap().status() })
    });
    let mut statuses = Vec::new();
    for request in requests.collect::<Vec<_>>() {
        statuses.push(request.await.unwrap());
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|status| **status == StatusCode::OK)
            .count(),
        1,
        "{statuses:?}"
    );
    // Each check takes an attempt against the lockout before it runs, so at most five are
    // in flight at once: the rest are told to wait (429) rather than evaluated.
    assert!(
        statuses
            .iter()
            .all(|status| matches!(status.as_u16(), 200 | 401 | 429)),
        "{statuses:?}"
    );
    // The losers were no guesses: the owner is not locked out.
    app.clock.advance_seconds(61);
    let next = app
        .at_second_factor_with("heidi@example.com", json!(["email", "recovery_code"]))
        .await;
    assert_eq!(
        send_code(&app, &next, "email").await.status(),
        StatusCode::ACCEPTED
    );
    let code = Channel::Email("heidi@example.com").code(&app);
    assert_eq!(
        verify(&app, &next, "email", &code).await.status(),
        StatusCode::OK
    );
}

/// OWASP ASVS 5.0 6.6.2: a sign-in code is bound to the sign-in it was sent for. The same
/// user's next sign-in (say, an attacker's with the stolen password, in another browser)
/// cannot use it, while the sign-in it was sent for still can.
async fn a_code_sent_for_one_sign_in_fails_in_the_next(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.phone_user("alice@example.com", PHONE).await;
    app.email_user("bob@example.com").await;
    for (email, channel) in [
        ("alice@example.com", Channel::Sms),
        ("bob@example.com", Channel::Email("bob@example.com")),
    ] {
        let method = channel.method();
        let methods = json!([method, "recovery_code"]);
        let first = app.at_second_factor_with(email, methods.clone()).await;
        let sent = send_code(&app, &first, method).await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
        let code = channel.code(&app);
        let second = app.at_second_factor_with(email, methods).await;
        assert_error(
            verify(&app, &second, method, &code).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
        let verified = verify(&app, &first, method, &code).await;
        assert_eq!(verified.status(), StatusCode::OK, "{email}");
        assert_eq!(app.account(&first).await["email"], email);
        app.clock.advance_seconds(61);
    }
}
