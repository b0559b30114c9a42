//! Turning two-factor authentication off takes the emailed disable code and nothing else: no
//! code, an authenticator or recovery code, or a code emailed for another purpose is refused;
//! a form posted to the API gets 415; the pages refuse a missing, foreign or cross-site CSRF
//! token. A wrong code is in `codes::disable_reset`.

use reqwest::{Client, StatusCode};
use serde_json::json;

use super::{status_and_text, totp_now};
use crate::helpers::{Backend, TestApp, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    two_factor_stays_on_without_the_disable_code,
    the_disable_pages_refuse_forged_requests,
);

const DISABLE: &str = "/api/v1/account/two-factor/disable";

async fn two_factor_state(app: &TestApp, client: &Client) -> String {
    app.account(client).await["two_factor"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn two_factor_stays_on_without_the_disable_code(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let email = "peggy@example.com";
    let client = app.signed_in(email).await;
    let (secret, recovery) = app.add_totp(&client).await;
    app.clock.advance_seconds(30);

    // No code at all, and an authenticator code (the proof of another step).
    for body in [
        json!({}),
        json!({"code": null}),
        json!({"code": ["123456"]}),
    ] {
        let (status, text) = status_and_text(app.post(&client, DISABLE, body.clone()).await).await;
        assert!(
            matches!(status.as_u16(), 400 | 422),
            "{body}: {status} {text}"
        );
    }
    let refused = app
        .post(&client, DISABLE, json!({"code": totp_now(&app, &secret)}))
        .await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_code").await;
    // Codes emailed for other purposes: verifying the address, new recovery codes.
    let mut foreign = Vec::new();
    for path in [
        "/api/v1/account/email/send-code",
        "/api/v1/account/recovery-codes/send-code",
    ] {
        let sent = app.post(&client, path, json!({})).await;
        assert_eq!(sent.status(), StatusCode::ACCEPTED, "{path}");
        foreign.push(app.latest_code(email));
        app.clock.advance_seconds(61);
    }
    // With a live disable code: a recovery code and the other purposes' codes do not turn
    // 2FA off (four wrong tries in all, under the lockout), and a form post (what a
    // cross-site page can send) gets 415.
    let sent = app
        .post(
            &client,
            "/api/v1/account/two-factor/disable/send-code",
            json!({}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let code = app.latest_code(email);
    let mut wrong = vec![recovery[0].clone()];
    wrong.extend(foreign.into_iter().filter(|other| *other != code));
    for other in wrong {
        let refused = app.post(&client, DISABLE, json!({"code": other})).await;
        assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_code").await;
    }
    for (content_type, body) in [
        ("application/x-www-form-urlencoded", format!("code={code}")),
        ("text/plain", format!("{{\"code\":\"{code}\"}}")),
        (
            "multipart/form-data; boundary=x",
            format!(
                "--x\r\nContent-Disposition: form-data; name=\"code\"\r\n\r\n{code}\r\n--x--\r\n"
            ),
        ),
    ] {
        let response = client
            .post(app.url(DISABLE))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    assert_eq!(two_factor_state(&app, &client).await, "enabled");
    // The code itself was live all along.
    let done = app.post(&client, DISABLE, json!({"code": code})).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(two_factor_state(&app, &client).await, "off");
}

/// A forged form: its fields and the `Sec-Fetch-Site` it comes with (`None`: an `Origin` of
/// another site instead).
type Forged<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);

/// The CSRF token of a page's form.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn post_form(
    app: &TestApp,
    client: &Client,
    path: &str,
    site: Option<&str>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client.post(app.url(path)).form(fields);
    if let Some(site) = site {
        request = request.header("sec-fetch-site", site);
    } else {
        request = request.header("origin", "http://evil.example");
    }
    request.send().await.unwrap()
}

async fn the_disable_pages_refuse_forged_requests(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let email = "rupert@example.com";
    let victim = app.signed_in(email).await;
    app.add_totp(&victim).await;
    // The attacker's own browser and its CSRF token, from the sign-in page.
    let attacker = app.client();
    let theirs = csrf_of(&app.get(&attacker, "/login").await.text().await.unwrap());
    let intro = app.get(&victim, "/account/two-factor/disable").await;
    assert_eq!(intro.status(), StatusCode::OK);
    let token = csrf_of(&intro.text().await.unwrap());
    assert_ne!(token, theirs);
    let emails = app.messages_to(email).len();

    let forged: [Forged; 4] = [
        (&[], Some("same-origin")),
        (&[("csrf", theirs.as_str())], Some("same-origin")),
        (&[("csrf", "forged")], Some("same-origin")),
        (&[("csrf", token.as_str())], Some("cross-site")),
    ];
    for (fields, site) in forged {
        let response = post_form(&app, &victim, "/account/two-factor/disable", site, fields).await;
        assert!(response.status().is_client_error(), "{fields:?} {site:?}");
    }
    assert_eq!(
        app.messages_to(email).len(),
        emails,
        "a forged send sent a code"
    );
    let sent = post_form(
        &app,
        &victim,
        "/account/two-factor/disable",
        Some("same-origin"),
        &[("csrf", &token)],
    )
    .await;
    assert_eq!(sent.status(), StatusCode::OK);
    let code = app.latest_code(email);
    let confirm = "/account/two-factor/disable/confirm";
    let forged: [Forged; 5] = [
        (&[("code", &code)], Some("same-origin")),
        (&[("csrf", &theirs), ("code", &code)], Some("same-origin")),
        (&[("csrf", "forged"), ("code", &code)], Some("same-origin")),
        (&[("csrf", &token), ("code", &code)], Some("cross-site")),
        (&[("csrf", &token), ("code", &code)], None),
    ];
    for (fields, site) in forged {
        let response = post_form(&app, &victim, confirm, site, fields).await;
        let status = response.status();
        assert!(status.is_client_error(), "{fields:?} {site:?}: {status}");
        if fields.iter().any(|(name, _)| *name == "csrf") {
            assert_eq!(status, StatusCode::FORBIDDEN, "{fields:?} {site:?}");
        }
        assert_eq!(two_factor_state(&app, &victim).await, "enabled");
    }
    // The same code with the browser's own token, from its own origin, works.
    let done = post_form(
        &app,
        &victim,
        confirm,
        Some("same-origin"),
        &[("csrf", &token), ("code", &code)],
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(two_factor_state(&app, &victim).await, "off");
}
