//! Links in emails are built from the configured public URL, never from the request: every
//! request that sends an email (invitations, address verification, codes, notices) comes with a
//! forged `Host`, `X-Forwarded-Host` and `Forwarded`, and every link in the outbox still starts
//! with `TWOFOLD_PUBLIC_URL`.

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(links_in_emails_ignore_forged_host_headers);

const PUBLIC_URL: &str = "http://login.example.com:8443";
const EVIL: &str = "evil.example";

/// A browser-like client whose every request names another host.
fn forging_client() -> Client {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(EVIL));
    headers.insert("x-forwarded-host", HeaderValue::from_static(EVIL));
    headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    headers.insert("x-forwarded-port", HeaderValue::from_static("443"));
    headers.insert(
        "forwarded",
        HeaderValue::from_static("host=evil.example;proto=https"),
    );
    headers.insert("x-original-host", HeaderValue::from_static(EVIL));
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Every message in the outbox, whoever it is to.
fn all_messages(app: &TestApp) -> Vec<Value> {
    std::fs::read_dir(&app.outbox_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
        .collect()
}

/// Every `http://` or `https://` link in a text.
fn links_in(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for scheme in ["http://", "https://"] {
        let mut rest = text;
        while let Some(start) = rest.find(scheme) {
            let link: String = rest[start..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '<' | '>' | ')'))
                .collect();
            rest = &rest[start + link.len()..];
            links.push(link);
        }
    }
    links
}

async fn links_in_emails_ignore_forged_host_headers(backend: Backend) {
    let options = Options {
        public_url: Some(PUBLIC_URL.into()),
        ..Options::default()
    };
    let Some(app) = spawn_app_with(backend, options).await else {
        return;
    };
    let client = forging_client();
    // An administrator enrolls an authenticator (a notice), verifies the address (a link)
    // and asks for a recovery-codes code, through the API and the pages.
    app.create_admin("root@example.com").await;
    let step = app
        .login(&client, "root@example.com", crate::helpers::PASSWORD)
        .await;
    assert_eq!(step.status(), StatusCode::OK);
    app.add_totp(&client).await;
    for path in [
        "/api/v1/account/email/send-code",
        "/api/v1/account/recovery-codes/send-code",
    ] {
        let sent = app.post(&client, path, json!({})).await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED, "{path}");
        app.clock.advance_seconds(61);
    }
    let page = app.get(&client, "/account/email/verify").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[start..start + html[start..].find('"').unwrap()].to_owned();
    let sent = client
        .post(app.url("/account/email/send-code"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success() || sent.status().is_redirection());
    // Invitations: a new user, then a new invitation.
    let created = app
        .post(
            &client,
            "/api/v1/admin/users",
            json!({"email": "invitee@example.com"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = app
        .post(
            &client,
            &format!("/api/v1/admin/users/{id}/invitation"),
            json!({}),
        )
        .await;
    assert!(again.status().is_success(), "{}", again.status());

    let messages = all_messages(&app);
    let mut links = Vec::new();
    for message in &messages {
        let text = message.to_string();
        assert!(
            !text.contains(EVIL),
            "a forged host reached a message: {message}"
        );
        links.extend(links_in(message["body"].as_str().unwrap_or_default()));
        if let Some(html) = message.get("html").and_then(Value::as_str) {
            links.extend(links_in(html));
        }
    }
    for link in &links {
        assert!(
            link.starts_with(&format!("{PUBLIC_URL}/")),
            "{link} is not under {PUBLIC_URL}"
        );
    }
    // Two invitations and two verification emails carry a link at least.
    assert!(links.len() >= 4, "{links:?} in {messages:?}");
    assert_eq!(
        links
            .iter()
            .filter(|link| link.contains("/account/email/verify?code="))
            .count(),
        2,
        "{links:?}"
    );
}
