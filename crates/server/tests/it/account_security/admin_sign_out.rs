//! `POST /api/v1/admin/users/{id}/sign-out` and "Sign out everywhere" on a user's page.

use reqwest::StatusCode;
use serde_json::json;

use super::{csrf_of, submit_form};
use crate::codes::json_of;
use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(an_administrator_signs_a_user_out_everywhere);

async fn an_administrator_signs_a_user_out_everywhere(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("admin@example.com").await;
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let alice_id = app.id_of("alice@example.com").await;
    let (first, _) = app.signed_in_client("alice@example.com").await;
    let (second, _) = app.signed_in_client("alice@example.com").await;
    let path = format!("/api/v1/admin/users/{alice_id}/sign-out");

    // Not for anyone but an administrator.
    assert_error(
        app.post(&first, &path, json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.post(&app.client(), &path, json!({})).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    json_of(app.get(&first, "/api/v1/account").await, StatusCode::OK).await;

    let ended = json_of(
        app.post(&admin.client, &path, json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ended, json!({"sessions_ended": 2}));
    for dead in [&first, &second] {
        assert_error(
            app.get(dead, "/api/v1/account").await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
    }
    // The administrator's own session is untouched, and the action is in the log.
    let events = app
        .audit_events(&admin, &format!("user={alice_id}&kind=signed_out"))
        .await;
    let entry = events
        .iter()
        .find(|event| event["actor"] == admin.id.as_str())
        .unwrap_or_else(|| panic!("no entry by the administrator in {events:?}"));
    assert_eq!(entry["subject"], alice_id.as_str());
    assert_eq!(entry["detail"]["email"], "alice@example.com");

    // Not the administrator's own account; not an unknown user.
    assert_error(
        app.post(
            &admin.client,
            &format!("/api/v1/admin/users/{}/sign-out", admin.id),
            json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "own_account",
    )
    .await;
    for unknown in ["00000000-0000-4000-8000-000000000000", "nobody"] {
        assert_error(
            app.post(
                &admin.client,
                &format!("/api/v1/admin/users/{unknown}/sign-out"),
                json!({}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    json_of(
        app.get(&admin.client, "/api/v1/account").await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_page_signs_a_user_out_everywhere_after_a_confirmation() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let admin = app.signed_in_admin("admin@example.com").await;
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let alice_id = app.id_of("alice@example.com").await;
    let (alice, _) = app.signed_in_client("alice@example.com").await;
    let user_page = format!("/admin/users/{alice_id}");

    let edit = app
        .get(&admin.client, &format!("{user_page}/edit"))
        .await
        .text()
        .await
        .unwrap();
    assert!(edit.contains("Sign out everywhere"), "{edit}");
    let own = app
        .get(&admin.client, &format!("/admin/users/{}/edit", admin.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(!own.contains("Sign out everywhere"));

    let confirm = app
        .get(&admin.client, &format!("{user_page}/sign-out"))
        .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let csrf = csrf_of(&confirm.text().await.unwrap());
    let forged = submit_form(&app, &admin.client, &format!("{user_page}/sign-out"), &[]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    json_of(app.get(&alice, "/api/v1/account").await, StatusCode::OK).await;

    let done = submit_form(
        &app,
        &admin.client,
        &format!("{user_page}/sign-out"),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers()["location"],
        format!("{user_page}?done=signed-out").as_str()
    );
    assert_error(
        app.get(&alice, "/api/v1/account").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let shown = app
        .get(&admin.client, &format!("{user_page}?done=signed-out"))
        .await
        .text()
        .await
        .unwrap();
    assert!(shown.contains("is signed out everywhere"), "{shown}");
}
