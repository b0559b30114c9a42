//! The login state machine through the JSON API.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, PASSWORD, assert_error, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    right_password_authenticates_and_the_account_answers,
    wrong_password_and_unknown_email_get_the_same_401,
    temporary_password_must_be_changed_first,
    required_two_factor_leads_to_enrollment_only,
    logout_ends_the_session,
    a_new_login_ends_the_session_the_client_held,
    email_is_case_insensitive,
);

async fn right_password_authenticates_and_the_account_answers(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();

    let response = app.login(&client, "alice@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"state": "authenticated", "methods": []}));

    let account = app.get(&client, "/api/v1/account").await;
    assert_eq!(account.status(), StatusCode::OK);
    let account: Value = account.json().await.unwrap();
    assert_eq!(
        account,
        json!({"email": "alice@example.com", "email_verified": false, "two_factor": "off", "methods": [], "recovery_codes_left": 0})
    );
}

async fn wrong_password_and_unknown_email_get_the_same_401(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();

    let wrong_password = app
        .login(
            &client,
            "alice@example.com",
            "correct horse battery stapler",
        )
        .await;
    let wrong_headers = wrong_password.headers().clone();
    let wrong = assert_error(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let unknown_email = app.login(&client, "nobody@example.com", PASSWORD).await;
    let unknown = assert_error(
        unknown_email,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let malformed_email = app.login(&client, "not an address", PASSWORD).await;
    let malformed = assert_error(
        malformed_email,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
    assert!(
        wrong_headers.get("set-cookie").is_none(),
        "a failed login starts no session"
    );
    assert_eq!(
        app.get(&client, "/api/v1/account").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn temporary_password_must_be_changed_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let temporary = app
        .create_user("bob@example.com", None, false)
        .await
        .unwrap();
    assert!(temporary.len() >= 12 && !temporary.contains(' '));

    // A second session of the same user, which the password change must end.
    let other = app.client();
    let other_login: Value = app
        .login(&other, "bob@example.com", &temporary)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other_login["state"], "password_change_required");

    let client = app.client();
    let response = app.login(&client, "bob@example.com", &temporary).await;
    let before = session_cookie(&response).unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"state": "password_change_required", "methods": []})
    );
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    for (weak, reason) in [
        ("short", "at least 8"),
        ("password1", "too common"),
        ("bob@example.com", "email"),
    ] {
        let refused = app
            .post(
                &client,
                "/api/v1/login/password",
                json!({"new_password": weak}),
            )
            .await;
        let body = assert_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
        assert!(body["message"].as_str().unwrap().contains(reason), "{body}");
    }
    let same = app
        .post(
            &client,
            "/api/v1/login/password",
            json!({"new_password": temporary}),
        )
        .await;
    assert_error(same, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;

    let changed = app
        .post(
            &client,
            "/api/v1/login/password",
            json!({"new_password": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let after = session_cookie(&changed).unwrap();
    assert_ne!(before, after, "the session id rotates with the state");
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["state"], "authenticated");
    assert_eq!(
        app.get(&client, "/api/v1/account").await.status(),
        StatusCode::OK
    );

    // The other session ended with the password change; the temporary password is dead.
    let ended = app
        .post(
            &other,
            "/api/v1/login/password",
            json!({"new_password": "another fine passphrase"}),
        )
        .await;
    assert_error(ended, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let old = app
        .login(&app.client(), "bob@example.com", &temporary)
        .await;
    assert_error(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let new = app.login(&app.client(), "bob@example.com", PASSWORD).await;
    assert_eq!(new.status(), StatusCode::OK);
}

async fn required_two_factor_leads_to_enrollment_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("carol@example.com", Some(PASSWORD), true)
        .await;
    let client = app.client();
    let body: Value = app
        .login(&client, "carol@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"state": "enrollment_required", "methods": ["totp", "sms", "email"]})
    );
    // An enrollment session is not a signed-in session.
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let change = app
        .post(
            &client,
            "/api/v1/login/password",
            json!({"new_password": "another fine passphrase"}),
        )
        .await;
    assert_error(change, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

async fn a_new_login_ends_the_session_the_client_held(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("dave@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    let first = session_cookie(&app.login(&client, "dave@example.com", PASSWORD).await).unwrap();
    let second = session_cookie(&app.login(&client, "dave@example.com", PASSWORD).await).unwrap();
    assert_ne!(first, second);
    let replay = reqwest::Client::new()
        .get(app.url("/api/v1/account"))
        .header("cookie", format!("twofold_session={first}"))
        .send()
        .await
        .unwrap();
    assert_error(replay, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_eq!(
        app.get(&client, "/api/v1/account").await.status(),
        StatusCode::OK
    );
}

async fn logout_ends_the_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("dave@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    let login = app.login(&client, "dave@example.com", PASSWORD).await;
    let token = session_cookie(&login).unwrap();
    let logout = app.post(&client, "/api/v1/logout", json!({})).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // Replaying the old cookie by hand must not work either: the session is gone server-side.
    let replay = reqwest::Client::new()
        .get(app.url("/api/v1/account"))
        .header("cookie", format!("twofold_session={token}"))
        .send()
        .await
        .unwrap();
    assert_error(replay, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    // Logging out without a session is fine.
    assert_eq!(
        app.post(&app.client(), "/api/v1/logout", json!({}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

async fn email_is_case_insensitive(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("Erin@Example.com", Some(PASSWORD), false)
        .await;
    let response = app
        .login(&app.client(), "  ERIN@example.COM ", PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let duplicate = app
        .service
        .create_account(
            None,
            twofold_core::accounts::NewAccount {
                email: "erin@example.com",
                password: None,
                is_admin: false,
                require_2fa: false,
            },
        )
        .await;
    assert!(matches!(
        duplicate,
        Err(twofold_core::accounts::AccountError::EmailTaken)
    ));
}
