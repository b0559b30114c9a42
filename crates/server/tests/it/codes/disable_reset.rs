//! Turning two-factor authentication off with an emailed code, and the fallback-phone reset of
//! a lost authenticator at the `second_factor` step.

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::json;
use twofold_core::accounts::NewAccount;

use super::*;
use crate::helpers::{Backend, PASSWORD, assert_error, session_cookie, spawn_app};
use crate::on_both_backends;

const DISABLE_SUBJECT: &str = "Turn off two-factor authentication";

on_both_backends!(
    two_factor_is_turned_off_with_an_emailed_code,
    two_factor_stays_on_when_required,
    the_fallback_phone_resets_a_lost_authenticator,
    a_reset_code_lives_ten_minutes,
    wrong_reset_codes_lock_the_step,
    no_fallback_phone_no_reset,
);

async fn send_disable_code(app: &TestApp, client: &Client) -> Response {
    app.post(
        client,
        "/api/v1/account/two-factor/disable/send-code",
        json!({}),
    )
    .await
}

async fn disable(app: &TestApp, client: &Client, code: &str) -> Response {
    app.post(
        client,
        "/api/v1/account/two-factor/disable",
        json!({"code": code}),
    )
    .await
}

async fn two_factor_is_turned_off_with_an_emailed_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.signed_in("alice@example.com").await;
    // Nothing to turn off yet.
    assert_error(
        send_disable_code(&app, &client).await,
        StatusCode::CONFLICT,
        "no_second_factor",
    )
    .await;
    let (secret, _) = app.add_totp(&client).await;
    app.add_phone(&client, PHONE).await;
    assert_eq!(
        app.account(&client).await["methods"],
        json!(["totp", "sms", "recovery_code"])
    );
    // Another signed-in session of the same user.
    app.clock.advance_seconds(30);
    let other = app
        .at_second_factor_with("alice@example.com", json!(["totp", "sms", "recovery_code"]))
        .await;
    let verified = app
        .post(
            &other,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": independent_totp(&secret, app.now())}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);

    assert_eq!(
        send_disable_code(&app, &client).await.status(),
        StatusCode::ACCEPTED
    );
    let code = app.emailed_code("alice@example.com", DISABLE_SUBJECT);
    assert!(
        app.messages_to(PHONE).len() == 1,
        "the code goes by email only"
    );
    assert_error(
        disable(&app, &client, &wrong_code(&code)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    assert_eq!(app.account(&client).await["two_factor"], "enabled");
    let disabled = disable(&app, &client, &code).await;
    assert_eq!(
        json_of(disabled, StatusCode::OK).await,
        json!({"two_factor": "off"})
    );
    let account = app.account(&client).await;
    assert_eq!(account["two_factor"], "off");
    assert_eq!(account["methods"], json!([]));
    assert_eq!(account["recovery_codes_left"], 0);
    let notice = app.single_notice("alice@example.com", TWO_FACTOR_OFF);
    assert!(notice.contains("only your password"), "{notice}");
    // The other session, signed in with the old factors, is over.
    assert_error(
        app.get(&other, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // The code is spent.
    assert_error(
        disable(&app, &client, &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;

    // The password alone signs in now.
    app.post(&client, "/api/v1/logout", json!({})).await;
    let next = app.client();
    let step = json_of(
        app.login(&next, "alice@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step, json!({"state": "authenticated", "methods": []}));
    assert_eq!(app.account(&next).await["two_factor"], "off");
}

async fn two_factor_stays_on_when_required(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Required by an administrator.
    let (client, _, _) = app.enroll("bob@example.com").await;
    assert_error(
        send_disable_code(&app, &client).await,
        StatusCode::FORBIDDEN,
        "two_factor_required",
    )
    .await;
    assert_error(
        disable(&app, &client, "123456").await,
        StatusCode::FORBIDDEN,
        "two_factor_required",
    )
    .await;
    assert!(
        app.emails_titled("bob@example.com", DISABLE_SUBJECT)
            .is_empty()
    );
    assert_eq!(app.account(&client).await["two_factor"], "enabled");

    // An administrator must keep it too.
    app.service
        .create_account(
            None,
            NewAccount {
                email: "root@example.com",
                password: Some(&SecretString::from(PASSWORD.to_owned())),
                is_admin: true,
                require_2fa: false,
            },
        )
        .await
        .unwrap();
    let admin = app.client();
    let step = json_of(
        app.login(&admin, "root@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "enrollment_required");
    app.add_totp(&admin).await;
    assert_error(
        send_disable_code(&app, &admin).await,
        StatusCode::FORBIDDEN,
        "two_factor_required",
    )
    .await;
    assert_error(
        disable(&app, &admin, "123456").await,
        StatusCode::FORBIDDEN,
        "two_factor_required",
    )
    .await;
    assert!(
        app.emails_titled("root@example.com", DISABLE_SUBJECT)
            .is_empty()
    );
    assert_eq!(app.account(&admin).await["two_factor"], "enabled");

    // Required after the code was sent: the code no longer turns 2FA off.
    let client = app.signed_in("carol@example.com").await;
    app.add_totp(&client).await;
    assert_eq!(
        send_disable_code(&app, &client).await.status(),
        StatusCode::ACCEPTED
    );
    let code = app.emailed_code("carol@example.com", DISABLE_SUBJECT);
    let user = app.service.find_user("carol@example.com").await.unwrap();
    app.service
        .set_require_two_factor(None, user.id, true)
        .await
        .unwrap();
    assert_error(
        disable(&app, &client, &code).await,
        StatusCode::FORBIDDEN,
        "two_factor_required",
    )
    .await;
    assert_eq!(app.account(&client).await["two_factor"], "enabled");
    assert!(
        app.emails_titled("carol@example.com", TWO_FACTOR_OFF)
            .is_empty()
    );
}

/// A user with an authenticator and a phone, at the `second_factor` step; returns the
/// authenticator's secret, the recovery codes and a fully signed-in client.
async fn totp_and_phone_user(app: &TestApp, email: &str) -> (String, Vec<String>, Client) {
    let (client, secret, codes) = app.enroll(email).await;
    assert_eq!(app.add_phone(&client, PHONE).await, Vec::<String>::new());
    app.clock.advance_seconds(61);
    (secret, codes, client)
}

async fn send_reset_code(app: &TestApp, client: &Client) -> Response {
    app.post(client, "/api/v1/login/reset/send-code", json!({}))
        .await
}

async fn reset(app: &TestApp, client: &Client, code: &str) -> Response {
    app.post(client, "/api/v1/login/reset", json!({"code": code}))
        .await
}

async fn the_fallback_phone_resets_a_lost_authenticator(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (old_secret, old_codes, old_session) = totp_and_phone_user(&app, "dave@example.com").await;
    let client = app
        .at_second_factor_with("dave@example.com", json!(["totp", "sms", "recovery_code"]))
        .await;
    let sent = send_reset_code(&app, &client).await;
    let body = json_of(sent, StatusCode::ACCEPTED).await;
    assert_eq!(body["channel"], "sms");
    assert!(body["to"].as_str().unwrap().ends_with(PHONE_TAIL), "{body}");
    let code = app.texted_code(PHONE);
    let texts = app.messages_to(PHONE);
    assert_eq!(texts.len(), 2, "the enrollment text and the reset text");
    assert!(
        texts[1]["body"]
            .as_str()
            .unwrap()
            .contains("reset your two-factor authentication"),
        "{}",
        texts[1]
    );
    // A code for signing in is not a reset code, nor the reverse.
    assert_error(
        app.post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "sms", "code": code}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    assert_error(
        reset(&app, &client, &wrong_code(&code)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;

    let done = reset(&app, &client, &code).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(session_cookie(&done).is_some(), "the session rotates");
    assert_eq!(
        json_of(done, StatusCode::OK).await,
        json!({"state": "enrollment_required", "methods": ["totp", "sms", "email"]})
    );
    let notice = app.single_notice("dave@example.com", TWO_FACTOR_RESET);
    assert!(notice.contains("fallback phone"), "{notice}");

    // Every factor is gone: the old session is over and a new sign-in must enroll.
    assert_error(
        app.get(&old_session, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let user = app.service.find_user("dave@example.com").await.unwrap();
    let summary = app.service.account_summary(&user).await.unwrap();
    assert_eq!(
        (summary.two_factor.as_str(), summary.methods.len()),
        ("pending", 0)
    );
    let elsewhere = app.client();
    let step = json_of(
        app.login(&elsewhere, "dave@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "enrollment_required");
    // The code is spent.
    assert_error(
        reset(&app, &client, &code).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // The reset session enrolls a new authenticator without a password.
    let (new_secret, new_codes) = app.add_totp(&client).await;
    assert_ne!(new_secret, old_secret);
    assert_eq!(
        new_codes.len(),
        10,
        "a first factor again: new recovery codes"
    );
    let account = app.account(&client).await;
    assert_eq!(account["two_factor"], "enabled");
    assert_eq!(account["methods"], json!(["totp", "recovery_code"]));

    // The old authenticator and the old recovery codes no longer sign in; the new one does.
    app.clock.advance_seconds(30);
    let later = app
        .at_second_factor_with("dave@example.com", json!(["totp", "recovery_code"]))
        .await;
    for (method, code) in [
        ("totp", independent_totp(&old_secret, app.now())),
        ("recovery_code", old_codes[0].clone()),
    ] {
        assert_error(
            app.post(
                &later,
                "/api/v1/login/verify",
                json!({"method": method, "code": code}),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    let verified = app
        .post(
            &later,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": independent_totp(&new_secret, app.now())}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
}

async fn a_reset_code_lives_ten_minutes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (secret, _, _) = totp_and_phone_user(&app, "erin@example.com").await;
    let client = app
        .at_second_factor_with("erin@example.com", json!(["totp", "sms", "recovery_code"]))
        .await;
    assert_eq!(
        send_reset_code(&app, &client).await.status(),
        StatusCode::ACCEPTED
    );
    let code = app.texted_code(PHONE);
    app.clock.advance_seconds(10 * 60 + 1);
    assert_error(
        reset(&app, &client, &code).await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    // Nothing changed: the authenticator still signs in.
    let code = independent_totp(&secret, app.now());
    let verified = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": code}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    assert_eq!(
        app.account(&client).await["methods"],
        json!(["totp", "sms", "recovery_code"])
    );
    assert!(
        app.emails_titled("erin@example.com", TWO_FACTOR_RESET)
            .is_empty()
    );
}

async fn wrong_reset_codes_lock_the_step(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    totp_and_phone_user(&app, "grace@example.com").await;
    let client = app
        .at_second_factor_with("grace@example.com", json!(["totp", "sms", "recovery_code"]))
        .await;
    send_reset_code(&app, &client).await;
    let code = app.texted_code(PHONE);
    for _ in 0..5 {
        assert_error(
            reset(&app, &client, &wrong_code(&code)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_code",
        )
        .await;
    }
    let locked = reset(&app, &client, &code).await;
    assert!((1..=30).contains(&retry_after(&locked)));
    assert_error(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    let refused = send_reset_code(&app, &client).await;
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert_eq!(
        app.messages_to(PHONE).len(),
        2,
        "no new code while locked: the enrollment text and one reset text"
    );
    let user = app.service.find_user("grace@example.com").await.unwrap();
    let summary = app.service.account_summary(&user).await.unwrap();
    assert_eq!(summary.methods.len(), 3, "nothing was reset");
    assert!(
        app.emails_titled("grace@example.com", TWO_FACTOR_RESET)
            .is_empty()
    );
}

async fn no_fallback_phone_no_reset(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Without a session.
    assert_error(
        send_reset_code(&app, &app.client()).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let (signed_in, _, _) = app.enroll("frank@example.com").await;
    // A fully signed-in session is past the step.
    assert_error(
        send_reset_code(&app, &signed_in).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let client = app
        .at_second_factor_with("frank@example.com", json!(["totp", "recovery_code"]))
        .await;
    assert_error(
        send_reset_code(&app, &client).await,
        StatusCode::CONFLICT,
        "method_not_enrolled",
    )
    .await;
    assert_error(
        reset(&app, &client, "123456").await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    let user = app.service.find_user("frank@example.com").await.unwrap();
    let summary = app.service.account_summary(&user).await.unwrap();
    assert_eq!(summary.methods.len(), 2, "totp and recovery codes");
}
