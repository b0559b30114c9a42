//! `POST /api/v1/account/password` and `/account/password`.

use reqwest::StatusCode;
use serde_json::json;

use super::{NEW_PASSWORD, csrf_of, submit_form};
use crate::codes::json_of;
use crate::helpers::{Backend, PASSWORD, assert_error, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_password_change_ends_other_sessions_and_rotates_this_one,
    a_wrong_current_password_or_a_weak_new_one_changes_nothing,
    only_one_of_concurrent_password_changes_wins,
);

async fn a_password_change_ends_other_sessions_and_rotates_this_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let (client, old_cookie) = app.signed_in_client("alice@example.com").await;
    let (other, _) = app.signed_in_client("alice@example.com").await;
    let (third, _) = app.signed_in_client("alice@example.com").await;

    let response = app
        .post(
            &client,
            "/api/v1/account/password",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    let new_cookie = session_cookie(&response).expect("a new session cookie");
    assert_ne!(new_cookie, old_cookie);
    assert_eq!(
        json_of(response, StatusCode::OK).await,
        json!({"sessions_ended": 2})
    );

    // This session goes on under the new cookie; the old cookie and the other sessions are dead.
    json_of(app.get(&client, "/api/v1/account").await, StatusCode::OK).await;
    for dead in [&other, &third] {
        assert_error(
            app.get(dead, "/api/v1/account").await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
    }
    assert_error(
        app.get_with_cookie(&old_cookie, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // The old password no longer signs in; the new one does.
    assert_error(
        app.login(&app.client(), "alice@example.com", PASSWORD)
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let step = json_of(
        app.login(&app.client(), "alice@example.com", NEW_PASSWORD)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "authenticated");

    // Recorded, and told to the owner.
    let events = app.activity_of(&client).await;
    let changed = events
        .iter()
        .find(|event| event["kind"] == "password_changed")
        .expect("a password_changed entry");
    assert_eq!(changed["detail"]["sessions_ended"], 2, "{changed}");
    let mail = app.messages_to("alice@example.com");
    let notice = mail.last().expect("a notice");
    assert_eq!(notice["subject"], "Your password was changed");
    assert!(!notice["body"].as_str().unwrap().contains(NEW_PASSWORD));
}

async fn a_wrong_current_password_or_a_weak_new_one_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let (client, _) = app.signed_in_client("bob@example.com").await;
    let (other, _) = app.signed_in_client("bob@example.com").await;
    let change =
        |current: &str, new: &str| json!({"current_password": current, "new_password": new});

    assert_error(
        app.post(
            &client,
            "/api/v1/account/password",
            change("not my password at all", NEW_PASSWORD),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let weak = assert_error(
        app.post(
            &client,
            "/api/v1/account/password",
            change(PASSWORD, "short"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "weak_password",
    )
    .await;
    assert!(
        weak["message"].as_str().unwrap().contains("8 characters"),
        "{weak}"
    );
    let same = assert_error(
        app.post(
            &client,
            "/api/v1/account/password",
            change(PASSWORD, PASSWORD),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "weak_password",
    )
    .await;
    assert!(
        same["message"].as_str().unwrap().contains("current"),
        "{same}"
    );
    assert_error(
        app.post(
            &client,
            "/api/v1/account/password",
            json!({"new_password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    // Without a session.
    assert_error(
        app.post(
            &app.client(),
            "/api/v1/account/password",
            change(PASSWORD, NEW_PASSWORD),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // Nothing changed: both sessions live, the password is the old one.
    json_of(app.get(&client, "/api/v1/account").await, StatusCode::OK).await;
    json_of(app.get(&other, "/api/v1/account").await, StatusCode::OK).await;
    json_of(
        app.login(&app.client(), "bob@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

async fn only_one_of_concurrent_password_changes_wins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("erin@example.com", Some(PASSWORD), false)
        .await;
    let (client, _) = app.signed_in_client("erin@example.com").await;
    let attempts: Vec<_> = (0..4)
        .map(|index| {
            let (client, url) = (client.clone(), app.url("/api/v1/account/password"));
            tokio::spawn(async move {
                let new_password = format!("a long enough passphrase {index}");
                let response = client
                    .post(url)
                    .json(&json!({"current_password": PASSWORD, "new_password": new_password}))
                    .send()
                    .await
                    .unwrap();
                (response.status(), new_password)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for attempt in attempts {
        let (status, new_password) = attempt.await.unwrap();
        match status {
            StatusCode::OK => winners.push(new_password),
            // The password (or the session) changed under it; or the burst was throttled or shed.
            StatusCode::UNAUTHORIZED
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one change may win");
    json_of(
        app.login(&app.client(), "erin@example.com", &winners[0])
            .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_only_session_cannot_change_the_password() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    // Required to enroll: the session stops at `enrollment_required`.
    app.create_user("carol@example.com", Some(PASSWORD), true)
        .await;
    let client = app.client();
    let step = json_of(
        app.login(&client, "carol@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "enrollment_required");
    assert_error(
        app.post(
            &client,
            "/api/v1/account/password",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_page_changes_the_password_with_its_csrf_token_only() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.create_user("dave@example.com", Some(PASSWORD), false)
        .await;
    let (client, old_cookie) = app.signed_in_client("dave@example.com").await;
    let (other, _) = app.signed_in_client("dave@example.com").await;

    let account = app.get(&client, "/account").await.text().await.unwrap();
    assert!(account.contains("href=\"/account/password\""), "{account}");
    let form = app.get(&client, "/account/password").await;
    assert_eq!(form.status(), StatusCode::OK);
    let csrf = csrf_of(&form.text().await.unwrap());

    // No token, or a wrong one: refused, and nothing changes.
    let forged = submit_form(
        &app,
        &client,
        "/account/password",
        &password_fields("", PASSWORD, NEW_PASSWORD, NEW_PASSWORD)[1..],
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let forged = submit_form(
        &app,
        &client,
        "/account/password",
        &password_fields(&"A".repeat(43), PASSWORD, NEW_PASSWORD, NEW_PASSWORD),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    json_of(app.get(&other, "/api/v1/account").await, StatusCode::OK).await;

    let mismatch = password_fields(&csrf, PASSWORD, NEW_PASSWORD, "something else again");
    let page = submit_form(&app, &client, "/account/password", &mismatch).await;
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.text().await.unwrap().contains("not the same"));
    let wrong = password_fields(&csrf, "not my password at all", NEW_PASSWORD, NEW_PASSWORD);
    let page = submit_form(&app, &client, "/account/password", &wrong).await;
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    let weak = password_fields(&csrf, PASSWORD, "password", "password");
    let page = submit_form(&app, &client, "/account/password", &weak).await;
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let right = password_fields(&csrf, PASSWORD, NEW_PASSWORD, NEW_PASSWORD);
    let done = submit_form(&app, &client, "/account/password", &right).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/account?done=password");
    assert_ne!(session_cookie(&done).unwrap(), old_cookie);
    let account = app.get(&client, "/account?done=password").await;
    assert_eq!(account.status(), StatusCode::OK);
    assert!(
        account
            .text()
            .await
            .unwrap()
            .contains("Your password is changed")
    );
    assert_error(
        app.get(&other, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    json_of(
        app.login(&app.client(), "dave@example.com", NEW_PASSWORD)
            .await,
        StatusCode::OK,
    )
    .await;
}

fn password_fields<'a>(
    csrf: &'a str,
    current: &'a str,
    new: &'a str,
    confirm: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("csrf", csrf),
        ("current_password", current),
        ("new_password", new),
        ("confirm_password", confirm),
    ]
}
