//! Throttling that holds across sessions and instances (issue 6): the password step's lockout
//! per account (and per address typed, for addresses without an account), the password typed
//! again to confirm a change, and the limit per client address, which counts failures only,
//! behind trusted proxies by the address they name.

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use twofold_core::email::Email;
use twofold_core::store::{AuditFilter, LockoutPolicy};
use twofold_core::user::UserId;
use twofold_server::context::ClientIpSettings;

use crate::helpers::{
    Backend, Options, PASSWORD, TestApp, assert_error, spawn_app, spawn_app_with, start_on,
};
use crate::on_both_backends;
use crate::totp::independent_totp;

on_both_backends!(
    a_password_lockout_refuses_even_the_right_password_until_the_wait_ends,
    unknown_addresses_are_answered_like_known_ones,
    password_failures_do_not_lock_the_second_factor,
    a_burst_of_wrong_passwords_gets_no_more_tries_than_the_lockout_allows,
    a_password_typed_again_counts_with_the_sign_in_password,
    two_instances_share_the_password_count,
    failures_from_one_address_are_limited_but_its_sign_ins_never_count,
    an_address_is_forgotten_after_a_quiet_hour,
    clients_behind_a_trusted_proxy_are_counted_apart,
    an_untrusted_peer_cannot_choose_its_address,
);

/// The per-address budget of these tests: 10 failures, then 1 s doubling, forgotten after an
/// hour (the default policy, with a budget small enough to reach).
const SMALL_IP_BUDGET: LockoutPolicy = LockoutPolicy {
    free_failures: 10,
    first_wait_seconds: 1,
    longest_wait_seconds: 900,
    forget_after_seconds: 3600,
};

fn with_ip_budget(client_ip: ClientIpSettings) -> Options {
    Options {
        ip_lockout: Some(SMALL_IP_BUDGET),
        client_ip,
        ..Options::default()
    }
}

async fn user_id(app: &TestApp, email: &str) -> UserId {
    let email = Email::parse(email).unwrap();
    let user = app.service.stores().users.user_by_email(&email).await;
    user.unwrap().unwrap().id
}

async fn failures(app: &TestApp, key: &str) -> Option<u32> {
    let count = app.service.stores().throttle.failures(key).await.unwrap();
    count.map(|count| count.failures)
}

/// The status of a login and its `Retry-After`, if any.
async fn attempt(
    app: &TestApp,
    client: &Client,
    email: &str,
    password: &str,
) -> (u16, Option<u64>) {
    let response = app.login(client, email, password).await;
    (response.status().as_u16(), retry_after(&response))
}

fn retry_after(response: &Response) -> Option<u64> {
    response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().unwrap())
}

