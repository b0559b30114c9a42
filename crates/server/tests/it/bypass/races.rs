//! Sixteen concurrent requests on each single-use value: exactly one wins. (Authenticator
//! codes, emailed sign-in codes and the temporary-password change have theirs in `totp::flows`,
//! `codes::login_codes` and `sessions`.)

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use super::{login_token, send_as, tally, totp_now};
use crate::codes::{OTHER_PHONE, PHONE, json_of};
use crate::helpers::{Backend, PASSWORD, TestApp, session_cookie, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    sixteen_requests_with_one_texted_code_have_one_winner,
    sixteen_sessions_with_one_recovery_code_have_one_winner,
    one_reset_code_sent_sixteen_times_at_once_resets_once,
    one_address_code_sent_sixteen_times_at_once_verifies_once,
    one_half_signed_in_session_becomes_at_most_one_full_one,
    losers_of_a_rotation_race_spend_no_recovery_code,
);

/// Sends every request at once; the statuses and the session cookies set, in order.
async fn all_at_once(
    app: &TestApp,
    requests: Vec<(Client, Option<String>, &'static str, Value)>,
) -> Vec<(StatusCode, Option<String>)> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(client, token, path, body)| {
            let mut request = client.post(app.url(path)).json(&body);
            if let Some(token) = token {
                request = request.header("cookie", format!("twofold_session={token}"));
            }
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (response.status(), session_cookie(&response))
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

fn statuses(results: &[(StatusCode, Option<String>)]) -> Vec<StatusCode> {
    results.iter().map(|(status, _)| *status).collect()
}

/// Sixteen half-signed-in sessions of `email`, and their method list checked.
async fn sixteen_at_second_factor(app: &TestApp, email: &str, methods: Value) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(app.at_second_factor_with(email, methods.clone()).await);
    }
    clients
}

async fn sixteen_requests_with_one_texted_code_have_one_winner(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.phone_user("ivan@example.com", PHONE).await;
    // A sign-in code is bound to the sign-in it was sent for (ASVS 6.6.2), so the race is
    // sixteen requests of that sign-in at once.
    let client = app
        .at_second_factor_with("ivan@example.com", json!(["sms", "recovery_code"]))
        .await;
    let sent = app
        .post(&client, "/api/v1/login/send-code", json!({"method": "sms"}))
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = app.texted_code(PHONE);
    let requests = (0..16)
        .map(|_| client.clone())
        .map(|client| {
            let body = json!({"method": "sms", "code": code});
            (client, None, "/api/v1/login/verify", body)
        })
        .collect();
    let results = all_at_once(&app, requests).await;
    assert_eq!(tally(&statuses(&results)), 1, "{results:?}");
}

async fn sixteen_sessions_with_one_recovery_code_have_one_winner(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, codes) = super::totp_user(&app, "judy@example.com").await;
    let clients =
        sixteen_at_second_factor(&app, "judy@example.com", json!(["totp", "recovery_code"])).await;
    let requests = clients
        .into_iter()
        .map(|client| {
            let body = json!({"method": "recovery_code", "code": codes[3]});
            (client, None, "/api/v1/login/verify", body)
        })
        .collect();
    let results = all_at_once(&app, requests).await;
    assert_eq!(tally(&statuses(&results)), 1, "{results:?}");
    let winner = results
        .iter()
        .find_map(|(_, cookie)| cookie.clone())
        .unwrap();
    let account = send_as(
        &app,
        Some(&winner),
        Method::GET,
        "/api/v1/account",
        &json!({}),
    )
    .await;
    assert_eq!(
        json_of(account, StatusCode::OK).await["recovery_codes_left"],
        9
    );
}

async fn one_reset_code_sent_sixteen_times_at_once_resets_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (client, _, _) = app.enroll("mallory@example.com").await;
    app.add_phone(&client, OTHER_PHONE).await;
    app.clock.advance_seconds(61);
    // One half-signed-in session asks for the reset code and sends it sixteen times at once
    // (the code is bound to that sign-in: another session's try would only count as wrong).
    let (token, _) = login_token(&app, "mallory@example.com", PASSWORD).await;
    let sent = send_as(
        &app,
        Some(&token),
        Method::POST,
        "/api/v1/login/reset/send-code",
        &json!({}),
    )
    .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = app.texted_code(OTHER_PHONE);
    let mut requests = Vec::new();
    for _ in 0..16 {
        let token = token.clone();
        let body = json!({"code": code});
        requests.push((
            super::bare_client(),
            Some(token),
            "/api/v1/login/reset",
            body,
        ));
    }
    let results = all_at_once(&app, requests).await;
    assert_eq!(tally(&statuses(&results)), 1, "{results:?}");
}

