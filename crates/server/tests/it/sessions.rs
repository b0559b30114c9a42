//! Session lifetime: timeouts, rotation races, cookie attributes, password rehash.

use reqwest::StatusCode;
use serde_json::{Value, json};
use twofold_core::hasher::Argon2Settings;

use crate::helpers::{
    Backend, Options, PASSWORD, assert_error, session_cookie, spawn_app, spawn_app_with, start_on,
};
use crate::on_both_backends;

on_both_backends!(
    idle_sessions_end_after_thirty_minutes,
    sessions_end_after_twelve_hours_however_active,
    unfinished_logins_end_after_fifteen_minutes,
    only_one_of_sixteen_concurrent_password_changes_wins,
    weaker_hashes_are_upgraded_at_login,
);

async fn idle_sessions_end_after_thirty_minutes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    app.login(&client, "alice@example.com", PASSWORD).await;
    app.clock.advance_seconds(29 * 60);
    assert_eq!(
        app.get(&client, "/api/v1/account").await.status(),
        StatusCode::OK,
        "activity renews the idle timer"
    );
    app.clock.advance_seconds(29 * 60);
    assert_eq!(
        app.get(&client, "/api/v1/account").await.status(),
        StatusCode::OK
    );
    app.clock.advance_seconds(30 * 60 + 1);
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}

async fn sessions_end_after_twelve_hours_however_active(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    app.login(&client, "alice@example.com", PASSWORD).await;
    // 11 h 40 min of activity every 20 minutes: never idle, still inside the absolute limit.
    for _ in 0..35 {
        app.clock.advance_seconds(20 * 60);
        assert_eq!(
            app.get(&client, "/api/v1/account").await.status(),
            StatusCode::OK
        );
    }
    app.clock.advance_seconds(20 * 60 + 1);
    assert_error(
        app.get(&client, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let stored = app.service.stores().sessions.delete_expired_sessions(
        app.service.clock().now() - time::Duration::minutes(30),
        app.service.clock().now() - time::Duration::hours(12),
    );
    assert_eq!(
        stored.await.unwrap(),
        0,
        "the expired session was already deleted when it was presented"
    );
}

async fn unfinished_logins_end_after_fifteen_minutes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let temporary = app
        .create_user("bob@example.com", None, false)
        .await
        .unwrap();
    let client = app.client();
    app.login(&client, "bob@example.com", &temporary).await;
    app.clock.advance_seconds(15 * 60 + 1);
    let late = app
        .post(
            &client,
            "/api/v1/login/password",
            json!({"new_password": PASSWORD}),
        )
        .await;
    assert_error(late, StatusCode::UNAUTHORIZED, "unauthenticated").await;
}

async fn only_one_of_sixteen_concurrent_password_changes_wins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let temporary = app
        .create_user("race@example.com", None, false)
        .await
        .unwrap();
    let login = app
        .login(&app.client(), "race@example.com", &temporary)
        .await;
    let token = session_cookie(&login).unwrap();
    let attempts: Vec<_> = (0..16)
        .map(|index| {
            let url = app.url("/api/v1/login/password");
            let cookie = format!("twofold_session={token}");
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .header("cookie", cookie)
                    .json(&json!({"new_password": format!("a long enough passphrase {index}")}))
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        let response = attempt.await.unwrap();
        match response.status() {
            StatusCode::OK => winners.push(session_cookie(&response).unwrap()),
            StatusCode::UNAUTHORIZED => {}
            // Overload shedding is a legitimate answer to a burst; it must not be a win.
            StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one request may rotate the session"
    );
    let account = reqwest::Client::new()
        .get(app.url("/api/v1/account"))
        .header("cookie", format!("twofold_session={}", winners[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), StatusCode::OK);
    // The password that stuck is the winner's alone: exactly one of the sixteen signs in
    // (waiting out the password lockout that the fifteen wrong ones start).
    let mut accepted = 0;
    for index in 0..16 {
        let password = format!("a long enough passphrase {index}");
        let status = loop {
            let response = app
                .login(&app.client(), "race@example.com", &password)
                .await;
            if response.status() != StatusCode::TOO_MANY_REQUESTS {
                break response.status();
            }
            let wait = response.headers()["retry-after"].to_str().unwrap();
            app.clock.advance_seconds(wait.parse().unwrap());
        };
        if status == StatusCode::OK {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
}

async fn weaker_hashes_are_upgraded_at_login(backend: Backend) {
    let weak = Argon2Settings {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };
    let Some(old) = spawn_app_with(
        backend,
        Options {
            argon2: weak,
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    old.create_user("frank@example.com", Some(PASSWORD), false)
        .await;
    let email = twofold_core::email::Email::parse("frank@example.com").unwrap();
    let before = old
        .service
        .stores()
        .users
        .user_by_email(&email)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(before.contains("m=19456,t=2,p=1"));

    // The same database under a server configured with more iterations.
    let stronger = Argon2Settings {
        iterations: 3,
        ..weak
    };
    let new = start_on(
        old.database,
        Options {
            argon2: stronger,
            ..Options::default()
        },
    )
    .await;
    let body: Value = new
        .login(&new.client(), "frank@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["state"], "authenticated");
    let after = new
        .service
        .stores()
        .users
        .user_by_email(&email)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(after.contains("m=19456,t=3,p=1"), "{after}");
    assert_eq!(
        new.login(&new.client(), "frank@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}