async fn a_password_lockout_refuses_even_the_right_password_until_the_wait_ends(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("alice@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    for _ in 0..5 {
        let wrong = app
            .login(&client, "alice@example.com", "wrong password")
            .await;
        assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Locked for 30 s: the right password too, with the contract's 429 and Retry-After.
    let right = app.login(&client, "alice@example.com", PASSWORD).await;
    assert_eq!(retry_after(&right), Some(30));
    assert_error(right, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    app.clock.advance_seconds(29);
    assert_eq!(
        attempt(&app, &client, "alice@example.com", PASSWORD).await,
        (429, Some(1))
    );
    app.clock.advance_seconds(1);
    let right = app.login(&client, "alice@example.com", PASSWORD).await;
    assert_eq!(right.status(), StatusCode::OK);
    // The right password cleared the count: five free tries again.
    let id = user_id(&app, "alice@example.com").await;
    assert_eq!(failures(&app, &format!("password:{id}")).await, None);

    // One audit entry where the lockout began, none for the refusals.
    let locked = app
        .service
        .stores()
        .audit
        .audit_events(&AuditFilter {
            kind: Some("locked_out"),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(locked[0].event.subject, Some(id));
    assert_eq!(locked[0].event.actor, None);
    let detail: Value = serde_json::from_str(&locked[0].event.detail).unwrap();
    assert_eq!(detail["step"], "password");
    let refused = app
        .service
        .stores()
        .audit
        .audit_events(&AuditFilter {
            kind: Some("sign_in_failed"),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(refused.len(), 5, "only the checked passwords are recorded");
    // No email to the owner about a password lockout (anyone can cause one).
    assert!(app.messages_to("alice@example.com").is_empty());
}

async fn unknown_addresses_are_answered_like_known_ones(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    let mut answers = Vec::new();
    for email in ["bob@example.com", "nobody@example.com", "not an address"] {
        let mut sequence = Vec::new();
        for _ in 0..7 {
            sequence.push(answer(&app, &client, email).await);
        }
        // After the wait, one more try is checked.
        app.clock.advance_seconds(45);
        sequence.push(answer(&app, &client, email).await);
        answers.push(sequence);
    }
    let refused = (401, None, "invalid_credentials".to_owned());
    let expected: Vec<_> = std::iter::repeat_n(refused.clone(), 5)
        .chain(std::iter::repeat_n(
            (429, Some(30), "too_many_attempts".to_owned()),
            2,
        ))
        .chain([refused])
        .collect();
    for sequence in &answers {
        assert_eq!(sequence, &expected);
    }
    // The typed address counts under its own key, whatever its case and spaces.
    let spaced = app.login(&client, "  NOBODY@example.com ", "wrong").await;
    assert_eq!(spaced.status(), StatusCode::TOO_MANY_REQUESTS);
    // A compatibility spelling (a fullwidth @) shares the lock of the address it normalises
    // to, with an account or without: probing it tells nothing (a review found it did).
    app.create_user("carol@example.com", Some(PASSWORD), false)
        .await;
    for local in ["carol", "zed"] {
        for _ in 0..5 {
            let wrong = answer(&app, &client, &format!("{local}@example.com")).await;
            assert_eq!(wrong.0, 401);
        }
        let probe = answer(&app, &client, &format!("{local}\u{FF20}example.com")).await;
        assert_eq!(
            probe,
            (429, Some(30), "too_many_attempts".to_owned()),
            "{local}"
        );
    }
}

/// A wrong password for `email`: status, `Retry-After` and error code.
async fn answer(app: &TestApp, client: &Client, email: &str) -> (u16, Option<u64>, String) {
    let response = app.login(client, email, "wrong password").await;
    let (status, wait) = (response.status().as_u16(), retry_after(&response));
    let body: Value = response.json().await.unwrap();
    (status, wait, body["error"].as_str().unwrap().to_owned())
}

async fn password_failures_do_not_lock_the_second_factor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, secret, _) = app.enroll("carol@example.com").await;
    let id = user_id(&app, "carol@example.com").await;
    // Someone without the password tries 20 times: 5 are checked, 15 refused.
    let attacker = app.client();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            attempt(&app, &attacker, "carol@example.com", "guess")
                .await
                .0,
        );
    }
    assert_eq!(statuses.iter().filter(|status| **status == 401).count(), 5);
    assert_eq!(statuses.iter().filter(|status| **status == 429).count(), 15);
    assert_eq!(failures(&app, &format!("second_factor:{id}")).await, None);

    // After the password's wait the owner signs in, and the first right code works.
    app.clock.advance_seconds(30);
    let owner = app.at_second_factor("carol@example.com").await;
    let verified = app
        .post(
            &owner,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": independent_totp(&secret, app.now())}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);

    // A new login does not reset the second factor's count: 3 wrong codes, a new login, 2
    // more, and the account's second factor is locked.
    app.clock.advance_seconds(60);
    for round in [3, 2] {
        let client = app.at_second_factor("carol@example.com").await;
        for _ in 0..round {
            let wrong = app
                .post(
                    &client,
                    "/api/v1/login/verify",
                    json!({"method": "recovery_code", "code": "AAAA-BBBB-CCCC-DDDD"}),
                )
                .await;
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        }
    }
    let client = app.at_second_factor("carol@example.com").await;
    let locked = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": independent_totp(&secret, app.now())}),
        )
        .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    // The password step was passed three times meanwhile: its count is clear.
    assert_eq!(failures(&app, &format!("password:{id}")).await, None);
}

async fn a_burst_of_wrong_passwords_gets_no_more_tries_than_the_lockout_allows(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user("dave@example.com", Some(PASSWORD), false)
        .await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|index| {
            let (client, url, barrier) = (app.client(), app.url("/api/v1/login"), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let body =
                    json!({"email": "dave@example.com", "password": format!("guess {index}")});
                client.post(url).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    let mut checked = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 5);
    let id = user_id(&app, "dave@example.com").await;
    assert_eq!(failures(&app, &format!("password:{id}")).await, Some(5));
}

async fn a_password_typed_again_counts_with_the_sign_in_password(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (signed_in, _, _) = app.enroll("erin@example.com").await;
    for _ in 0..5 {
        let wrong = app
            .post(
                &signed_in,
                "/api/v1/account/recovery-codes",
                json!({"password": "wrong password"}),
            )
            .await;
        assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let right = app
        .post(
            &signed_in,
            "/api/v1/account/recovery-codes",
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(retry_after(&right), Some(30));
    assert_error(right, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    // The same count holds the sign-in password: a stolen session buys no extra guesses.
    assert_eq!(
        attempt(&app, &app.client(), "erin@example.com", PASSWORD).await,
        (429, Some(30))
    );
    app.clock.advance_seconds(30);
    let right = app
        .post(
            &signed_in,
            "/api/v1/account/recovery-codes",
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(right.status(), StatusCode::OK);
}

async fn two_instances_share_the_password_count(backend: Backend) {
    let Some(first) = spawn_app(backend).await else {
        return;
    };
    first
        .create_user("frank@example.com", Some(PASSWORD), false)
        .await;
    let client = first.client();
    for _ in 0..3 {
        assert_eq!(
            attempt(&first, &client, "frank@example.com", "x").await.0,
            401
        );
    }
    let TestApp { database, .. } = first;
    let second = start_on(database, Options::default()).await;
    let other_client = second.client();
    for _ in 0..2 {
        assert_eq!(
            attempt(&second, &other_client, "frank@example.com", "x")
                .await
                .0,
            401
        );
    }
    assert_eq!(
        attempt(&second, &other_client, "frank@example.com", PASSWORD).await,
        (429, Some(30))
    );
}

/// A failed sign-in for an address nobody has, `index` making each one new (so only the
/// client's limit can refuse it).
async fn fail_once(app: &TestApp, client: &Client, index: usize) -> u16 {
    let email = format!("stranger{index}@example.com");
    attempt(app, client, &email, "wrong password").await.0
}

async fn sign_in_ok(app: &TestApp, client: &Client) {
    let response = app.login(client, "office@example.com", PASSWORD).await;
    let status = response.status();
    assert_eq!(status, StatusCode::OK, "{}", response.text().await.unwrap());
}

async fn failures_from_one_address_are_limited_but_its_sign_ins_never_count(backend: Backend) {
    let Some(app) = spawn_app_with(backend, with_ip_budget(ClientIpSettings::default())).await
    else {
        return;
    };
    app.create_user("office@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    // A whole office signing in from one address: never counted, never refused.
    for _ in 0..30 {
        sign_in_ok(&app, &client).await;
    }
    assert_eq!(failures(&app, "ip:127.0.0.1").await, None);
    // Failures spread over many accounts, with sign-ins between them.
    for index in 0..9 {
        assert_eq!(fail_once(&app, &client, index).await, 401);
        sign_in_ok(&app, &client).await;
    }
    for _ in 0..11 {
        sign_in_ok(&app, &client).await;
    }
    assert_eq!(failures(&app, "ip:127.0.0.1").await, Some(9));
    // A wrong code at the second factor counts against the address too.
    let (_, _, recovery) = app.enroll("grace@example.com").await;
    let second_step = app.at_second_factor("grace@example.com").await;
    let wrong = app
        .post(
            &second_step,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": "AAAA-BBBB-CCCC-DDDD"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(failures(&app, "ip:127.0.0.1").await, Some(10));
    // The budget is spent: every further failure, of a password or a code, is answered 429
    // with the wait, and counted, so the wait grows (1 s doubling).
    assert_eq!(
        attempt(&app, &client, "x1@example.com", "x").await,
        (429, Some(2))
    );
    let code = app
        .post(
            &second_step,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": "AAAA-BBBB-CCCC-DDDD"}),
        )
        .await;
    assert_eq!(retry_after(&code), Some(4));
    assert_error(code, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;
    assert_eq!(failures(&app, "ip:127.0.0.1").await, Some(12));
    // Successful requests are never throttled per address (the contract): during the wait the
    // right password still signs in, and a right second-factor code still finishes a sign-in.
    sign_in_ok(&app, &client).await;
    let right = app
        .post(
            &second_step,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": recovery[0]}),
        )
        .await;
    assert_eq!(right.status(), StatusCode::OK);
    assert_eq!(failures(&app, "ip:127.0.0.1").await, Some(12));
}

async fn an_address_is_forgotten_after_a_quiet_hour(backend: Backend) {
    let Some(app) = spawn_app_with(backend, with_ip_budget(ClientIpSettings::default())).await
    else {
        return;
    };
    let client = app.client();
    for index in 0..10 {
        assert_eq!(fail_once(&app, &client, index).await, 401);
    }
    assert_eq!(fail_once(&app, &client, 10).await, 429);
    // Failures within the hour keep adding up, each wait longer.
    app.clock.advance_seconds(59 * 60);
    assert_eq!(fail_once(&app, &client, 11).await, 401);
    assert_eq!(fail_once(&app, &client, 12).await, 429);
    // An hour without a failure: a fresh budget of ten.
    app.clock.advance_seconds(60 * 60);
    for index in 20..30 {
        assert_eq!(
            fail_once(&app, &client, index).await,
            401,
            "failure {index}"
        );
    }
    assert_eq!(fail_once(&app, &client, 30).await, 429);
}

/// A login from `client` as forwarded by a proxy that says the client is `forwarded_for`.
async fn fail_forwarded(app: &TestApp, forwarded_for: &str, index: usize) -> u16 {
    let body = json!({"email": format!("someone{index}@example.com"), "password": "x"});
    app.client()
        .post(app.url("/api/v1/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn clients_behind_a_trusted_proxy_are_counted_apart(backend: Backend) {
    // The test server's peer is 127.0.0.1: here, the trusted proxy.
    let proxy = ClientIpSettings::parse("127.0.0.1", Some("X-Forwarded-For")).unwrap();
    let Some(app) = spawn_app_with(backend, with_ip_budget(proxy)).await else {
        return;
    };
    for index in 0..10 {
        assert_eq!(fail_forwarded(&app, "198.51.100.1", index).await, 401);
    }
    assert_eq!(fail_forwarded(&app, "198.51.100.1", 10).await, 429);
    // What the client itself put first in the header changes nothing.
    assert_eq!(
        fail_forwarded(&app, "203.0.113.77, 198.51.100.1", 11).await,
        429
    );
    // Another client behind the same proxy has its own budget.
    assert_eq!(fail_forwarded(&app, "198.51.100.2", 12).await, 401);
    assert_eq!(failures(&app, "ip:198.51.100.1").await, Some(12));
    assert_eq!(failures(&app, "ip:198.51.100.2").await, Some(1));
    assert_eq!(failures(&app, "ip:127.0.0.1").await, None);
}

async fn an_untrusted_peer_cannot_choose_its_address(backend: Backend) {
    let elsewhere = ClientIpSettings::parse("10.0.0.0/8", Some("X-Forwarded-For")).unwrap();
    let Some(app) = spawn_app_with(backend, with_ip_budget(elsewhere)).await else {
        return;
    };
    for index in 0..10 {
        let claimed = format!("198.51.100.{index}");
        assert_eq!(fail_forwarded(&app, &claimed, index).await, 401);
    }
    assert_eq!(fail_forwarded(&app, "198.51.100.200", 10).await, 429);
    assert_eq!(failures(&app, "ip:127.0.0.1").await, Some(11));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_says_how_long_to_wait() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.create_user("heidi@example.com", Some(PASSWORD), false)
        .await;
    let client = app.client();
    let page = app.get(&client, "/login").await.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let submit = |password: &'static str| {
        let form = [
            ("csrf", csrf.clone()),
            ("email", "heidi@example.com".to_owned()),
            ("password", password.to_owned()),
        ];
        client
            .post(app.url("/login"))
            .header("sec-fetch-site", "same-origin")
            .form(&form)
            .send()
    };
    for _ in 0..5 {
        let wrong = submit("wrong password").await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = submit(PASSWORD).await.unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&locked), Some(30));
    let html = locked.text().await.unwrap();
    assert!(
        html.contains("Too many attempts. Try again in 30 seconds."),
        "{html}"
    );
    // The form is still there, with the address typed.
    assert!(html.contains("heidi@example.com"));
    app.clock.advance_seconds(30);
    assert_eq!(
        submit(PASSWORD).await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
}
