//! Reading: a reader without a second factor, someone else, signing in on the way, expiry,
//! and the return cookie that only ever holds a message's address.

use std::sync::Arc;

use reqwest::cookie::Jar;
use reqwest::{Client, StatusCode};
use uuid::Uuid;

use super::*;
use crate::helpers::{Backend, PASSWORD, spawn_app};
use crate::totp::independent_totp;

#[tokio::test]
async fn a_reader_without_two_factor_sets_it_up_and_comes_back() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut alice = Browser::new(&app);
    alice.enroll("alice@example.com").await;
    let mut eve = Browser::new(&app);
    let (_, _) = eve.enroll("eve@example.com").await;
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let path = alice
        .send_message("bob@example.com", "Your access", "7")
        .await;

    // Someone else: there is no such message.
    let other = eve.open(&path).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(!other.has("4417-plum") && !other.has("Your access"));

    let mut bob = Browser::new(&app);
    assert_eq!(location(&bob.sign_in("bob@example.com").await), "/account");
    let response = app.get(&bob.client, &path).await;
    assert!(
        return_cookie(&response).is_some(),
        "the way back is remembered"
    );
    let refused = Page::from(response).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.has("Set up two-factor authentication to read this message"));
    assert!(refused.has("<a href=\"/account/two-factor\">"));
    assert!(!refused.has("4417-plum"));
    // Until a factor is set up, the account page says why instead of going round in circles.
    let account = bob.open("/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.has("A secure message is waiting for you."));

    bob.open("/account/two-factor").await;
    bob.set_up_authenticator().await;
    assert_eq!(bob.redirect_of("/account").await, path);
    let read = bob.open(&path).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.has("Door code 4417-plum"));
    assert_eq!(
        bob.open("/account").await.status,
        StatusCode::OK,
        "the cookie is spent"
    );
}

#[tokio::test]
async fn signing_in_leads_to_the_message_and_an_expired_one_is_erased() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut alice = Browser::new(&app);
    alice.enroll("alice@example.com").await;
    let (secret, _) = Browser::new(&app).enroll("bob@example.com").await;
    let path = alice
        .send_message("bob@example.com", "Short-lived", "1")
        .await;

    // Not signed in: to the sign-in page, and back to the message afterwards.
    let stranger = Browser::new(&app);
    let response = app.get(&stranger.client, &path).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    assert_eq!(
        return_cookie(&response).unwrap(),
        format!("twofold_return={path}; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600")
    );
    let mut bob = Browser {
        client: stranger.client,
        ..Browser::new(&app)
    };
    app.clock.advance_seconds(30);
    assert_eq!(
        location(&bob.sign_in("bob@example.com").await),
        "/login/verify"
    );
    let verified = bob
        .verify("totp", &independent_totp(&secret, app.now()))
        .await;
    assert_eq!(location(&verified), "/account");
    assert_eq!(bob.redirect_of("/account").await, path);
    let read = bob.open(&path).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.has("Short-lived"));

    // A day later it is gone, and its subject with it.
    app.clock.advance_seconds(24 * 3600 + 1);
    let bob = signed_in(&app, "bob@example.com", &secret).await;
    let mut bob = bob;
    let gone = bob.open(&path).await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert!(gone.has("This message has expired") && gone.has("Its content is erased"));
    let inbox = bob.open("/messages").await;
    assert!(!inbox.has("Short-lived"));
    assert!(inbox.has(">expired<"));
    let attachment = format!("{path}/attachments/{}", Uuid::new_v4());
    assert_eq!(
        app.get(&bob.client, &attachment).await.status(),
        StatusCode::GONE
    );
}

#[tokio::test]
async fn the_return_cookie_holds_only_a_message_address() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let jar = Arc::new(Jar::default());
    let client = Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut erin = Browser {
        client,
        ..Browser::new(&app)
    };
    erin.enroll("erin@example.com").await;
    let origin: reqwest::Url = app.url("/").parse().unwrap();
    let id = Uuid::new_v4();
    for planted in [
        "//evil.example".to_owned(),
        "/account".to_owned(),
        "https://evil.example/".to_owned(),
        format!("//evil.example/messages/{id}"),
        format!("/messages/{}", id.to_string().to_uppercase()),
        format!("/messages/{id}/delete"),
        "/messages/new".to_owned(),
    ] {
        jar.add_cookie_str(&format!("twofold_return={planted}; Path=/"), &origin);
        let account = erin.open("/account").await;
        assert_eq!(account.status, StatusCode::OK, "{planted} was followed");
        assert!(!account.has("A secure message is waiting"), "{planted}");
    }
    jar.add_cookie_str(&format!("twofold_return=/messages/{id}; Path=/"), &origin);
    let response = app.get(&erin.client, "/account").await;
    assert_eq!(location(&response), format!("/messages/{id}"));
    assert!(return_cookie(&response).unwrap().contains("Max-Age=0"));

    // Nothing but a message's address is written either.
    let stranger = Browser::new(&app);
    for path in ["/messages/%2F%2Fevil.example", "/messages/account"] {
        let response = app.get(&stranger.client, path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(return_cookie(&response).is_none(), "{path}");
    }
}
