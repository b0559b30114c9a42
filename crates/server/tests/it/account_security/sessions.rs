//! `/api/v1/account/sessions…` and the account page's "Where you are signed in".

use reqwest::StatusCode;
use serde_json::json;

use super::{csrf_of, submit_form};
use crate::codes::json_of;
use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    the_list_shows_the_current_session_once_and_one_can_be_ended,
    another_users_session_id_is_not_found,
    ending_the_other_sessions_keeps_this_one,
);

async fn the_list_shows_the_current_session_once_and_one_can_be_ended(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let (client, cookie) = app.signed_in_client("alice@example.com").await;
    let (other, other_cookie) = app.signed_in_client("alice@example.com").await;
    app.clock.advance_seconds(90);

    let sessions = app.sessions_of(&client).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(
        sessions.iter().filter(|s| s["current"] == true).count(),
        1,
        "{sessions:?}"
    );
    for session in &sessions {
        let id = session["id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert!(!cookie.contains(id) && !other_cookie.contains(id));
        assert_eq!(session["state"], "authenticated");
        assert!(session["created_at"].is_string() && session["last_seen_at"].is_string());
    }
    let other_id = app.current_session_id(&other).await;
    assert!(
        sessions
            .iter()
            .any(|s| s["id"] == other_id.as_str() && s["current"] == false)
    );
    // The listed id is no session cookie.
    assert_error(
        app.get_with_cookie(&other_id, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    let path = format!("/api/v1/account/sessions/{other_id}");
    assert_error(
        app.delete_json(
            &client,
            &path,
            json!({"password": "not my password at all"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_error(
        app.delete_json(&client, &path, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    json_of(app.get(&other, "/api/v1/account").await, StatusCode::OK).await;

    let ended = app
        .delete_json(&client, &path, json!({"password": PASSWORD}))
        .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get(&other, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let left = app.sessions_of(&client).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["current"], true);
    // Once ended, the id names nothing.
    assert_error(
        app.delete_json(&client, &path, json!({"password": PASSWORD}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let events = app.activity_of(&client).await;
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "signed_out" && e["detail"]["other_sessions"] == true),
        "{events:?}"
    );
}

async fn another_users_session_id_is_not_found(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let (alice, _) = app.signed_in_client("alice@example.com").await;
    let (bob, _) = app.signed_in_client("bob@example.com").await;
    let bobs = app.current_session_id(&bob).await;

    assert_eq!(app.sessions_of(&alice).await.len(), 1, "only her own");
    for id in [
        bobs.as_str(),
        "00000000000000000000000000000000",
        "nonsense",
    ] {
        assert_error(
            app.delete_json(
                &alice,
                &format!("/api/v1/account/sessions/{id}"),
                json!({"password": PASSWORD}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    json_of(app.get(&bob, "/api/v1/account").await, StatusCode::OK).await;

    // Ending one's own current session signs out.
    let own = app.current_session_id(&alice).await;
    let ended = app
        .delete_json(
            &alice,
            &format!("/api/v1/account/sessions/{own}"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get(&alice, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}

async fn ending_the_other_sessions_keeps_this_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let (client, _) = app.signed_in_client("alice@example.com").await;
    let (second, _) = app.signed_in_client("alice@example.com").await;
    let (third, _) = app.signed_in_client("alice@example.com").await;
    let (bob, _) = app.signed_in_client("bob@example.com").await;

    assert_error(
        app.post(
            &client,
            "/api/v1/account/sessions/end-others",
            json!({"password": "not my password at all"}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let ended = json_of(
        app.post(
            &client,
            "/api/v1/account/sessions/end-others",
            json!({"password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ended, json!({"sessions_ended": 2}));
    for dead in [&second, &third] {
        assert_error(
            app.get(dead, "/api/v1/account").await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
    }
    json_of(app.get(&client, "/api/v1/account").await, StatusCode::OK).await;
    json_of(app.get(&bob, "/api/v1/account").await, StatusCode::OK).await;
    assert_eq!(app.sessions_of(&client).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_lists_sessions_and_signs_one_out_with_the_password() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let (client, _) = app.signed_in_client("alice@example.com").await;
    let (other, _) = app.signed_in_client("alice@example.com").await;
    let other_id = app.current_session_id(&other).await;

    let account = app.get(&client, "/account").await.text().await.unwrap();
    assert!(account.contains("Where you are signed in"), "{account}");
    assert_eq!(account.matches("this session").count(), 1);
    let end_path = format!("/account/sessions/{other_id}/end");
    assert!(
        account.contains(&format!("href=\"{end_path}\"")),
        "{account}"
    );
    assert!(account.contains("href=\"/account/sessions/end-others\""));

    let form = app.get(&client, &end_path).await;
    assert_eq!(form.status(), StatusCode::OK);
    let csrf = csrf_of(&form.text().await.unwrap());
    // Without the token: refused.
    let forged = submit_form(&app, &client, &end_path, &[("password", PASSWORD)]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    json_of(app.get(&other, "/api/v1/account").await, StatusCode::OK).await;
    // A wrong password: asked again.
    let wrong = submit_form(
        &app,
        &client,
        &end_path,
        &[("csrf", &csrf), ("password", "not my password at all")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let done = submit_form(
        &app,
        &client,
        &end_path,
        &[("csrf", &csrf), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()["location"], "/account?done=session-ended");
    assert_error(
        app.get(&other, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let account = app
        .get(&client, "/account?done=session-ended")
        .await
        .text()
        .await
        .unwrap();
    assert!(account.contains("That session is signed out."));
    assert!(!account.contains(&other_id));
}
