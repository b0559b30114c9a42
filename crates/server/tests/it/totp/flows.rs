//! The authenticator-app flows: enrollment, sign-in, one-time codes, change, recovery codes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::helpers::{Backend, PASSWORD, assert_error, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    forced_enrollment_then_login_with_a_fresh_code,
    a_code_is_accepted_once,
    sixteen_concurrent_requests_with_one_code_have_one_winner,
    old_codes_and_wrong_codes_are_refused,
    changing_the_authenticator_kills_the_old_secret,
    recovery_codes_work_once_and_regeneration_kills_the_old_set,
    repeated_wrong_codes_lock_the_second_factor_for_a_while,
    reset_removes_every_factor,
);

async fn forced_enrollment_then_login_with_a_fresh_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), true)
        .await;
    let client = app.client();
    app.login(&client, "alice@example.com", PASSWORD).await;
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    let enrollment: Value = app
        .post(&client, "/api/v1/account/totp", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = enrollment["secret"].as_str().unwrap();
    let uri = enrollment["otpauth_uri"].as_str().unwrap();
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/Twofold%20Test:alice%40example.com?secret={secret}&issuer=Twofold%20Test&algorithm=SHA1&digits=6&period=30"
        )
    );
    assert_eq!(decode_base32(secret).len(), 20, "160-bit secret");
    assert_eq!(
        decode_qr(enrollment["qr_svg"].as_str().unwrap()),
        uri,
        "the QR code carries the exact URI"
    );

    let before = app
        .post(
            &client,
            "/api/v1/account/totp/confirm",
            json!({"code": independent_totp(secret, app.now())}),
        )
        .await;
    assert_eq!(before.status(), StatusCode::OK);
    assert!(session_cookie(&before).is_some(), "the session rotates");
    let body: Value = before.json().await.unwrap();
    let codes = body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|code| code.as_str().unwrap().len() == 19));

    let account: Value = app
        .get(&client, "/api/v1/account")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(account["two_factor"], "enabled");
    assert_eq!(account["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(account["recovery_codes_left"], 10);

    // Sign out, and in again with the next code.
    app.post(&client, "/api/v1/logout", json!({})).await;
    app.clock.advance_seconds(30);
    let client = app.client();
    let step: Value = app
        .login(&client, "alice@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        step,
        json!({"state": "second_factor", "methods": ["totp", "recovery_code"]})
    );
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // A password-only session cannot enroll a new factor (Keycloak CVE-2023-3597).
    assert_error(
        app.post(&client, "/api/v1/account/totp", json!({})).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let verified = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": independent_totp(secret, app.now())}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    let body: Value = verified.json().await.unwrap();
    assert_eq!(body["state"], "authenticated");
    assert_eq!(
        app.get(&client, "/api/v1/account").await.status(),
        StatusCode::OK
    );
}

async fn a_code_is_accepted_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, secret, _) = app.enroll("bob@example.com").await;
    // The enrollment code's step is consumed: the same code cannot sign in.
    let client = app.at_second_factor("bob@example.com").await;
    let code = independent_totp(&secret, app.now());
    let replay = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": code}),
        )
        .await;
    assert_error(replay, StatusCode::UNAUTHORIZED, "invalid_code").await;
    app.clock.advance_seconds(30);
    let code = independent_totp(&secret, app.now());
    let first = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": code}),
        )
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let again = app.at_second_factor("bob@example.com").await;
    let second = app
        .post(
            &again,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": code}),
        )
        .await;
    assert_error(second, StatusCode::UNAUTHORIZED, "invalid_code").await;
}

async fn sixteen_concurrent_requests_with_one_code_have_one_winner(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, secret, _) = app.enroll("carol@example.com").await;
    app.clock.advance_seconds(30);
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(app.at_second_factor("carol@example.com").await);
    }
    let code = independent_totp(&secret, app.now());
    let requests = clients.into_iter().map(|client| {
        let url = app.url("/api/v1/login/verify");
        let body = json!({"method": "totp", "code": code});
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
    assert!(
        statuses
            .iter()
            .all(|status| matches!(status.as_u16(), 200 | 401 | 429)),
        "{statuses:?}"
    );
}

async fn old_codes_and_wrong_codes_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, secret, _) = app.enroll("dave@example.com").await;
    app.clock.advance_seconds(90);
    let client = app.at_second_factor("dave@example.com").await;
    let two_steps_old = independent_totp(&secret, app.now() - 60);
    let refused = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": two_steps_old}),
        )
        .await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_code").await;
    for wrong in ["000000", "12345", "1234567", "abcdef", ""] {
        let refused = app
            .post(
                &client,
                "/api/v1/login/verify",
                json!({"method": "totp", "code": wrong}),
            )
            .await;
        assert!(matches!(refused.status().as_u16(), 401 | 429), "{wrong}");
    }
    let unknown_method = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "carrier_pigeon", "code": "1"}),
        )
        .await;
    assert_error(
        unknown_method,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
}

