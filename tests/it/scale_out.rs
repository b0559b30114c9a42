//! Two `twofold serve` processes on one database, behind a load balancer without sticky
//! sessions: whichever instance a request reaches, the answer is the same. They start together
//! on an empty database, share sessions, spend each one-time code once, count lockouts
//! together and follow one policy. On PostgreSQL, and on SQLite (two processes, one WAL file).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::factors::{enroll, enroll_with_flags, now, totp};
use crate::on_both_backends;
use crate::process::{Installation, PASSWORD, Server, installation, stderr};

on_both_backends!(
    instances_started_together_migrate_once,
    a_session_made_on_one_instance_works_and_ends_on_the_other,
    a_code_used_on_one_instance_is_refused_on_the_other,
    lockouts_count_the_failures_of_every_instance,
    a_policy_changed_through_one_instance_applies_on_the_other,
);

/// A browser whose requests go to whichever instance the test names. It keeps the session
/// cookie itself and sends exactly that value everywhere: a cookie store would drop the cookie
/// on logout and so hide whether the server ended the session.
struct Browser {
    http: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::new(),
            cookie: None,
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", format!("twofold_session={cookie}")),
            None => request,
        };
        let response = request.send().await.unwrap();
        // A rotated session sets a new value; a logout's empty one is ignored on purpose.
        let set = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|cookie| cookie.split(';').next()?.strip_prefix("twofold_session="))
            .find(|value| !value.is_empty())
            .map(str::to_owned);
        if set.is_some() {
            self.cookie = set;
        }
        response
    }

    async fn post(&mut self, server: &Server, path: &str, body: Value) -> reqwest::Response {
        let request = self.http.post(server.url(path)).json(&body);
        self.send(request).await
    }

    async fn get(&mut self, server: &Server, path: &str) -> reqwest::Response {
        let request = self.http.get(server.url(path));
        self.send(request).await
    }

    /// The password step on `server`: its status and body.
    async fn login(&mut self, server: &Server, email: &str, password: &str) -> (StatusCode, Value) {
        let response = self
            .post(
                server,
                "/api/v1/login",
                json!({"email": email, "password": password}),
            )
            .await;
        (response.status(), response.json().await.unwrap())
    }

    /// The second-factor step on `server`: its status and body.
    async fn verify(&mut self, server: &Server, method: &str, code: &str) -> (StatusCode, Value) {
        let response = self
            .post(
                server,
                "/api/v1/login/verify",
                json!({"method": method, "code": code}),
            )
            .await;
        (response.status(), response.json().await.unwrap())
    }
}

