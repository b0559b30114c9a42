//! Recipients without an account: the invitation link (single use, only while nobody has
//! signed in to the account), choosing a password, enrolling, then reading; and the
//! administrator's one-step account whose temporary password is the message.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::link_in;
use crate::codes::json_of;
use crate::helpers::{Backend, PASSWORD, assert_error, spawn_app};
use crate::on_both_backends;
use crate::totp::independent_totp;

const NEW_PASSWORD: &str = "a brand new passphrase for dana";

async fn an_invited_recipient_chooses_a_password_and_enrolls_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    let id = app
        .send_message(
            &alice,
            json!({"to": "Dana@Example.com", "subject": "Welcome pack", "body": "door code 4417"}),
        )
        .await;
    let notices = app.message_notices("dana@example.com");
    assert_eq!(notices.len(), 1);
    let (link, token) = link_in(&notices[0]);
    assert!(
        link.starts_with(&app.url(&format!("/messages/{id}?invitation="))),
        "{link}"
    );
    let token = token.unwrap();
    assert!(!notices[0].to_string().contains("4417"));
    let dana = app.service.find_user("dana@example.com").await.unwrap();
    assert!(dana.require_2fa && dana.password_change_required && !dana.email_verified);

    // Two uses of one link at once: exactly one session.
    let (first, second) = (app.client(), app.client());
    let body = json!({"token": token});
    let (a, b) = tokio::join!(
        app.post(&first, "/api/v1/invitations/accept", body.clone()),
        app.post(&second, "/api/v1/invitations/accept", body.clone())
    );
    let statuses = [a.status(), b.status()];
    assert!(
        statuses.contains(&StatusCode::OK) && statuses.contains(&StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
    let (client, accepted) = if a.status() == StatusCode::OK {
        (first, a)
    } else {
        (second, b)
    };
    let step: Value = accepted.json().await.unwrap();
    assert_eq!(step["state"], "password_change_required");
    assert_eq!(step["message_id"], id.as_str());
    assert_error(
        app.post(&app.client(), "/api/v1/invitations/accept", body)
            .await,
        StatusCode::NOT_FOUND,
        "invitation_invalid",
    )
    .await;
    assert_error(
        app.post(
            &app.client(),
            "/api/v1/invitations/accept",
            json!({"token": "junk"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "invitation_invalid",
    )
    .await;
    assert!(
        app.service
            .find_user("dana@example.com")
            .await
            .unwrap()
            .email_verified
    );

    // Nothing is shown before the password and the second factor.
    assert_error(
        app.get(&client, &format!("/api/v1/messages/{id}")).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let step = json_of(
        app.post(
            &client,
            "/api/v1/login/password",
            json!({"new_password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "enrollment_required");
    assert_error(
        app.get(&client, &format!("/api/v1/messages/{id}")).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    app.add_totp(&client).await;
    let read = json_of(
        app.get(&client, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["body"], "door code 4417");

    // A later message to her has a plain link: she signs in by herself now.
    app.send_message(
        &alice,
        json!({"to": "dana@example.com", "subject": "Second", "body": "more"}),
    )
    .await;
    let (_, token) = link_in(app.message_notices("dana@example.com").last().unwrap());
    assert_eq!(token, None);
}

async fn a_link_stops_working_once_the_account_is_in_use(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    app.send_message(
        &alice,
        json!({"to": "erin@example.com", "subject": "One", "body": "first"}),
    )
    .await;
    app.send_message(
        &alice,
        json!({"to": "erin@example.com", "subject": "Two", "body": "second"}),
    )
    .await;
    let notices = app.message_notices("erin@example.com");
    let (_, first) = link_in(&notices[0]);
    let (_, second) = link_in(&notices[1]);
    let client = app.client();
    json_of(
        app.post(
            &client,
            "/api/v1/invitations/accept",
            json!({"token": first.unwrap()}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // Using one link retires the person's other links.
    assert_error(
        app.post(
            &app.client(),
            "/api/v1/invitations/accept",
            json!({"token": second.unwrap()}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "invitation_invalid",
    )
    .await;
}

async fn an_administrator_sends_the_temporary_password_as_a_message(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let created = json_of(
        app.post(
            &admin.client,
            "/api/v1/admin/users",
            json!({"email": "frank@example.com", "deliver_by_message": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(created.get("temporary_password").is_none(), "{created}");
    let message_id = created["message_id"].as_str().unwrap().to_owned();
    assert_error(
        app.post(
            &admin.client,
            "/api/v1/admin/users",
            json!({"email": "gina@example.com", "deliver_by_message": true, "password": PASSWORD}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    assert_error(
        app.post(
            &admin.client,
            "/api/v1/admin/users",
            json!({"email": "frank@example.com", "deliver_by_message": true}),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;

    let notices = app.message_notices("frank@example.com");
    assert_eq!(notices.len(), 1, "one email: the message's");
    let (_, token) = link_in(&notices[0]);
    let client = app.client();
    let step = json_of(
        app.post(
            &client,
            "/api/v1/invitations/accept",
            json!({"token": token.unwrap()}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // The password is in the message: the second factor comes first.
    assert_eq!(step["state"], "enrollment_required");
    let enrollment = json_of(
        app.post(&client, "/api/v1/account/totp", json!({})).await,
        StatusCode::OK,
    )
    .await;
    let secret = enrollment["secret"].as_str().unwrap();
    json_of(
        app.post(
            &client,
            "/api/v1/account/totp/confirm",
            json!({"code": independent_totp(secret, app.now())}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let read = json_of(
        app.get(&client, &format!("/api/v1/messages/{message_id}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["from"], "root@example.com");
    let body = read["body"].as_str().unwrap();
    let password = body
        .lines()
        .find_map(|line| line.strip_prefix("Temporary password: "))
        .unwrap_or_else(|| panic!("no password in {body}"));
    assert!(password.len() >= 12);
    // It is the account's password, and still a temporary one.
    let step = json_of(
        app.login(&app.client(), "frank@example.com", password)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "password_change_required");
}

/// An account an administrator made (its temporary password handed over by them) is never
/// opened by a message's link: the mailbox alone must not take it over. And a deleted
/// message's link opens nothing.
async fn links_invite_only_accounts_a_message_made(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    let temporary = app
        .create_user("pending@example.com", None, true)
        .await
        .unwrap();
    app.send_message(
        &alice,
        json!({"to": "pending@example.com", "subject": "Hello", "body": "text"}),
    )
    .await;
    let (_, token) = link_in(&app.message_notices("pending@example.com")[0]);
    assert_eq!(token, None, "a plain link");
    let step = json_of(
        app.login(&app.client(), "pending@example.com", &temporary)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        step["state"], "password_change_required",
        "the handed-over password still works"
    );

    let id = app
        .send_message(
            &alice,
            json!({"to": "typo@example.com", "subject": "Oops", "body": "wrong address"}),
        )
        .await;
    let (_, token) = link_in(&app.message_notices("typo@example.com")[0]);
    assert_eq!(
        app.delete_message(&alice, &id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        app.post(
            &app.client(),
            "/api/v1/invitations/accept",
            json!({"token": token.unwrap()}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "invitation_invalid",
    )
    .await;

    // A draft to a new address invites it when it is sent.
    let draft = app
        .send_message(
            &alice,
            json!({"to": "later@example.com", "subject": "Draft", "body": "text", "draft": true}),
        )
        .await;
    assert!(app.message_notices("later@example.com").is_empty());
    app.post(&alice, &format!("/api/v1/messages/{draft}/send"), json!({}))
        .await;
    let (_, token) = link_in(&app.message_notices("later@example.com")[0]);
    assert!(token.is_some(), "the sent draft carries the invitation");
}

on_both_backends!(
    links_invite_only_accounts_a_message_made,
    an_invited_recipient_chooses_a_password_and_enrolls_first,
    a_link_stops_working_once_the_account_is_in_use,
    an_administrator_sends_the_temporary_password_as_a_message,
);
