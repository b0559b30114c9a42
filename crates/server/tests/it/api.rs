//! The API's conventions: error bodies for bad input, the content-type rule, size limits, the
//! OpenAPI document, health, security headers, cookies, and the gate on every route.

use reqwest::StatusCode;
use serde_json::{Value, json};
use twofold_server::gate::Gate;

use crate::helpers::{Backend, Options, PASSWORD, assert_error, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(
    health_answers_when_the_database_does,
    readiness_needs_the_schema_this_build_expects
);

async fn health_answers_when_the_database_does(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert_eq!(
        app.get(&app.client(), "/healthz").await.status(),
        StatusCode::OK
    );
}

/// `/readyz` is 200 only while the schema is at this build's version: a newer build that
/// migrated the shared database (a version past ours) or a database behind ours takes the
/// instance out of rotation, while `/healthz` still says the database answers.
async fn readiness_needs_the_schema_this_build_expects(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.client();
    let ready = app.get(&client, "/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
    let newest = app
        .database
        .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
        .await;

    app.database
        .execute_raw("INSERT INTO schema_migrations (version, applied_at) VALUES (1000, 0)")
        .await;
    let ahead = app.get(&client, "/readyz").await;
    assert_error(ahead, StatusCode::SERVICE_UNAVAILABLE, "schema_mismatch").await;
    assert_eq!(app.get(&client, "/healthz").await.status(), StatusCode::OK);

    app.database
        .execute_raw(&format!(
            "DELETE FROM schema_migrations WHERE version IN (1000, {newest})"
        ))
        .await;
    let behind = app.get(&client, "/readyz").await;
    assert_error(behind, StatusCode::SERVICE_UNAVAILABLE, "schema_mismatch").await;

    app.database
        .execute_raw(&format!(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ({newest}, 0)"
        ))
        .await;
    assert_eq!(app.get(&client, "/readyz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn writes_without_json_content_type_get_415() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let client = app.client();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let mut request = client
            .post(app.url("/api/v1/login"))
            .body(r#"{"email":"a@b.c","password":"x"}"#);
        if let Some(value) = content_type {
            request = request.header("content-type", value);
        }
        let response = request.send().await.unwrap();
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    for not_empty in ["garbage", "[1,2]", r#"{"all": true}"#] {
        let response = client
            .post(app.url("/api/v1/logout"))
            .header("content-type", "application/json")
            .body(not_empty)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(response.status().as_u16(), 400 | 422),
            "{not_empty}: {}",
            response.status()
        );
    }
    let logout = client.post(app.url("/api/v1/logout")).send().await.unwrap();
    assert_error(
        logout,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let charset = client
        .post(app.url("/api/v1/logout"))
        .header("content-type", "application/json; charset=utf-8")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(charset.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_bodies_get_4xx_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let client = app.client();
    let send = |body: &'static str| {
        client
            .post(app.url("/api/v1/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_error(
        send("{").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    assert_error(
        send("").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    for wrong_shape in [
        r#"{"email": ["a@b.c"], "password": "x"}"#,
        r#"{"email": {"$ne": null}, "password": "x"}"#,
        r#"{"email": "a@b.c"}"#,
        r#"{"email": "a@b.c", "password": 12345678}"#,
        r#"{"email": "a@b.c", "password": "x", "admin": true}"#,
        r#"[]"#,
        r#"null"#,
    ] {
        let response = send(wrong_shape).await.unwrap();
        let body = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
        assert!(
            !body["message"].as_str().unwrap().contains("12345678"),
            "values are not echoed: {body}"
        );
    }
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let options = Options {
        body_limit_bytes: 4096,
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options).await.unwrap();
    let huge = json!({"email": "a@b.c", "password": "x".repeat(10_000)});
    let response = app.post(&app.client(), "/api/v1/login", huge).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

#[tokio::test]
async fn overlong_passwords_are_refused_without_hashing() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let response = app.login(&app.client(), "a@b.c", &"x".repeat(20_000)).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn unknown_routes_get_404_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    assert_error(
        app.get(&app.client(), "/api/v1/nothing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn wrong_methods_get_405_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let response = app.get(&app.client(), "/api/v1/login").await;
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let document: Value = app
        .get(&app.client(), "/api/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/login",
        "/api/v1/login/password",
        "/api/v1/logout",
        "/api/v1/account",
        "/healthz",
        "/readyz",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is missing");
    }
    // Every API route in the table is documented.
    for entry in &app.inventory {
        if entry.path.starts_with("/api/v1/") {
            assert!(
                document["paths"][entry.path].is_object(),
                "{} is not in the OpenAPI document",
                entry.path
            );
        }
    }
    let login = &document["paths"]["/api/v1/login"]["post"]["responses"];
    assert!(login["200"].is_object() && login["401"].is_object());
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    for path in ["/login", "/api/v1/account", "/healthz", "/nothing"] {
        let response = app.get(&app.client(), path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS over plain http"
        );
    }
}

#[tokio::test]
async fn an_https_public_url_brings_host_prefixed_secure_cookies_and_hsts() {
    let options = Options {
        public_url: Some("https://login.example.com".into()),
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options).await.unwrap();
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let response = app
        .login(&app.client(), "alice@example.com", PASSWORD)
        .await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-twofold_session="), "{cookie}");
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Domain="));
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
}

#[tokio::test]
async fn plain_http_cookies_are_httponly_and_lax() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let response = app
        .login(&app.client(), "alice@example.com", PASSWORD)
        .await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("twofold_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
    );
}

/// The inventory: every gated route refuses a caller without a session, and pages send them to
/// the sign-in page; a new route cannot be added without a gate.
#[tokio::test]
async fn every_route_is_behind_the_gate_it_declares() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let public: Vec<&str> = app
        .inventory
        .iter()
        .filter(|entry| entry.gate == Gate::Public)
        .map(|entry| entry.path)
        .collect();
    assert_eq!(
        public,
        [
            "/api/v1/sms/inbound",
            "/api/openapi.json",
            "/healthz",
            "/readyz",
            "/static/app.css",
            "/static/print.js"
        ]
    );
    let client = app.client();
    for entry in &app.inventory {
        match entry.gate {
            Gate::Api(_) | Gate::AdminApi => {
                for method in [reqwest::Method::GET, reqwest::Method::POST] {
                    let response = client
                        .request(method.clone(), app.url(entry.path))
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap();
                    // 405 means the path has no handler for this method, so nothing to guard.
                    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
                        assert_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
                    }
                }
            }
            Gate::Page(_) | Gate::AdminPage => {
                let response = app.get(&client, entry.path).await;
                assert_eq!(response.status(), StatusCode::SEE_OTHER, "{}", entry.path);
                assert_eq!(response.headers()["location"], "/login", "{}", entry.path);
            }
            Gate::Public | Gate::OptionalSession => {}
        }
    }
}