async fn changing_the_authenticator_kills_the_old_secret(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (client, old_secret, _) = app.enroll("erin@example.com").await;
    // Replacing needs the password.
    assert_error(
        app.post(&client, "/api/v1/account/totp", json!({})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let wrong = app
        .post(
            &client,
            "/api/v1/account/totp",
            json!({"password": "not the password at all"}),
        )
        .await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let started: Value = app
        .post(
            &client,
            "/api/v1/account/totp",
            json!({"password": PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap();
    let new_secret = started["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);

    // Until the new one is confirmed, the old one still signs in.
    app.clock.advance_seconds(30);
    let other = app.at_second_factor("erin@example.com").await;
    let old_code = independent_totp(&old_secret, app.now());
    assert_eq!(
        app.post(
            &other,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": old_code})
        )
        .await
        .status(),
        StatusCode::OK
    );

    app.clock.advance_seconds(30);
    let confirmed = app
        .post(
            &client,
            "/api/v1/account/totp/confirm",
            json!({"code": independent_totp(&new_secret, app.now())}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let body: Value = confirmed.json().await.unwrap();
    assert_eq!(
        body["recovery_codes"],
        json!([]),
        "not the first factor: no new codes"
    );

    app.clock.advance_seconds(30);
    let after = app.at_second_factor("erin@example.com").await;
    let old_code = independent_totp(&old_secret, app.now());
    assert_error(
        app.post(
            &after,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": old_code}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_code",
    )
    .await;
    let new_code = independent_totp(&new_secret, app.now());
    assert_eq!(
        app.post(
            &after,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": new_code})
        )
        .await
        .status(),
        StatusCode::OK
    );
}

async fn recovery_codes_work_once_and_regeneration_kills_the_old_set(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (client, _, codes) = app.enroll("frank@example.com").await;
    let first = app.at_second_factor("frank@example.com").await;
    // Typed loosely: upper case, spaces instead of dashes.
    let typed = codes[0].to_uppercase().replace('-', " ");
    assert_eq!(
        app.post(
            &first,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": typed})
        )
        .await
        .status(),
        StatusCode::OK
    );
    let account: Value = app
        .get(&first, "/api/v1/account")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(account["recovery_codes_left"], 9);
    let second = app.at_second_factor("frank@example.com").await;
    let reused = app
        .post(
            &second,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": codes[0]}),
        )
        .await;
    assert_error(reused, StatusCode::UNAUTHORIZED, "invalid_code").await;

    let wrong = app
        .post(
            &client,
            "/api/v1/account/recovery-codes",
            json!({"password": "not the password at all"}),
        )
        .await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let fresh: Value = app
        .post(
            &client,
            "/api/v1/account/recovery-codes",
            json!({"password": PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap();
    let fresh: Vec<&str> = fresh["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    assert_eq!(fresh.len(), 10);
    let old = app
        .post(
            &second,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": codes[1]}),
        )
        .await;
    assert_error(old, StatusCode::UNAUTHORIZED, "invalid_code").await;
    assert_eq!(
        app.post(
            &second,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": fresh[0]})
        )
        .await
        .status(),
        StatusCode::OK
    );
}

async fn repeated_wrong_codes_lock_the_second_factor_for_a_while(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, secret, _) = app.enroll("grace@example.com").await;
    app.clock.advance_seconds(30);
    let client = app.at_second_factor("grace@example.com").await;
    for _ in 0..5 {
        let wrong = app
            .post(
                &client,
                "/api/v1/login/verify",
                json!({"method": "totp", "code": "000000"}),
            )
            .await;
        assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_code").await;
    }
    // The owner is told once: someone who knows the password is guessing (ASVS 6.3.4).
    let told: Vec<_> = app
        .messages_to("grace@example.com")
        .into_iter()
        .filter(|mail| mail["subject"] == "Failed attempts to sign in to your account")
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0]["body"]
            .as_str()
            .unwrap()
            .contains("wrong second-step code 5 times"),
        "{told:?}"
    );
    // Locked: even the right code gets 429, and a new login does not reset the count.
    let fresh = app.at_second_factor("grace@example.com").await;
    let right = independent_totp(&secret, app.now());
    let locked = app
        .post(
            &fresh,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": right}),
        )
        .await;
    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_error(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    app.clock.advance_seconds(31);
    let fresh = app.at_second_factor("grace@example.com").await;
    let right = independent_totp(&secret, app.now());
    assert_eq!(
        app.post(
            &fresh,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": right})
        )
        .await
        .status(),
        StatusCode::OK
    );
}

async fn reset_removes_every_factor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (client, _, _) = app.enroll("heidi@example.com").await;
    let user = app.service.find_user("heidi@example.com").await.unwrap();
    app.service.reset_two_factor(None, user.id).await.unwrap();
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let step: Value = app
        .login(&app.client(), "heidi@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(step["state"], "enrollment_required");
    let summary = app.service.account_summary(&user).await.unwrap();
    assert_eq!(
        (
            summary.two_factor.as_str(),
            summary.methods.len(),
            summary.recovery_codes_left
        ),
        ("pending", 0, 0)
    );
}