async fn one_address_code_sent_sixteen_times_at_once_verifies_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let client = app.signed_in("niaj@example.com").await;
    let sent = app
        .post(&client, "/api/v1/account/email/send-code", json!({}))
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = app.latest_code("niaj@example.com");
    let mut requests = Vec::new();
    for _ in 0..16 {
        let (token, _) = login_token(&app, "niaj@example.com", PASSWORD).await;
        let body = json!({"code": code});
        requests.push((
            super::bare_client(),
            Some(token),
            "/api/v1/account/email/verify",
            body,
        ));
    }
    let results = all_at_once(&app, requests).await;
    assert_eq!(tally(&statuses(&results)), 1, "{results:?}");
    assert_eq!(app.account(&client).await["email_verified"], true);
}

/// The same `second_factor` session token sent with sixteen different right answers at once
/// (the current, previous and next authenticator codes, ten recovery codes, a texted and an
/// emailed code): at most one new session comes out, and the old token is dead afterwards.
async fn one_half_signed_in_session_becomes_at_most_one_full_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let email = "olivia@example.com";
    let owner = app.enrollment_session(email).await;
    app.verify_address(&owner, email).await;
    let (secret, recovery) = app.add_totp(&owner).await;
    app.add_phone(&owner, PHONE).await;
    app.clock.advance_seconds(61);
    app.add_email_factor(&owner, email).await;
    app.clock.advance_seconds(61);

    let (token, step) = login_token(&app, email, PASSWORD).await;
    assert_eq!(step["state"], "second_factor");
    for method in ["sms", "email"] {
        let sent = send_as(
            &app,
            Some(&token),
            Method::POST,
            "/api/v1/login/send-code",
            &json!({"method": method}),
        )
        .await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED, "{method}");
        app.clock.advance_seconds(61);
    }
    let mut answers = vec![
        ("sms", app.texted_code(PHONE)),
        ("email", app.latest_code(email)),
    ];
    let now = app.now();
    for offset in [-30, 0, 30] {
        answers.push(("totp", crate::totp::independent_totp(&secret, now + offset)));
    }
    answers.push(("totp", totp_now(&app, &secret)));
    answers.extend(recovery.iter().map(|code| ("recovery_code", code.clone())));
    assert_eq!(answers.len(), 16);
    let requests = answers
        .into_iter()
        .map(|(method, code)| {
            let body = json!({"method": method, "code": code});
            (
                super::bare_client(),
                Some(token.clone()),
                "/api/v1/login/verify",
                body,
            )
        })
        .collect();
    let results = all_at_once(&app, requests).await;
    assert_eq!(tally(&statuses(&results)), 1, "{results:?}");
    let winners: Vec<_> = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .filter_map(|(_, cookie)| cookie.clone())
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_ne!(winners[0], token, "the session was not rotated");
    let account = send_as(
        &app,
        Some(&winners[0]),
        Method::GET,
        "/api/v1/account",
        &json!({}),
    )
    .await;
    assert_eq!(
        json_of(account, StatusCode::OK).await["two_factor"],
        "enabled"
    );
    // The old token is dead, for the account and for another right answer alike.
    for (method, path, body) in [
        (Method::GET, "/api/v1/account", json!({})),
        (
            Method::POST,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": totp_now(&app, &secret)}),
        ),
    ] {
        let response = send_as(&app, Some(&token), method, path, &body).await;
        crate::helpers::assert_error(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
}

/// Ten recovery codes sent at once with one half-signed-in session: one signs in, and only
/// that one is spent (the losers were refused, so their codes must still work).
async fn losers_of_a_rotation_race_spend_no_recovery_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, recovery) = super::totp_user(&app, "sam@example.com").await;
    let (token, _) = login_token(&app, "sam@example.com", PASSWORD).await;
    let requests = recovery
        .iter()
        .map(|code| {
            let body = json!({"method": "recovery_code", "code": code});
            (
                super::bare_client(),
                Some(token.clone()),
                "/api/v1/login/verify",
                body,
            )
        })
        .collect();
    let results = all_at_once(&app, requests).await;
    assert_eq!(tally(&statuses(&results)), 1, "{results:?}");
    let winner = results
        .iter()
        .find_map(|(_, cookie)| cookie.clone())
        .unwrap();
    let account = send_as(
        &app,
        Some(&winner),
        Method::GET,
        "/api/v1/account",
        &json!({}),
    )
    .await;
    assert_eq!(
        json_of(account, StatusCode::OK).await["recovery_codes_left"],
        9
    );
}
