//! Skipping the second step: a session that has passed only the password (state
//! `password_change_required`, `enrollment_required` or `second_factor`) reaches nothing but
//! the routes of its next step. The routes come from the route inventory, so a route added
//! later is checked without anyone listing it here. And enrolling a new factor from a
//! password-only session (Keycloak CVE-2023-3597).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use twofold_core::accounts::NewAccount;
use twofold_core::session::SessionState;
use twofold_server::gate::{Gate, page_for};

use super::{bare_client, login_token, send_as, status_and_text, totp_now, verify};
use crate::codes::{OTHER_PHONE, json_of};
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_password_only_session_reaches_only_its_next_step,
    a_password_only_session_cannot_enroll_a_factor_or_make_codes,
);

/// An administrator who must change a temporary password first, one who must enroll, and one
/// at the second step: each a session token, its state and the user's id and address.
async fn password_only_sessions(app: &TestApp) -> Vec<(String, SessionState, String, String)> {
    let mut sessions = Vec::new();
    let temporary = app
        .service
        .create_account(
            None,
            NewAccount {
                email: "temporary@example.com",
                password: None,
                is_admin: true,
                require_2fa: true,
            },
        )
        .await
        .unwrap()
        .temporary_password
        .map(|secret| secrecy::ExposeSecret::expose_secret(&secret).to_owned())
        .unwrap();
    let (token, step) = login_token(app, "temporary@example.com", &temporary).await;
    assert_eq!(step["state"], "password_change_required");
    sessions.push((token, SessionState::PasswordChangeRequired, "temporary"));

    app.create_admin("enrolling@example.com").await;
    let (token, step) = login_token(app, "enrolling@example.com", PASSWORD).await;
    assert_eq!(step["state"], "enrollment_required");
    sessions.push((token, SessionState::EnrollmentRequired, "enrolling"));

    app.signed_in_admin("halfway@example.com").await;
    app.clock.advance_seconds(30);
    let (token, step) = login_token(app, "halfway@example.com", PASSWORD).await;
    assert_eq!(step["state"], "second_factor");
    sessions.push((token, SessionState::SecondFactor, "halfway"));

    let mut out = Vec::new();
    for (token, state, name) in sessions {
        let email = format!("{name}@example.com");
        let id = app.id_of(&email).await;
        out.push((token, state, id, email));
    }
    out
}

/// Whether a route may be reached in a password-only `state`: the routes of that next step.
fn belongs_to_step(path: &str, state: SessionState) -> bool {
    match state {
        SessionState::PasswordChangeRequired => {
            path == "/api/v1/login/password" || path == "/login/password"
        }
        SessionState::SecondFactor => {
            path.starts_with("/api/v1/login/") || path.starts_with("/login/")
        }
        SessionState::EnrollmentRequired => {
            path == "/login/enroll"
                || [
                    "/api/v1/account/totp",
                    "/api/v1/account/phone",
                    "/api/v1/account/email",
                    "/account/totp/setup",
                    "/account/phone",
                    "/account/email",
                ]
                .iter()
                .any(|prefix| path.starts_with(prefix))
        }
        SessionState::Authenticated => true,
    }
}

