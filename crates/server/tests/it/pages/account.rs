//! The account security page: change of authenticator, new recovery codes, lockout and CSRF.

use reqwest::StatusCode;
use serde_json::json;

use super::*;
use crate::helpers::{Backend, PASSWORD, session_cookie, spawn_app};
use crate::on_both_backends;
use crate::totp::independent_totp;

on_both_backends!(changing_the_authenticator_asks_for_the_password_first);

async fn changing_the_authenticator_asks_for_the_password_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut browser = Browser::new(&app);
    let (old_secret, _) = browser.enroll("dave@example.com").await;
    // The set-up page of a user with an authenticator asks for the password first.
    assert_eq!(
        browser.redirect_of("/account/totp/setup").await,
        "/account/totp/change"
    );
    let change = browser.open("/account/totp/change").await;
    assert_eq!(change.status, StatusCode::OK);
    assert!(change.has("type=\"password\"") && change.has(">Retrieve new code</button>"));
    assert!(!change.has("<svg"));

    let wrong = [("password", "not the password at all")];
    let refused = Page::from(browser.submit("/account/totp/change", &wrong).await).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.has("The password is not right.") && !refused.has("<svg"));

    let started = browser
        .submit("/account/totp/change", &[("password", PASSWORD)])
        .await;
    let started = Page::from(started).await;
    assert_eq!(started.status, StatusCode::OK);
    assert!(started.has("<svg"));
    let new_secret = key_of(&started.html);
    assert_ne!(new_secret, old_secret);

    app.clock.advance_seconds(30);
    let code = independent_totp(&new_secret, app.now());
    let confirmed = browser
        .submit("/account/totp/setup", &[("code", &code)])
        .await;
    assert_eq!(
        location(&confirmed),
        "/account?changed=1",
        "no new codes for a replacement"
    );
    assert!(session_cookie(&confirmed).is_some(), "the session rotates");
    let account = browser.open("/account?changed=1").await;
    assert!(account.has("Your new authenticator app is set up."));

    // Only the new authenticator signs in now.
    app.clock.advance_seconds(30);
    let other = app.at_second_factor("dave@example.com").await;
    for (secret, status) in [
        (&old_secret, StatusCode::UNAUTHORIZED),
        (&new_secret, StatusCode::OK),
    ] {
        let body = json!({"method": "totp", "code": independent_totp(secret, app.now())});
        assert_eq!(
            app.post(&other, "/api/v1/login/verify", body)
                .await
                .status(),
            status
        );
    }
}

#[tokio::test]
async fn new_recovery_codes_need_the_password_and_few_left_are_flagged() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut browser = Browser::new(&app);
    let (_, old_codes) = browser.enroll("erin@example.com").await;
    // Use eight codes: two left.
    for code in &old_codes[..8] {
        let other = app.at_second_factor("erin@example.com").await;
        let body = json!({"method": "recovery_code", "code": code});
        assert_eq!(
            app.post(&other, "/api/v1/login/verify", body)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let account = browser.open("/account").await;
    assert!(account.has("2 left"));
    assert!(
        between(&account.html, "<p class=\"warning\"", "</p>")
            .contains("Create new recovery codes")
    );
    assert!(account.has("<form method=\"post\" action=\"/account/recovery-codes\""));

    let wrong = [("password", "not the password at all")];
    let refused = Page::from(browser.submit("/account/recovery-codes", &wrong).await).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.has("The password is not right.") && !refused.has("<ol class=\"codes\""));

    let made = browser
        .submit("/account/recovery-codes", &[("password", PASSWORD)])
        .await;
    let made = Page::from(made).await;
    assert_eq!(made.status, StatusCode::OK);
    let codes = listed_codes(&made.html);
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|code| !old_codes.contains(code)));
    assert!(made.has("Your earlier recovery codes no longer work."));
    assert!(made.has("download=\"twofold-recovery-codes.txt\""));
    let account = browser.open("/account").await;
    assert!(account.has("10 left") && !account.has("class=\"warning\""));
    let other = app.at_second_factor("erin@example.com").await;
    let body = json!({"method": "recovery_code", "code": old_codes[9]});
    let old = app.post(&other, "/api/v1/login/verify", body).await;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the old set stopped working"
    );
}

#[tokio::test]
async fn wrong_second_factor_codes_lead_to_a_wait_page() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let (secret, _) = Browser::new(&app).enroll("frank@example.com").await;
    app.clock.advance_seconds(30);
    let mut browser = Browser::new(&app);
    browser.sign_in("frank@example.com").await;
    browser.open("/login/verify").await;
    let right = independent_totp(&secret, app.now());
    for _ in 0..5 {
        let refused = browser.verify("totp", wrong_code(&right)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = Page::from(browser.verify("totp", &right).await).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.headers["retry-after"], "30");
    assert!(locked.has("Too many wrong attempts. Wait 30 seconds, then try again."));
}

#[tokio::test]
async fn the_new_forms_refuse_a_missing_forged_or_cross_site_token() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    app.create_user("grace@example.com", Some(PASSWORD), true)
        .await;
    let mut browser = Browser::new(&app);
    browser.sign_in("grace@example.com").await;
    browser.open("/account/totp/setup").await;
    let token = browser.csrf.clone();
    for (csrf, site) in [
        ("", "same-origin"),
        ("forged", "same-origin"),
        (&token, "cross-site"),
    ] {
        let response = browser
            .client
            .post(app.url("/account/totp/setup"))
            .header("sec-fetch-site", site)
            .form(&[("csrf", csrf), ("code", "123456")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{csrf:?} {site}");
    }
}

#[tokio::test]
async fn the_print_script_is_allowed_by_the_policy() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let response = app.get(&app.client(), "/static/print.js").await;
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/javascript"));
    assert!(response.text().await.unwrap().contains("window.print()"));
}
