//! The invitation link of a recipient without an account, and the administrator's new user
//! whose temporary password is sent as a secure message.

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::Value;
use twofold_core::accounts::NewAccount;

use super::*;
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(an_invitation_opens_the_message_after_a_password_and_an_authenticator);

async fn an_invitation_opens_the_message_after_a_password_and_an_authenticator(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut alice = Browser::new(&app);
    alice.enroll("alice@example.com").await;
    alice
        .send_message("dana@example.com", "Welcome pack", "7")
        .await;
    let (path, token) = only_link(&app, "dana@example.com");
    let token = token.expect("an invitation for an address without an account");
    let link = format!("{path}?invitation={token}");

    // Opening the link (twice, as a mail scanner and then the person) spends nothing.
    let mut dana = Browser::new(&app);
    for _ in 0..2 {
        let landing = dana.open(&link).await;
        assert_eq!(landing.status, StatusCode::OK);
        assert!(landing.has("You have a secure message"));
        assert!(landing.has("<strong id=\"invitation-email\">dana@example.com</strong>"));
        assert!(landing.has("choose a password") && landing.has("two-factor sign-in"));
        assert!(landing.has(&format!("action=\"{path}/invitation\"")));
        assert!(!landing.has("4417-plum"));
    }
    let accepted = dana
        .submit(&format!("{path}/invitation"), &[("token", &token)])
        .await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&accepted), "/login/password");
    assert!(return_cookie(&accepted).is_some());
    // The link works once.
    let again = Page::from(
        dana.submit(&format!("{path}/invitation"), &[("token", &token)])
            .await,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.has("This link is no longer valid") && again.has("href=\"/login\""));
    let other = Browser::new(&app).open(&link).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(other.has("This link is no longer valid"));

    // A password of their own, then an authenticator, then the message.
    dana.open("/login/password").await;
    let chosen = dana
        .submit(
            "/login/password",
            &[("new_password", "a brand new passphrase for dana")],
        )
        .await;
    assert_eq!(location(&chosen), "/login/enroll");
    assert_eq!(dana.redirect_of(&path).await, "/login/enroll", "not yet");
    dana.set_up_authenticator().await;
    assert_eq!(dana.redirect_of("/account").await, path);
    let read = dana.open(&path).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.has("Welcome pack") && read.has("Door code 4417-plum"));
}

/// An administrator signed in through the pages with an authenticator.
async fn signed_in_admin(app: &TestApp) -> Browser<'_> {
    let password = SecretString::from(PASSWORD);
    app.service
        .create_account(
            None,
            NewAccount {
                email: "ada@example.com",
                password: Some(&password),
                is_admin: true,
                require_2fa: false,
            },
        )
        .await
        .unwrap();
    let mut admin = Browser::new(app);
    assert_eq!(
        location(&admin.sign_in("ada@example.com").await),
        "/login/enroll"
    );
    admin.set_up_authenticator().await;
    admin
}

#[tokio::test]
async fn an_administrator_sends_the_temporary_password_as_a_message() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut admin = signed_in_admin(&app).await;
    let form = admin.open("/admin/users/new").await;
    assert!(form.has(
        "<input type=\"checkbox\" id=\"by_message\" name=\"by_message\" value=\"yes\" aria-describedby"
    ), "not ticked by default: seed 004 shows the password");
    assert!(form.has("Send the temporary password to the user as a secure message"));
    let created = admin
        .submit_page(
            "/admin/users/new",
            &[
                ("email", "nora@example.com"),
                ("two_factor", "no"),
                ("by_message", "yes"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.html);
    assert!(created.has("went to that address as a secure message"));
    assert!(
        !created.has("temporary-password"),
        "the administrator never sees it"
    );
    // The same address again: refused, and the box stays ticked.
    let taken = admin
        .submit_page(
            "/admin/users/new",
            &[
                ("email", "nora@example.com"),
                ("two_factor", "no"),
                ("by_message", "yes"),
            ],
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert!(taken.has("name=\"by_message\" value=\"yes\" checked"));

    let (path, token) = only_link(&app, "nora@example.com");
    let token = token.expect("an invitation");
    let mut nora = Browser::new(&app);
    let landing = nora.open(&format!("{path}?invitation={token}")).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert!(
        landing.has("you first set up two-factor sign-in") && !landing.has("choose a password")
    );
    let accepted = nora
        .submit(&format!("{path}/invitation"), &[("token", &token)])
        .await;
    assert_eq!(location(&accepted), "/login/enroll");
    nora.set_up_authenticator().await;
    assert_eq!(nora.redirect_of("/account").await, path);
    let read = nora.open(&path).await;
    assert_eq!(read.status, StatusCode::OK);
    let password = between(&read.html, "Temporary password: ", "\n").to_owned();
    assert_eq!(password.len(), 20, "{password}");

    let step: Value = app
        .login(&app.client(), "nora@example.com", &password)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(step["state"], "password_change_required", "{step}");
}
