//! Secure messages through the API: who may read (the recipient with a second factor: 200;
//! without one: 403; anyone else: 404), the link-only email, expiry and deletion erasing the
//! content (410), attachments streamed in and out, invitations, and the administrator's
//! one-step account whose temporary password travels as a secure message.

mod attachments;
mod flows;
mod invitations;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;

impl TestApp {
    /// Sends a message from `client`'s user; returns its id.
    pub async fn send_message(&self, client: &Client, body: Value) -> String {
        let response = self.post(client, "/api/v1/messages", body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let created: Value = response.json().await.unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    /// The emails to `to` whose subject starts "Secure message from".
    pub fn message_notices(&self, to: &str) -> Vec<Value> {
        self.messages_to(to)
            .into_iter()
            .filter(|message| {
                message["subject"]
                    .as_str()
                    .is_some_and(|subject| subject.starts_with("Secure message from"))
            })
            .collect()
    }

    /// A new client signed in with the password and a code of the authenticator `secret`.
    pub async fn sign_in_totp(&self, email: &str, secret: &str) -> Client {
        let client = self.at_second_factor(email).await;
        let code = crate::totp::independent_totp(secret, self.now());
        let verified = self
            .post(
                &client,
                "/api/v1/login/verify",
                json!({"method": "totp", "code": code}),
            )
            .await;
        assert_eq!(verified.status(), StatusCode::OK);
        client
    }

    pub async fn delete_message(&self, client: &Client, id: &str) -> Response {
        client
            .delete(self.url(&format!("/api/v1/messages/{id}")))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
    }

    /// Uploads files to message `id` as one multipart body marked `X-Twofold-Request: 1`.
    pub async fn upload(&self, client: &Client, id: &str, files: &[(&str, &[u8])]) -> Response {
        let (content_type, body) = multipart(files);
        client
            .post(self.url(&format!("/api/v1/messages/{id}/attachments")))
            .header("content-type", content_type)
            .header("x-twofold-request", "1")
            .body(body)
            .send()
            .await
            .unwrap()
    }
}

/// A `multipart/form-data` body with one `file` part per file.
pub fn multipart(files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "twofold-test-boundary-7d3f0a";
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The link in a notice, and the invitation token in it if any.
pub fn link_in(notice: &Value) -> (String, Option<String>) {
    let body = notice["body"].as_str().unwrap();
    let start = body.find("http").expect("a link in the notice");
    let link: String = body[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let token = link
        .split_once("?invitation=")
        .map(|(_, token)| token.to_owned());
    (link, token)
}

/// Bytes that are not text and not repetitive, so that they cannot turn up by chance.
pub fn file_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}
