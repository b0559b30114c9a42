//! Attachments: streamed in (several chunks), out byte for byte, only to the recipient, 413
//! past the limit, erased with the message, and never in the database in clear.

use reqwest::StatusCode;
use serde_json::json;

use super::file_bytes;
use crate::codes::json_of;
use crate::helpers::{Backend, Options, TestApp, assert_error, spawn_app, spawn_app_with};
use crate::on_both_backends;

/// More than two chunks of 256 KiB, not a multiple of the chunk size.
const LARGE: usize = 600 * 1024 + 17;

async fn download(
    app: &TestApp,
    client: &reqwest::Client,
    id: &str,
    aid: &str,
) -> reqwest::Response {
    app.get(client, &format!("/api/v1/messages/{id}/attachments/{aid}"))
        .await
}

async fn files_go_in_and_out_whole(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    let (bob, _, _) = app.enroll("bob@example.com").await;
    let (eve, _, _) = app.enroll("eve@example.com").await;
    let id = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Documents", "body": "See the files.", "draft": true}),
        )
        .await;
    assert!(
        app.message_notices("bob@example.com").is_empty(),
        "a draft is not sent"
    );
    assert_error(
        app.get(&bob, &format!("/api/v1/messages/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let large = file_bytes(LARGE, 1);
    let small = b"%PDF-1.7 tiny".to_vec();
    let empty: Vec<u8> = Vec::new();
    let uploaded = json_of(
        app.upload(
            &alice,
            &id,
            &[
                ("contract ü.pdf", &large),
                ("notes.txt", &small),
                ("empty.bin", &empty),
            ],
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(uploaded["attachments"].as_array().unwrap().len(), 3);
    assert_eq!(uploaded["size"], LARGE);
    // Only the sender adds files, and only as multipart marked for this API.
    assert_error(
        app.upload(&bob, &id, &[("x.txt", b"x")]).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let unmarked = alice
        .post(app.url(&format!("/api/v1/messages/{id}/attachments")))
        .header("content-type", super::multipart(&[("x", b"x")]).0)
        .body(super::multipart(&[("x", b"x")]).1)
        .send()
        .await
        .unwrap();
    assert_error(
        unmarked,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let sent = app
        .post(&alice, &format!("/api/v1/messages/{id}/send"), json!({}))
        .await;
    assert_eq!(sent.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.post(&alice, &format!("/api/v1/messages/{id}/send"), json!({}))
            .await,
        StatusCode::CONFLICT,
        "already_sent",
    )
    .await;
    let notice = &app.message_notices("bob@example.com")[0];
    assert!(
        !notice.to_string().contains("contract"),
        "file names stay out of email"
    );

    let read = json_of(
        app.get(&bob, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await;
    let attachments = read["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 3);
    let named = |name: &str| {
        attachments
            .iter()
            .find(|attachment| attachment["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {attachments:?}"))
    };
    assert_eq!(named("contract ü.pdf")["size"], LARGE);
    assert_eq!(named("notes.txt")["size"], small.len());
    let aid = named("contract ü.pdf")["id"].as_str().unwrap();
    let response = download(&app, &bob, &id, aid).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''contract%20%C3%BC%2Epdf"),
        "{disposition}"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), large.as_slice());
    let empty_id = named("empty.bin")["id"].as_str().unwrap();
    let response = download(&app, &bob, &id, empty_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.unwrap().is_empty());
    for client in [&eve, &alice] {
        assert_error(
            download(&app, client, &id, aid).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }

    // Attachments are erased with the message.
    assert_eq!(
        app.delete_message(&bob, &id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        download(&app, &bob, &id, aid).await,
        StatusCode::GONE,
        "message_deleted",
    )
    .await;
    assert!(
        app.service
            .stores()
            .messages
            .attachments(id.parse().unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.service
            .stores()
            .messages
            .attachment_chunk(aid.parse().unwrap(), 0)
            .await
            .unwrap(),
        None
    );
}

async fn a_file_past_the_limit_is_refused(backend: Backend) {
    let options = Options {
        attachment_limit_bytes: 300 * 1024,
        ..Options::default()
    };
    let Some(app) = spawn_app_with(backend, options).await else {
        return;
    };
    let (alice, _, _) = app.enroll("alice@example.com").await;
    let (bob, _, _) = app.enroll("bob@example.com").await;
    let id = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Big", "body": "A big file follows."}),
        )
        .await;
    let too_big = file_bytes(300 * 1024 + 1, 2);
    assert_error(
        app.upload(&alice, &id, &[("big.bin", &too_big)]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let at_limit = file_bytes(300 * 1024, 3);
    json_of(
        app.upload(&alice, &id, &[("fits.bin", &at_limit)]).await,
        StatusCode::CREATED,
    )
    .await;
    let read = json_of(
        app.get(&bob, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<&str> = read["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attachment| attachment["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["fits.bin"],
        "the refused upload left nothing behind"
    );
}

/// The database file and everything in the data directory hold neither the body nor the file
/// in clear (SQLite; on PostgreSQL the same rows hold the same ciphertexts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_stored_in_clear() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let (alice, _, _) = app.enroll("alice@example.com").await;
    app.enroll("bob@example.com").await;
    let body = "The vault code is 7cc1-marmot-0451-quince";
    let file = b"attachment plaintext: heron-3321-lattice-7788".repeat(1000);
    let id = app
        .send_message(
            &alice,
            json!({"to": "bob@example.com", "subject": "Vault", "body": body}),
        )
        .await;
    json_of(
        app.upload(&alice, &id, &[("vault-codes.txt", &file)]).await,
        StatusCode::CREATED,
    )
    .await;
    let path = app
        .database
        .url()
        .trim_start_matches("sqlite://")
        .to_owned();
    let directory = std::path::Path::new(&path).parent().unwrap().to_owned();
    let mut checked = 0;
    let entries = std::fs::read_dir(&directory)
        .unwrap()
        .chain(std::fs::read_dir(&app.outbox_dir).unwrap());
    for entry in entries {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in [
            "7cc1-marmot-0451-quince".as_bytes(),
            b"heron-3321-lattice-7788",
            b"vault-codes.txt",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|window| window == needle),
                "found {:?} in the data directory",
                String::from_utf8_lossy(needle)
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "the database, its log and the notice were checked"
    );
}

on_both_backends!(files_go_in_and_out_whole, a_file_past_the_limit_is_refused);
