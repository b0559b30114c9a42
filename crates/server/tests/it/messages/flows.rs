//! Sending and reading: the rules of who sees what, the email, receipts, expiry and deletion.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;
use twofold_core::store::{AuditFilter, ErasedReason};
use uuid::Uuid;

use super::link_in;
use crate::codes::json_of;
use crate::helpers::{Backend, PASSWORD, TestApp, assert_error, spawn_app};
use crate::on_both_backends;

const SECRET_BODY: &str = "Back Office temporary password: Vk7-qr2W-plum-9931";

async fn kinds_about(app: &TestApp, message_id: &str) -> Vec<String> {
    let filter = AuditFilter {
        limit: 500,
        ..AuditFilter::default()
    };
    app.service
        .audit_log(&filter)
        .await
        .unwrap()
        .into_iter()
        .filter(|record| {
            serde_json::from_str::<Value>(&record.event.detail).unwrap()["message_id"] == message_id
        })
        .rev()
        .map(|record| record.event.kind)
        .collect()
}

async fn only_the_recipient_reads(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    let (bob, _, _) = app.enroll("bob@example.com").await;
    let (eve, _, _) = app.enroll("eve@example.com").await;
    let id = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Your access", "body": SECRET_BODY}),
        )
        .await;

    // The email names the sender and the subject and links to the message, nothing more.
    let notices = app.message_notices("bob@example.com");
    assert_eq!(notices.len(), 1);
    let notice = &notices[0];
    let subject = notice["subject"].as_str().unwrap();
    assert!(subject.contains("alice@example.com") && subject.contains("Your access"));
    let (link, token) = link_in(notice);
    assert_eq!(link, app.url(&format!("/messages/{id}")));
    assert_eq!(token, None, "bob has an account of his own");
    assert!(!notice.to_string().contains("Vk7-qr2W"), "{notice}");

    let read = json_of(
        app.get(&bob, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["id"], id.as_str());
    assert_eq!(read["from"], "alice@example.com");
    assert_eq!(read["subject"], "Your access");
    assert_eq!(read["body"], SECRET_BODY);
    assert_eq!(read["attachments"], json!([]));
    assert!(read["expires_at"].as_str().is_some());

    // Everyone else, the sender included, is told there is no such message.
    for client in [&eve, &alice] {
        assert_error(
            app.get(client, &format!("/api/v1/messages/{id}")).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    assert_error(
        app.get(&bob, &format!("/api/v1/messages/{}", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&bob, "/api/v1/messages/not-a-uuid").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get(&app.client(), &format!("/api/v1/messages/{id}"))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // The read receipt: in the sender's list and by email, once.
    app.get(&bob, &format!("/api/v1/messages/{id}")).await;
    let listed = json_of(app.get(&alice, "/api/v1/messages").await, StatusCode::OK).await;
    let sent = &listed["messages"][0];
    assert_eq!(sent["direction"], "sent");
    assert_eq!(sent["status"], "read");
    assert!(sent["read_at"].as_str().is_some(), "{sent}");
    assert!(sent.get("body").is_none());
    let receipts: Vec<Value> = app
        .messages_to("alice@example.com")
        .into_iter()
        .filter(|message| message["subject"] == "Read: Your access")
        .collect();
    assert_eq!(receipts.len(), 1, "one receipt for two readings");
    let inbox = json_of(app.get(&bob, "/api/v1/messages").await, StatusCode::OK).await;
    assert_eq!(inbox["messages"][0]["direction"], "received");
    assert_eq!(inbox["messages"][0]["from"], "alice@example.com");
    assert_eq!(
        kinds_about(&app, &id).await,
        ["message_sent", "message_read"]
    );

    // A draft is recorded once, when it is sent.
    let draft = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Later", "body": "text", "draft": true}),
        )
        .await;
    assert!(kinds_about(&app, &draft).await.is_empty());
    app.post(&alice, &format!("/api/v1/messages/{draft}/send"), json!({}))
        .await;
    assert_eq!(kinds_about(&app, &draft).await, ["message_sent"]);
}

async fn a_recipient_without_a_second_factor_must_set_one_up(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    app.create_user("carol@example.com", Some(PASSWORD), false)
        .await;
    let carol = app.client();
    let state = json_of(
        app.login(&carol, "carol@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(state["state"], "authenticated");
    let id = app
        .send_message(
            &alice,
            json!({"to": "carol@example.com", "subject": "For you", "body": SECRET_BODY}),
        )
        .await;
    assert_error(
        app.get(&carol, &format!("/api/v1/messages/{id}")).await,
        StatusCode::FORBIDDEN,
        "two_factor_required",
    )
    .await;
    // Once she enrolls, the same session reads it.
    app.add_totp(&carol).await;
    let read = json_of(
        app.get(&carol, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["body"], SECRET_BODY);
}

async fn expiry_erases_the_content(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, alice_secret, _) = app.enroll("alice@example.com").await;
    let (_, bob_secret, _) = app.enroll("bob@example.com").await;
    let opened = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Short", "body": SECRET_BODY, "expires_in_days": 1}),
        )
        .await;
    let unread = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Never opened", "body": SECRET_BODY, "expires_in_days": 2}),
        )
        .await;
    app.clock
        .advance_seconds((Duration::days(1) + Duration::seconds(1)).whole_seconds());
    let bob = app.sign_in_totp("bob@example.com", &bob_secret).await;
    // A reading after the expiry is refused and erases at once.
    assert_error(
        app.get(&bob, &format!("/api/v1/messages/{opened}")).await,
        StatusCode::GONE,
        "message_expired",
    )
    .await;
    let store = &app.service.stores().messages;
    let record = store
        .message(opened.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.content, None);
    assert_eq!(
        record.erased.map(|(reason, _)| reason),
        Some(ErasedReason::Expired)
    );
    // The periodic purge erases the one nobody opened.
    app.clock
        .advance_seconds((Duration::days(1)).whole_seconds());
    assert_eq!(app.service.expire_messages().await.unwrap(), 1);
    let record = store
        .message(unread.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.content, None);
    assert_eq!(app.service.expire_messages().await.unwrap(), 0);
    let alice = app.sign_in_totp("alice@example.com", &alice_secret).await;
    let listed = json_of(app.get(&alice, "/api/v1/messages").await, StatusCode::OK).await;
    for message in listed["messages"].as_array().unwrap() {
        assert_eq!(message["status"], "expired");
        assert_eq!(message["subject"], Value::Null);
    }
    assert_eq!(
        kinds_about(&app, &opened).await,
        ["message_sent", "message_expired"]
    );
    assert_eq!(
        kinds_about(&app, &unread).await,
        ["message_sent", "message_expired"]
    );
}

async fn deleting_erases_for_both(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    let (bob, _, _) = app.enroll("bob@example.com").await;
    let (eve, _, _) = app.enroll("eve@example.com").await;
    let id = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Oops", "body": SECRET_BODY}),
        )
        .await;
    assert_error(
        app.delete_message(&eve, &id).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.delete_message(&alice, &id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        app.get(&bob, &format!("/api/v1/messages/{id}")).await,
        StatusCode::GONE,
        "message_deleted",
    )
    .await;
    assert_error(
        app.delete_message(&bob, &id).await,
        StatusCode::GONE,
        "message_deleted",
    )
    .await;
    let record = app
        .service
        .stores()
        .messages
        .message(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.content, None);
}

async fn delete_after_read_gives_a_short_grace(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    let (bob, _, _) = app.enroll("bob@example.com").await;
    let id = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Burn", "body": SECRET_BODY, "delete_after_read": true}),
        )
        .await;
    // A link checker's HEAD is no reading: no receipt, no clock started.
    let head = bob
        .head(app.url(&format!("/api/v1/messages/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
    let listed = json_of(app.get(&alice, "/api/v1/messages").await, StatusCode::OK).await;
    assert_eq!(listed["messages"][0]["status"], "sent");
    let first = json_of(
        app.get(&bob, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await;
    let expires = time::OffsetDateTime::parse(
        first["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires, app.service.clock().now() + Duration::minutes(15));
    app.clock
        .advance_seconds((Duration::minutes(14)).whole_seconds());
    json_of(
        app.get(&bob, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await;
    app.clock
        .advance_seconds((Duration::minutes(2)).whole_seconds());
    assert_error(
        app.get(&bob, &format!("/api/v1/messages/{id}")).await,
        StatusCode::GONE,
        "message_expired",
    )
    .await;
}

async fn bad_messages_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    let cases = [
        (
            json!({"to": "not an address", "subject": "s", "body": "b"}),
            "invalid_email",
        ),
        (
            json!({"to": [], "subject": "s", "body": "b"}),
            "invalid_message",
        ),
        (
            json!({"to": "b@example.com", "subject": " ", "body": "b"}),
            "invalid_message",
        ),
        (
            json!({"to": "b@example.com", "subject": "a\r\nBcc: x@evil.example", "body": "b"}),
            "invalid_message",
        ),
        (
            json!({"to": "b@example.com", "subject": "s", "body": ""}),
            "invalid_message",
        ),
        (
            json!({"to": "b@example.com", "subject": "s", "body": "b", "expires_in_days": 0}),
            "invalid_message",
        ),
        (
            json!({"to": "b@example.com", "subject": "s", "body": "b", "expires_in_days": 91}),
            "invalid_message",
        ),
        (
            json!({"to": "b@example.com", "subject": "x".repeat(201), "body": "b"}),
            "invalid_message",
        ),
        (
            json!({"to": "b@example.com", "subject": "s", "body": "b", "extra": 1}),
            "invalid_body",
        ),
        (
            json!({"to": vec!["b@example.com"; 21], "subject": "s", "body": "b"}),
            "invalid_message",
        ),
        (
            json!({"to": "b@example.com", "subject": "invoice \u{202E}fdp.exe", "body": "b"}),
            "invalid_message",
        ),
    ];
    for (body, code) in cases {
        assert_error(
            app.post(&alice, "/api/v1/messages", body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    assert!(
        app.find_user_opt("b@example.com").await.is_none(),
        "no one invited"
    );
}

async fn a_sender_is_limited_per_hour(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, alice_secret, _) = app.enroll("alice@example.com").await;
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let twenty: Vec<&str> = (0..20).map(|_| "bob@example.com").collect();
    // Repeated addresses count once; twenty different ones count twenty.
    let addresses: Vec<String> = (0..20).map(|n| format!("r{n}@example.com")).collect();
    for _ in 0..5 {
        app.send_message(
            &alice,
            json!({"to": addresses, "subject": "Batch", "body": "text"}),
        )
        .await;
    }
    let refused = app
        .post(
            &alice,
            "/api/v1/messages",
            json!({"to": twenty, "subject": "One more", "body": "text"}),
        )
        .await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after));
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "too_many_messages").await;
    app.clock
        .advance_seconds((Duration::hours(1) + Duration::seconds(1)).whole_seconds());
    let alice = app.sign_in_totp("alice@example.com", &alice_secret).await;
    app.send_message(
        &alice,
        json!({"to": "bob@example.com", "subject": "Later", "body": "text"}),
    )
    .await;
}

impl TestApp {
    async fn find_user_opt(&self, email: &str) -> Option<String> {
        self.service
            .find_user(email)
            .await
            .ok()
            .map(|user| user.id.to_string())
    }
}

on_both_backends!(
    only_the_recipient_reads,
    a_recipient_without_a_second_factor_must_set_one_up,
    expiry_erases_the_content,
    deleting_erases_for_both,
    delete_after_read_gives_a_short_grace,
    bad_messages_are_refused,
    a_sender_is_limited_per_hour,
);
