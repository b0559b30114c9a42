//! A challenge is bound to its user: what one user's authenticator, phone or mailbox receives
//! (a sign-in code, a recovery code, a reset code, a pending enrollment's code, an address
//! verification code) does nothing in another user's login or session.

use reqwest::{Client, StatusCode};
use serde_json::json;

use super::{totp_now, totp_user, verify};
use crate::codes::{OTHER_PHONE, PHONE, json_of};
use crate::helpers::{Backend, TestApp, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    one_users_second_step_codes_fail_in_another_users_login,
    one_users_pending_enrollment_cannot_be_confirmed_from_another_session,
);

/// Expects `invalid_code`, unless the two users' codes happen to be equal (one in a million).
async fn refused(app: &TestApp, client: &Client, method: &str, theirs: &str, mine: &str) {
    if theirs != mine {
        assert_error(
            verify(app, client, method, theirs).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
}

/// A user with an authenticator and `phone` (the fallback phone); the clock moves on past the
/// resend interval.
async fn totp_and_phone_user(app: &TestApp, email: &str, phone: &str) {
    let (client, _, _) = app.enroll(email).await;
    app.add_phone(&client, phone).await;
    app.clock.advance_seconds(61);
}

async fn one_users_second_step_codes_fail_in_another_users_login(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Authenticator codes and recovery codes.
    let (alice_secret, alice_codes) = totp_user(&app, "alice@example.com").await;
    let (bob_secret, _) = totp_user(&app, "bob@example.com").await;
    let bob = app.at_second_factor("bob@example.com").await;
    let (theirs, mine) = (totp_now(&app, &alice_secret), totp_now(&app, &bob_secret));
    refused(&app, &bob, "totp", &theirs, &mine).await;
    refused(&app, &bob, "recovery_code", &alice_codes[0], "").await;
    assert_eq!(
        verify(&app, &bob, "totp", &mine).await.status(),
        StatusCode::OK
    );
    // Alice's recovery code was not spent by the attempt.
    let alice = app.at_second_factor("alice@example.com").await;
    let used = verify(&app, &alice, "recovery_code", &alice_codes[0]).await;
    assert_eq!(used.status(), StatusCode::OK);

    // Texted codes: both asked for one, Bob types Alice's.
    app.phone_user("carol@example.com", PHONE).await;
    app.phone_user("dave@example.com", OTHER_PHONE).await;
    let methods = json!(["sms", "recovery_code"]);
    let carol = app
        .at_second_factor_with("carol@example.com", methods.clone())
        .await;
    let dave = app.at_second_factor_with("dave@example.com", methods).await;
    for client in [&carol, &dave] {
        let sent = app
            .post(client, "/api/v1/login/send-code", json!({"method": "sms"}))
            .await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
    }
    let (theirs, mine) = (app.texted_code(PHONE), app.texted_code(OTHER_PHONE));
    refused(&app, &dave, "sms", &theirs, &mine).await;
    assert_eq!(
        verify(&app, &dave, "sms", &mine).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        verify(&app, &carol, "sms", &theirs).await.status(),
        StatusCode::OK
    );

    // Emailed codes.
    app.email_user("erin@example.com").await;
    app.email_user("frank@example.com").await;
    let methods = json!(["email", "recovery_code"]);
    let erin = app
        .at_second_factor_with("erin@example.com", methods.clone())
        .await;
    let frank = app
        .at_second_factor_with("frank@example.com", methods)
        .await;
    for client in [&erin, &frank] {
        let sent = app
            .post(
                client,
                "/api/v1/login/send-code",
                json!({"method": "email"}),
            )
            .await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
    }
    let (theirs, mine) = (
        app.latest_code("erin@example.com"),
        app.latest_code("frank@example.com"),
    );
    refused(&app, &frank, "email", &theirs, &mine).await;
    assert_eq!(
        verify(&app, &frank, "email", &mine).await.status(),
        StatusCode::OK
    );

    // Reset codes sent to the fallback phone.
    app.clock.advance_seconds(61);
    totp_and_phone_user(&app, "grace@example.com", "+447400123458").await;
    totp_and_phone_user(&app, "heidi@example.com", "+447400123459").await;
    let methods = json!(["totp", "sms", "recovery_code"]);
    let grace = app
        .at_second_factor_with("grace@example.com", methods.clone())
        .await;
    let heidi = app
        .at_second_factor_with("heidi@example.com", methods)
        .await;
    for client in [&grace, &heidi] {
        let sent = app
            .post(client, "/api/v1/login/reset/send-code", json!({}))
            .await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
    }
    let theirs = app.texted_code("+447400123458");
    let mine = app.texted_code("+447400123459");
    if theirs != mine {
        assert_error(
            app.post(&heidi, "/api/v1/login/reset", json!({"code": theirs}))
                .await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    let user = app.service.find_user("heidi@example.com").await.unwrap();
    let summary = app.service.account_summary(&user).await.unwrap();
    assert_eq!(summary.methods.len(), 3, "Heidi's factors are all there");
    let done = app
        .post(&grace, "/api/v1/login/reset", json!({"code": theirs}))
        .await;
    assert_eq!(
        json_of(done, StatusCode::OK).await["state"],
        "enrollment_required"
    );
}

async fn one_users_pending_enrollment_cannot_be_confirmed_from_another_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let alice = app.enrollment_session("alice@example.com").await;
    let bob = app.enrollment_session("bob@example.com").await;

    // Authenticators: each started one; Bob confirms with a code of Alice's key.
    let mut secrets = Vec::new();
    for client in [&alice, &bob] {
        let started = app.post(client, "/api/v1/account/totp", json!({})).await;
        let body = json_of(started, StatusCode::OK).await;
        secrets.push(body["secret"].as_str().unwrap().to_owned());
    }
    let (theirs, mine) = (totp_now(&app, &secrets[0]), totp_now(&app, &secrets[1]));
    if theirs != mine {
        let confirm = app
            .post(
                &bob,
                "/api/v1/account/totp/confirm",
                json!({"code": theirs}),
            )
            .await;
        assert_error(confirm, StatusCode::UNAUTHORIZED, "invalid_code").await;
    }
    // Address verification: each asked for a code; Bob types Alice's.
    for client in [&alice, &bob] {
        let sent = app
            .post(client, "/api/v1/account/email/send-code", json!({}))
            .await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
    }
    let (theirs, mine) = (
        app.latest_code("alice@example.com"),
        app.latest_code("bob@example.com"),
    );
    if theirs != mine {
        let verified = app
            .post(
                &bob,
                "/api/v1/account/email/verify",
                json!({"code": theirs}),
            )
            .await;
        assert_eq!(verified.status(), StatusCode::UNAUTHORIZED);
        let (bob_user, _) = (app.service.find_user("bob@example.com").await.unwrap(), ());
        assert!(
            !bob_user.email_verified,
            "Bob's address is verified by Alice's code"
        );
    }
    // Phones: each asked for a code to their own phone; Bob types the code sent to Alice's.
    app.clock.advance_seconds(61);
    for (client, phone) in [(&alice, PHONE), (&bob, OTHER_PHONE)] {
        let sent = app
            .post(client, "/api/v1/account/phone", json!({"phone": phone}))
            .await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED);
    }
    let (theirs, mine) = (app.texted_code(PHONE), app.texted_code(OTHER_PHONE));
    if theirs != mine {
        let confirm = app
            .post(
                &bob,
                "/api/v1/account/phone/confirm",
                json!({"code": theirs}),
            )
            .await;
        assert_error(confirm, StatusCode::UNAUTHORIZED, "invalid_code").await;
    }
    // Bob is still enrolling; Alice's pending authenticator is intact and is hers to confirm.
    assert_error(
        app.get(&bob, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let confirm = app
        .post(
            &alice,
            "/api/v1/account/totp/confirm",
            json!({"code": totp_now(&app, &secrets[0])}),
        )
        .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    assert_eq!(
        app.account(&alice).await["methods"],
        json!(["totp", "recovery_code"])
    );
}