/// Two instances on the installation, each answering `/readyz`.
async fn two_instances(install: &Installation) -> (Server, Server) {
    let (a, b) = tokio::join!(install.serve(), install.serve());
    for server in [&a, &b] {
        let ready = reqwest::get(server.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(ready.text().await.unwrap(), "ready\n");
    }
    (a, b)
}

fn add_user(install: &Installation, email: &str) {
    let added = install.run(
        &["user", "add", email, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.status.success(), "{}", stderr(&added));
}

/// Asserts 429 `too_many_attempts` with a `Retry-After` of at least a second.
async fn assert_locked(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts", "{body}");
}

/// Both processes are spawned before either is waited for, on a database with no tables: the
/// migrations run once (PostgreSQL: under an advisory lock; SQLite: IMMEDIATE transactions),
/// neither start fails on the other's half-made schema, and one first administrator is made.
async fn instances_started_together_migrate_once(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let (a, b) = two_instances(&install).await;
    let database = &install.database;
    let rows = database
        .query_i64("SELECT COUNT(*) FROM schema_migrations")
        .await;
    let versions = database
        .query_i64("SELECT COUNT(DISTINCT version) FROM schema_migrations")
        .await;
    let (oldest, newest) = (
        database
            .query_i64("SELECT CAST(MIN(version) AS BIGINT) FROM schema_migrations")
            .await,
        database
            .query_i64("SELECT CAST(MAX(version) AS BIGINT) FROM schema_migrations")
            .await,
    );
    assert_eq!((oldest, rows, versions), (1, newest, newest));

    // The first-administrator line is printed by exactly one of them; the reader threads may
    // pass it on a moment after the server answers.
    let mut printed = Vec::new();
    let started = Instant::now();
    while printed.is_empty() && started.elapsed() < Duration::from_secs(10) {
        printed.extend(a.stdout_lines().into_iter().chain(b.stdout_lines()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    printed.extend(a.stdout_lines().into_iter().chain(b.stdout_lines()));
    let admin_lines = printed
        .iter()
        .filter(|line| line.contains("admin@localhost"))
        .count();
    assert_eq!(admin_lines, 1, "{printed:?}");
    assert_eq!(
        database.query_i64("SELECT COUNT(*) FROM users").await,
        1,
        "one first administrator"
    );
}

/// The cookie A set is a session on B, and a logout on A ends it on B.
async fn a_session_made_on_one_instance_works_and_ends_on_the_other(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let (a, b) = two_instances(&install).await;
    add_user(&install, "sam@example.com");
    let mut browser = Browser::new();
    let (status, login) = browser.login(&a, "sam@example.com", PASSWORD).await;
    assert_eq!(
        (status, &login["state"]),
        (StatusCode::OK, &json!("authenticated"))
    );

    let on_b = browser.get(&b, "/api/v1/account").await;
    assert_eq!(on_b.status(), StatusCode::OK);
    assert_eq!(
        on_b.json::<Value>().await.unwrap()["email"],
        "sam@example.com"
    );
    let stranger = Browser::new().get(&b, "/api/v1/account").await;
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);

    let logout = browser.post(&a, "/api/v1/logout", json!({})).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // The same cookie value as before the logout.
    for server in [&b, &a] {
        let after = browser.get(server, "/api/v1/account").await;
        assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "{}", server.base);
    }
}

/// A TOTP code that signed in on A cannot sign in again on B, nor a recovery code spent on A;
/// B does accept a recovery code not yet spent, so the refusals are about use, not about B.
async fn a_code_used_on_one_instance_is_refused_on_the_other(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let (a, b) = two_instances(&install).await;
    let tess = enroll(&install, &a, "tess@example.com").await;
    // The next time step: enrolling spent the current one.
    let code = totp(&tess.secret, now() + 30);

    let mut first = Browser::new();
    let (_, login) = first.login(&a, "tess@example.com", PASSWORD).await;
    assert_eq!(login["state"], "second_factor");
    let (status, verified) = first.verify(&a, "totp", &code).await;
    assert_eq!(
        (status, &verified["state"]),
        (StatusCode::OK, &json!("authenticated"))
    );
    let mut second = Browser::new();
    let (_, login) = second.login(&b, "tess@example.com", PASSWORD).await;
    assert_eq!(login["state"], "second_factor");
    let (status, replayed) = second.verify(&b, "totp", &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{replayed}");
    assert_eq!(replayed["error"], "invalid_code");

    let (spent, unspent) = (&tess.recovery_codes[0], &tess.recovery_codes[1]);
    let mut third = Browser::new();
    let (_, login) = third.login(&a, "tess@example.com", PASSWORD).await;
    assert_eq!(login["state"], "second_factor");
    let (status, _) = third.verify(&a, "recovery_code", spent).await;
    assert_eq!(status, StatusCode::OK);
    let (status, replayed) = second.verify(&b, "recovery_code", spent).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{replayed}");
    assert_eq!(replayed["error"], "invalid_code");
    let (status, accepted) = second.verify(&b, "recovery_code", unspent).await;
    assert_eq!(
        (status, &accepted["state"]),
        (StatusCode::OK, &json!("authenticated"))
    );
}

/// Five wrong passwords, alternately on A and B, lock the account on both (counted per
/// process, each would have seen at most three); then the same for wrong second-factor codes.
async fn lockouts_count_the_failures_of_every_instance(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let (a, b) = two_instances(&install).await;
    add_user(&install, "uma@example.com");
    for attempt in 0..5 {
        let server = if attempt % 2 == 0 { &a } else { &b };
        let (status, body) = Browser::new()
            .login(server, "uma@example.com", "not the password")
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {body}"
        );
        assert_eq!(body["error"], "invalid_credentials");
    }
    for server in [&b, &a] {
        let right = Browser::new()
            .post(
                server,
                "/api/v1/login",
                json!({"email": "uma@example.com", "password": PASSWORD}),
            )
            .await;
        assert_locked(right).await;
    }

    let vic = enroll(&install, &a, "vic@example.com").await;
    let right_code = totp(&vic.secret, now() + 30);
    let live: Vec<String> = [0, 30, 60]
        .iter()
        .map(|offset| totp(&vic.secret, now() + offset - 30))
        .collect();
    let wrong_code = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|candidate| !live.iter().any(|code| code == candidate))
        .unwrap();
    let mut on_a = Browser::new();
    let mut on_b = Browser::new();
    for (browser, server) in [(&mut on_a, &a), (&mut on_b, &b)] {
        let (_, login) = browser.login(server, "vic@example.com", PASSWORD).await;
        assert_eq!(login["state"], "second_factor");
    }
    for attempt in 0..5 {
        let (browser, server) = if attempt % 2 == 0 {
            (&mut on_a, &a)
        } else {
            (&mut on_b, &b)
        };
        let (status, body) = browser.verify(server, "totp", wrong_code).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {body}"
        );
        assert_eq!(body["error"], "invalid_code");
    }
    for (browser, server) in [(&mut on_b, &b), (&mut on_a, &a)] {
        let right = browser
            .post(
                server,
                "/api/v1/login/verify",
                json!({"method": "totp", "code": right_code}),
            )
            .await;
        assert_locked(right).await;
    }
}

/// An administrator requires 2FA of everyone through A's API; B, whose cached policy said
/// otherwise a moment before, applies it within its refresh interval (1 s).
async fn a_policy_changed_through_one_instance_applies_on_the_other(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let (a, b) = two_instances(&install).await;
    let ada = enroll_with_flags(&install, &a, "ada@example.com", &["--admin"]).await;
    add_user(&install, "pat@example.com");
    let (_, before) = Browser::new().login(&b, "pat@example.com", PASSWORD).await;
    assert_eq!(before["state"], "authenticated", "{before}");

    let mut admin = Browser::new();
    let (_, login) = admin.login(&a, "ada@example.com", PASSWORD).await;
    assert_eq!(login["state"], "second_factor");
    let code = totp(&ada.secret, now() + 30);
    let (status, _) = admin.verify(&a, "totp", &code).await;
    assert_eq!(status, StatusCode::OK);
    let request = admin
        .http
        .patch(a.url("/api/v1/admin/policy"))
        .json(&json!({"two_factor": "everyone", "grace_period_days": 0}));
    let changed = admin.send(request).await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed_at = Instant::now();

    loop {
        let (status, login) = Browser::new().login(&b, "pat@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{login}");
        if login["state"] == "enrollment_required" {
            break;
        }
        assert_eq!(login["state"], "authenticated", "{login}");
        assert!(
            changed_at.elapsed() < Duration::from_secs(4),
            "B still applies the old policy {:?} after the change",
            changed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
