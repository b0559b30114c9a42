//! Who may use the administration API. The routes under test come from the route inventory,
//! so an administration route added later is checked without anyone listing it here.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use twofold_server::gate::Gate;

use super::Admin;
use crate::codes::json_of;
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    only_an_administrator_signed_in_with_two_factors_gets_in,
    an_administrator_without_a_second_factor_never_gets_a_full_session,
);

/// Every administration route of the inventory, with `{id}` filled in with `id`.
fn admin_paths(app: &TestApp, id: &str) -> Vec<String> {
    app.inventory
        .iter()
        .filter(|entry| entry.gate == Gate::AdminApi)
        .map(|entry| entry.path.replace("{id}", id))
        .collect()
}

/// Sends every method to every administration route and expects `status` and `code` from each
/// method the route has (405 means there is no handler to guard).
async fn expect_refused(app: &TestApp, client: &Client, id: &str, status: StatusCode, code: &str) {
    for path in admin_paths(app, id) {
        let mut guarded = 0;
        for method in [
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::PUT,
            Method::DELETE,
        ] {
            let response = client
                .request(method.clone(), app.url(&path))
                .json(&json!({"require_2fa": true, "email": "x@example.com"}))
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                continue;
            }
            guarded += 1;
            let actual = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                (actual, body["error"].as_str()),
                (status, Some(code)),
                "{method} {path}: {body}"
            );
        }
        assert!(guarded > 0, "{path} answers no method");
    }
}

async fn only_an_administrator_signed_in_with_two_factors_gets_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin: Admin = app.signed_in_admin("root@example.com").await;
    app.create_user("target@example.com", Some(PASSWORD), false)
        .await;
    let target = app.id_of("target@example.com").await;
    let paths = admin_paths(&app, &target);
    for expected in [
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}",
        "/api/v1/admin/users/{id}/reset-2fa",
        "/api/v1/admin/users/{id}/invitation",
        "/api/v1/admin/policy",
        "/api/v1/admin/audit",
        "/api/v1/admin/audit/export",
        "/api/v1/admin/audit/verify",
    ] {
        assert!(
            paths.contains(&expected.replace("{id}", &target)),
            "{expected} is not an administration route: {paths:?}"
        );
    }
    assert!(
        app.inventory
            .iter()
            .filter(|entry| entry.path.starts_with("/api/v1/admin"))
            .all(|entry| entry.gate == Gate::AdminApi),
        "an /api/v1/admin route has another gate"
    );

    // Nobody signed in.
    expect_refused(
        &app,
        &app.client(),
        &target,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // A user signed in fully, without a second factor, and one with a second factor.
    let plain = app.signed_in("plain@example.com").await;
    expect_refused(&app, &plain, &target, StatusCode::FORBIDDEN, "forbidden").await;
    let (enrolled, _, _) = app.enroll("enrolled@example.com").await;
    expect_refused(&app, &enrolled, &target, StatusCode::FORBIDDEN, "forbidden").await;
    // The administrator after the password only: the second step is still to come.
    app.clock.advance_seconds(30);
    let half = app.at_second_factor("root@example.com").await;
    expect_refused(
        &app,
        &half,
        &target,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // Nothing above changed anything.
    let view = app.admin_view(&admin, &target).await;
    assert_eq!(
        (&view["require_2fa"], &view["disabled"]),
        (&json!(false), &json!(false))
    );

    // The administrator who finished signing in gets through on every reading route.
    for path in paths.iter().filter(|path| !path.ends_with("/invitation")) {
        // Write-only routes (POST).
        if path.ends_with("/reset-2fa") || path.ends_with("/sign-out") {
            continue;
        }
        let response = app.get(&admin.client, path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    }

    // The OpenAPI document lists every administration route and the account's activity.
    let document = json_of(
        app.get(&app.client(), "/api/openapi.json").await,
        StatusCode::OK,
    )
    .await;
    for entry in app
        .inventory
        .iter()
        .filter(|entry| entry.gate == Gate::AdminApi)
    {
        let operations = &document["paths"][entry.path];
        assert!(
            operations.as_object().is_some_and(|map| !map.is_empty()),
            "{} is not documented",
            entry.path
        );
    }
    let documented = |path: &str, method: &str| !document["paths"][path][method].is_null();
    for (path, method) in [
        ("/api/v1/admin/users", "get"),
        ("/api/v1/admin/users", "post"),
        ("/api/v1/admin/users/{id}", "get"),
        ("/api/v1/admin/users/{id}", "patch"),
        ("/api/v1/admin/policy", "get"),
        ("/api/v1/admin/policy", "patch"),
        ("/api/v1/account/activity", "get"),
    ] {
        assert!(
            documented(path, method),
            "{method} {path} is not documented"
        );
    }
}

async fn an_administrator_without_a_second_factor_never_gets_a_full_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_admin("fresh@example.com").await;
    let target = app.id_of("fresh@example.com").await;
    let client = app.client();
    let step = json_of(
        app.login(&client, "fresh@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "enrollment_required");
    let account = app.get(&client, "/api/v1/account").await;
    assert_eq!(account.status(), StatusCode::UNAUTHORIZED);
    expect_refused(
        &app,
        &client,
        &target,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // Even with a grace period in the policy: administrators get none.
    let root = app.signed_in_admin("root@example.com").await;
    app.change_policy(
        &root,
        json!({"two_factor": "everyone", "grace_period_days": 30}),
    )
    .await;
    assert_eq!(
        app.login_state("fresh@example.com").await["state"],
        "enrollment_required"
    );
}
