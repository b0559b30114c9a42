//! Codes by email and text message through the real binary and real transports: a loopback
//! SMTP server receives the verification email, a loopback HTTP server playing Twilio's
//! Messages API receives the texts (and the test checks the exact request it would get), and
//! the codes read from what they received verify the address, enroll the phone and sign in.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::on_both_backends;
use crate::process::{PASSWORD, installation, stderr};
use crate::smtp::{free_port, start};

on_both_backends!(codes_travel_by_smtp_and_the_sms_gateway);

/// One HTTP request as the gateway stand-in received it.
struct GatewayRequest {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl GatewayRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect()
    }
}

/// A stand-in for Twilio: answers every request 201 and hands it to the channel.
async fn start_gateway() -> (u16, mpsc::UnboundedReceiver<GatewayRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, requests) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let read = stream.read(&mut chunk).await.unwrap();
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end;
                    }
                };
                let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap().to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|line| line.split_once(':'))
                    .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, value)| value.parse().unwrap());
                let mut body = buffer[head_end + 4..].to_vec();
                while body.len() < length {
                    let read = stream.read(&mut chunk).await.unwrap();
                    body.extend_from_slice(&chunk[..read]);
                }
                let answer = "{\"sid\": \"SM1\", \"status\": \"queued\"}";
                let response = format!(
                    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                stream.write_all(response.as_bytes()).await.unwrap();
                let _ = sender.send(GatewayRequest {
                    request_line,
                    headers,
                    body: String::from_utf8(body).unwrap(),
                });
            });
        }
    });
    (port, requests)
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(Duration::from_secs(30), receiver.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within 30 s"))
        .unwrap()
}

/// The six-digit run in a text.
fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text}"))
        .to_owned()
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn codes_travel_by_smtp_and_the_sms_gateway(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let smtp_port = free_port();
    let mut smtp = start(smtp_port).await;
    let (gateway_port, mut texts) = start_gateway().await;
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}?tls=none");
    let api_base = format!("http://127.0.0.1:{gateway_port}");
    let env = [
        ("TWOFOLD_SMTP_URL", smtp_url.as_str()),
        (
            "TWOFOLD_SMS_URL",
            "twilio://ACtest42:auth-token@+14155550100",
        ),
        ("TWOFOLD_SMS_TWILIO_API_BASE", api_base.as_str()),
    ];
    let server = install.serve_with(None, &env).await;
    let added = install.run_with_env(
        &[
            "user",
            "add",
            "dana@example.com",
            "--require-2fa",
            "--password-stdin",
        ],
        Some(PASSWORD),
        &env,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let credentials = json!({"email": "dana@example.com", "password": PASSWORD});
    let (status, login) = post(&client, server.url("/api/v1/login"), credentials.clone()).await;
    assert_eq!(
        (status, &login["state"]),
        (200, &json!("enrollment_required"))
    );

    // The address, verified with the code the SMTP server received.
    let (status, _) = post(
        &client,
        server.url("/api/v1/account/email/send-code"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let mail = next(&mut smtp.messages, "verification email").await;
    assert!(mail.contains("\r\nTo: dana@example.com\r\n"), "{mail}");
    assert!(
        mail.contains("Subject: Verify your email address\r\n"),
        "{mail}"
    );
    let code = mail
        .split("\r\n")
        .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code alone on a line: {mail}"))
        .to_owned();
    assert!(
        mail.contains(&format!("/account/email/verify?code={code}")),
        "{mail}"
    );
    let (status, _) = post(
        &client,
        server.url("/api/v1/account/email/verify"),
        json!({"code": code}),
    )
    .await;
    assert_eq!(status, 200);

    // The phone, enrolled with the code the gateway received, in Twilio's exact form.
    let (status, sent) = post(
        &client,
        server.url("/api/v1/account/phone"),
        json!({"phone": "0121 234 5678", "country": "GB"}),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let text = next(&mut texts, "verification text").await;
    assert_eq!(
        text.request_line,
        "POST /2010-04-01/Accounts/ACtest42/Messages.json HTTP/1.1"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("ACtest42:auth-token");
    assert_eq!(
        text.header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(
        text.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = text.form();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap()
    };
    assert_eq!(field("To"), "+441212345678");
    assert_eq!(field("From"), "+14155550100");
    let (status, confirmed) = post(
        &client,
        server.url("/api/v1/account/phone/confirm"),
        json!({"code": code_in(&field("Body"))}),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["recovery_codes"].as_array().unwrap().len(), 10);
    let notice = next(&mut smtp.messages, "notification email").await;
    assert!(
        notice.contains("Subject: A second factor was added to your account\r\n"),
        "{notice}"
    );

    // Signing in again: a code by text message.
    let (status, _) = post(&client, server.url("/api/v1/logout"), json!({})).await;
    assert_eq!(status, 204);
    let (_, login) = post(&client, server.url("/api/v1/login"), credentials).await;
    assert_eq!(login["state"], "second_factor");
    assert_eq!(login["methods"], json!(["sms", "recovery_code"]));
    let (status, _) = post(
        &client,
        server.url("/api/v1/login/send-code"),
        json!({"method": "sms"}),
    )
    .await;
    assert_eq!(status, 202);
    let text = next(&mut texts, "sign-in text").await;
    let body = text
        .form()
        .into_iter()
        .find(|(key, _)| key == "Body")
        .unwrap()
        .1;
    let (status, verified) = post(
        &client,
        server.url("/api/v1/login/verify"),
        json!({"method": "sms", "code": code_in(&body)}),
    )
    .await;
    assert_eq!((status, &verified["state"]), (200, &json!("authenticated")));
    let account: Value = client
        .get(server.url("/api/v1/account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["email_verified"], true);
    assert_eq!(account["two_factor"], "enabled");
}
