//! The bypass suite: one test per known way around a second factor, each written so that it
//! fails when the protection it checks is taken away. Classes already covered elsewhere are
//! not repeated here (see the report in SECURITY.md for where each one lives):
//! - `gate`: skipping the second step with a password-only session, on every route of the
//!   inventory; enrolling a new factor from a password-only session (Keycloak CVE-2023-3597).
//! - `binding`: one user's codes (authenticator, text, email, recovery, reset, pending
//!   enrollment, address verification) refused in another user's login or session.
//! - `races`: sixteen concurrent requests on each single-use value have one winner.
//! - `disable`: turning two-factor off without proof, by CSRF, or by a form post to the API.
//! - `fixation`: the session cookie changes at every step and the old value dies.
//! - `enumeration`: unknown, known and disabled accounts answer alike, in body and in time.
//! - `links`: links in emails start with the configured public URL whatever `Host` says.
//! - `junk`: arrays, objects, numbers and nulls in every field of every JSON write route.

mod binding;
mod disable;
mod enumeration;
mod fixation;
mod gate;
mod junk;
mod links;
mod races;

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, session_cookie};
use crate::totp::independent_totp;

/// A client without a cookie jar that presents `token` as its session.
pub fn bare_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sends `method path` with the session `token` (if any) and a JSON body.
pub async fn send_as(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: &Value,
) -> Response {
    let mut request = bare_client().request(method, app.url(path)).json(body);
    if let Some(token) = token {
        request = request.header("cookie", format!("twofold_session={token}"));
    }
    request.send().await.unwrap()
}

/// Logs `email` in with `password` on a jar-less client; the session token and the state.
pub async fn login_token(app: &TestApp, email: &str, password: &str) -> (String, Value) {
    let response = send_as(
        app,
        None,
        Method::POST,
        "/api/v1/login",
        &json!({"email": email, "password": password}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "login of {email}");
    let token = session_cookie(&response).expect("a login sets the session cookie");
    (token, response.json().await.unwrap())
}

/// The status and body text of a response.
pub async fn status_and_text(response: Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// A user with an authenticator app (enrolled at a forced enrollment): its secret and recovery
/// codes. The clock moves on one TOTP step so the next code is fresh.
pub async fn totp_user(app: &TestApp, email: &str) -> (String, Vec<String>) {
    let (_, secret, codes) = app.enroll(email).await;
    app.clock.advance_seconds(30);
    (secret, codes)
}

/// The current authenticator code of `secret`.
pub fn totp_now(app: &TestApp, secret: &str) -> String {
    independent_totp(secret, app.now())
}

/// `POST /api/v1/login/verify` with `method` and `code`.
pub async fn verify(app: &TestApp, client: &Client, method: &str, code: &str) -> Response {
    app.post(
        client,
        "/api/v1/login/verify",
        json!({"method": method, "code": code}),
    )
    .await
}

/// Counts the responses with each status; panics on any 5xx other than 503 (load shedding).
pub fn tally(statuses: &[StatusCode]) -> usize {
    for status in statuses {
        assert!(
            !status.is_server_error() || *status == StatusCode::SERVICE_UNAVAILABLE,
            "{statuses:?}"
        );
    }
    statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count()
}

/// An administrator who signed in and enrolled an authenticator through the API, as a session
/// token (fully signed in) and the authenticator's secret.
pub async fn full_admin_token(app: &TestApp, email: &str) -> (String, String) {
    app.create_admin(email).await;
    let (token, step) = login_token(app, email, PASSWORD).await;
    assert_eq!(step["state"], "enrollment_required");
    let started = send_as(
        app,
        Some(&token),
        Method::POST,
        "/api/v1/account/totp",
        &json!({}),
    )
    .await;
    let body: Value = started.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    let confirmed = send_as(
        app,
        Some(&token),
        Method::POST,
        "/api/v1/account/totp/confirm",
        &json!({"code": independent_totp(&secret, app.now())}),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    (session_cookie(&confirmed).unwrap(), secret)
}