async fn a_password_only_session_reaches_only_its_next_step(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let sessions = password_only_sessions(&app).await;
    let mut checked = 0;
    for (token, state, id, email) in &sessions {
        for entry in &app.inventory {
            let path = entry.path.replace("{id}", id);
            match entry.gate {
                Gate::Api(allowed) if allowed.contains(state) => {
                    assert!(
                        belongs_to_step(entry.path, *state),
                        "{} is open to a password-only {state} session",
                        entry.path
                    );
                }
                Gate::Api(_) | Gate::AdminApi => {
                    let mut guarded = 0;
                    for method in [
                        Method::GET,
                        Method::POST,
                        Method::PATCH,
                        Method::PUT,
                        Method::DELETE,
                    ] {
                        let body =
                            json!({"password": PASSWORD, "require_2fa": false, "code": "123456"});
                        let response =
                            send_as(&app, Some(token), method.clone(), &path, &body).await;
                        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                            continue;
                        }
                        guarded += 1;
                        let (status, text) = status_and_text(response).await;
                        assert_eq!(status, StatusCode::UNAUTHORIZED, "{state} {method} {path}");
                        let body: Value = serde_json::from_str(&text).unwrap();
                        assert_eq!(body["error"], "unauthenticated", "{state} {method} {path}");
                        assert!(!text.contains(email.as_str()), "{path} told {text}");
                    }
                    assert!(guarded > 0, "{path} answers no method");
                    checked += 1;
                }
                Gate::Page(allowed) if allowed.contains(state) => {
                    assert!(
                        belongs_to_step(entry.path, *state),
                        "page {} is open to a password-only {state} session",
                        entry.path
                    );
                }
                Gate::Page(_) | Gate::AdminPage => {
                    let expected = if entry.gate == Gate::AdminPage {
                        "/login"
                    } else {
                        page_for(Some(*state))
                    };
                    for method in [Method::GET, Method::POST] {
                        let response = bare_client()
                            .request(method.clone(), app.url(&path))
                            .header("cookie", format!("twofold_session={token}"))
                            .header("sec-fetch-site", "same-origin")
                            .form(&[("csrf", "x"), ("code", "123456"), ("password", PASSWORD)])
                            .send()
                            .await
                            .unwrap();
                        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                            continue;
                        }
                        let location = response
                            .headers()
                            .get("location")
                            .map(|value| value.to_str().unwrap().to_owned());
                        let (status, text) = status_and_text(response).await;
                        assert_eq!(
                            (status, location.as_deref()),
                            (StatusCode::SEE_OTHER, Some(expected)),
                            "{state} {method} {path}"
                        );
                        assert!(!text.contains(email.as_str()), "{path} told {text}");
                    }
                    checked += 1;
                }
                Gate::OptionalSession | Gate::Public => {}
            }
        }
        // The root sends a half-signed-in browser on to its step, never to the account.
        let root = send_as(&app, Some(token), Method::GET, "/", &json!({})).await;
        assert_eq!(root.headers()["location"], page_for(Some(*state)));
    }
    assert!(checked > 60, "only {checked} route checks");
    // The administrators are untouched: their accounts answer as before, none is signed in.
    for (_, state, _, email) in &sessions {
        if *state != SessionState::PasswordChangeRequired {
            let step = login_token(&app, email, PASSWORD).await.1;
            assert_eq!(step["state"], state.to_string(), "{email}");
        }
    }
}

/// A user with an authenticator and a verified address who passed only the password can add
/// no phone, no email codes and no authenticator, and can make no recovery codes, through the
/// API or the pages; nothing of the account changes.
async fn a_password_only_session_cannot_enroll_a_factor_or_make_codes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let email = "victim@example.com";
    let owner = app.enrollment_session(email).await;
    app.verify_address(&owner, email).await;
    let (secret, recovery) = app.add_totp(&owner).await;
    let before = app.account(&owner).await;
    app.clock.advance_seconds(61);
    let emails_before = app.messages_to(email).len();

    let (token, step) = login_token(&app, email, PASSWORD).await;
    assert_eq!(step["state"], "second_factor");
    let attempts = [
        ("/api/v1/account/totp", json!({})),
        ("/api/v1/account/totp", json!({"password": PASSWORD})),
        ("/api/v1/account/totp/confirm", json!({"code": "123456"})),
        ("/api/v1/account/phone", json!({"phone": OTHER_PHONE})),
        (
            "/api/v1/account/phone/inbound",
            json!({"phone": OTHER_PHONE}),
        ),
        ("/api/v1/account/email/send-code", json!({})),
        ("/api/v1/account/email-2fa/send-code", json!({})),
        (
            "/api/v1/account/email-2fa/confirm",
            json!({"code": "123456"}),
        ),
        (
            "/api/v1/account/recovery-codes",
            json!({"password": PASSWORD}),
        ),
        ("/api/v1/account/recovery-codes/send-code", json!({})),
    ];
    for (path, body) in &attempts {
        let response = send_as(&app, Some(&token), Method::POST, path, body).await;
        let (status, text) = status_and_text(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {text}");
        assert!(
            !text.contains("secret") && !text.contains("recovery_codes"),
            "{text}"
        );
    }
    for path in [
        "/account/totp/setup",
        "/account/phone",
        "/account/email-2fa",
    ] {
        let page = send_as(&app, Some(&token), Method::GET, path, &json!({})).await;
        assert_eq!(page.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.headers()["location"], "/login/verify", "{path}");
    }
    assert!(app.messages_to(OTHER_PHONE).is_empty(), "a code went out");
    assert_eq!(
        app.messages_to(email).len(),
        emails_before,
        "an email went out"
    );

    // The owner signs in as before: same factors, every recovery code still good.
    let client = app.client();
    json_of(app.login(&client, email, PASSWORD).await, StatusCode::OK).await;
    let signed_in = verify(&app, &client, "totp", &totp_now(&app, &secret)).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    assert_eq!(app.account(&client).await, before);
    let other = app.client();
    json_of(app.login(&other, email, PASSWORD).await, StatusCode::OK).await;
    let recovered = verify(&app, &other, "recovery_code", &recovery[9]).await;
    assert_eq!(recovered.status(), StatusCode::OK);
}
