//! A phone verified by a text *from* it to the system number, received through the SMS
//! gateway's signed webhook (Twilio's form and `X-Twilio-Signature`). The signature is
//! computed here from Twilio's documented algorithm, independently of the server's code.

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha1::Sha1;

use super::*;
use crate::helpers::{Backend, Options, assert_error, session_cookie, spawn_app, spawn_app_with};
use crate::on_both_backends;

const SYSTEM_NUMBER: &str = "+15005550006";
const TOKEN: &str = "test-token";
const WEBHOOK: &str = "/api/v1/sms/inbound";

on_both_backends!(
    a_phone_is_verified_by_a_signed_text_from_it,
    an_inbound_check_lives_ten_minutes,
);

async fn inbound_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(
        backend,
        Options {
            sms_inbound: Some((SYSTEM_NUMBER.into(), TOKEN.into())),
            ..Options::default()
        },
    )
    .await
}

/// Twilio's signature: base64(HMAC-SHA1(token, url + name1 + value1 + name2 + value2 …)) with
/// the fields sorted by name.
fn twilio_signature(token: &str, url: &str, fields: &[(&str, &str)]) -> String {
    let mut sorted = fields.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A form's fields, in order.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// Twilio's inbound message fields for a text `from` → the system number.
fn text_fields<'a>(from: &'a str, body: &'a str) -> Fields<'a> {
    vec![
        ("MessageSid", "SM0123456789abcdef0123456789abcdef"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", from),
        ("To", SYSTEM_NUMBER),
        ("Body", body),
        ("NumMedia", "0"),
    ]
}

const FORM: &str = "application/x-www-form-urlencoded";
/// What Twilio actually sends.
const FORM_UTF8: &str = "application/x-www-form-urlencoded; charset=UTF-8";

/// Posts the form, with `signature` (if any) in `X-Twilio-Signature`.
async fn post_text(app: &TestApp, fields: &[(&str, &str)], signature: Option<&str>) -> Response {
    post_form(app, FORM, fields, signature).await
}

async fn post_form(
    app: &TestApp,
    content_type: &str,
    fields: &[(&str, &str)],
    signature: Option<&str>,
) -> Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut request = app
        .client()
        .post(app.url(WEBHOOK))
        .header("content-type", content_type)
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-twilio-signature", signature);
    }
    request.send().await.unwrap()
}

/// Posts a correctly signed text as Twilio does and expects Twilio's empty answer.
async fn deliver_text(app: &TestApp, from: &str, body: &str) {
    let fields = text_fields(from, body);
    let signature = twilio_signature(TOKEN, &app.url(WEBHOOK), &fields);
    let response = post_form(app, FORM_UTF8, &fields, Some(&signature)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let twiml = response.text().await.unwrap();
    assert!(twiml.contains("<Response></Response>"), "{twiml}");
}

async fn confirm(app: &TestApp, client: &Client) -> Response {
    app.post(client, "/api/v1/account/phone/inbound/confirm", json!({}))
        .await
}

async fn start(app: &TestApp, client: &Client, phone: Value) -> Value {
    json_of(
        app.post(client, "/api/v1/account/phone/inbound", phone)
            .await,
        StatusCode::OK,
    )
    .await
}

async fn a_phone_is_verified_by_a_signed_text_from_it(backend: Backend) {
    let Some(app) = inbound_app(backend).await else {
        return;
    };
    let client = app.enrollment_session("alice@example.com").await;
    let challenge = start(
        &app,
        &client,
        json!({"phone": PHONE_NATIONAL, "country": "GB"}),
    )
    .await;
    assert_eq!(challenge["system_number"], SYSTEM_NUMBER);
    let code = challenge["code"].as_str().unwrap().to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{challenge}"
    );
    let from = challenge["from"].as_str().unwrap();
    assert!(
        from.ends_with(PHONE_TAIL) && !from.contains("7400123"),
        "{from}"
    );
    assert!(
        app.messages_to(PHONE).is_empty(),
        "nothing is sent to the phone"
    );
    assert_error(
        app.post(
            &client,
            "/api/v1/account/phone/inbound",
            json!({"phone": "not a number"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_phone",
    )
    .await;

    // Not yet texted.
    assert_error(
        confirm(&app, &client).await,
        StatusCode::CONFLICT,
        "sms_not_received",
    )
    .await;

    let good = text_fields(PHONE, &code);
    let url = app.url(WEBHOOK);
    let signature = twilio_signature(TOKEN, &url, &good);
    // Unsigned, wrongly signed, signed with another token or for another URL, or a body
    // changed after signing: all refused, and none counts as the text.
    let other_number = text_fields(OTHER_PHONE, &code);
    let other_signature = twilio_signature(TOKEN, &url, &other_number);
    let refusals: Vec<(Fields, Option<String>)> = vec![
        (good.clone(), None),
        (good.clone(), Some(String::new())),
        (good.clone(), Some("bm90IGEgc2lnbmF0dXJl".to_owned())),
        (
            good.clone(),
            Some(twilio_signature("other-token", &url, &good)),
        ),
        (
            good.clone(),
            Some(twilio_signature(
                TOKEN,
                "http://evil.example/api/v1/sms/inbound",
                &good,
            )),
        ),
        (good.clone(), Some(other_signature.clone())),
        (other_number.clone(), Some(signature.clone())),
        (text_fields(PHONE, "000000"), Some(signature.clone())),
    ];
    for (fields, signature) in refusals {
        let refused = post_text(&app, &fields, signature.as_deref()).await;
        assert_error(refused, StatusCode::FORBIDDEN, "invalid_signature").await;
    }
    assert_error(
        confirm(&app, &client).await,
        StatusCode::CONFLICT,
        "sms_not_received",
    )
    .await;

    // A signed text with the code, but from another number, does nothing.
    deliver_text(&app, OTHER_PHONE, &code).await;
    // And a signed text from the phone with another code does nothing either.
    deliver_text(&app, PHONE, &wrong_code(&code)).await;
    assert_error(
        confirm(&app, &client).await,
        StatusCode::CONFLICT,
        "sms_not_received",
    )
    .await;

    // Other body types are refused before the signature is looked at.
    let plain = app
        .client()
        .post(app.url(WEBHOOK))
        .header("content-type", "text/plain")
        .header("x-twilio-signature", &signature)
        .body("From=x")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The text from the phone, typed loosely.
    let typed = format!("Code: {} {}", &code[..3], &code[3..]);
    deliver_text(&app, PHONE, &typed).await;
    let confirmed = confirm(&app, &client).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(session_cookie(&confirmed).is_some(), "the session rotates");
    let codes = strings(&json_of(confirmed, StatusCode::OK).await["recovery_codes"]);
    assert_eq!(codes.len(), 10);
    let account = app.account(&client).await;
    assert_eq!(account["two_factor"], "enabled");
    assert_eq!(account["methods"], json!(["sms", "recovery_code"]));
    app.single_notice("alice@example.com", FACTOR_ADDED);
    // The check is used up.
    assert_error(
        confirm(&app, &client).await,
        StatusCode::CONFLICT,
        "sms_not_received",
    )
    .await;

    // The phone is the SMS factor: sign-in codes go to it.
    let next = app
        .at_second_factor_with("alice@example.com", json!(["sms", "recovery_code"]))
        .await;
    assert_eq!(
        app.post(&next, "/api/v1/login/send-code", json!({"method": "sms"}))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let code = app.texted_code(PHONE);
    let verified = app
        .post(
            &next,
            "/api/v1/login/verify",
            json!({"method": "sms", "code": code}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
}

async fn an_inbound_check_lives_ten_minutes(backend: Backend) {
    let Some(app) = inbound_app(backend).await else {
        return;
    };
    let client = app.enrollment_session("bob@example.com").await;
    let challenge = start(&app, &client, json!({"phone": PHONE})).await;
    let code = challenge["code"].as_str().unwrap().to_owned();
    app.clock.advance_seconds(10 * 60 + 1);
    deliver_text(&app, PHONE, &code).await;
    assert_error(
        confirm(&app, &client).await,
        StatusCode::CONFLICT,
        "sms_not_received",
    )
    .await;

    // A new check replaces the old: the old code no longer counts.
    let first = start(&app, &client, json!({"phone": PHONE})).await;
    let second = start(&app, &client, json!({"phone": PHONE})).await;
    let (first, second) = (
        first["code"].as_str().unwrap().to_owned(),
        second["code"].as_str().unwrap().to_owned(),
    );
    assert_ne!(first, second);
    deliver_text(&app, PHONE, &first).await;
    assert_error(
        confirm(&app, &client).await,
        StatusCode::CONFLICT,
        "sms_not_received",
    )
    .await;
    app.clock.advance_seconds(10 * 60 - 1);
    deliver_text(&app, PHONE, &second).await;
    assert_eq!(confirm(&app, &client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_an_inbound_number_there_is_no_inbound_check() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let client = app.enrollment_session("carol@example.com").await;
    assert_error(
        app.post(
            &client,
            "/api/v1/account/phone/inbound",
            json!({"phone": PHONE}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        confirm(&app, &client).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let fields = text_fields(PHONE, "123456");
    let signature = twilio_signature(TOKEN, &app.url(WEBHOOK), &fields);
    for signature in [Some(signature.as_str()), None] {
        assert_error(
            post_text(&app, &fields, signature).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    // Verifying by a code sent to the phone still works.
    assert_eq!(
        app.post(&client, "/api/v1/account/phone", json!({"phone": PHONE}))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
}

/// Behind a proxy the gateway signs the public URL, not the address the server listens on:
/// the signature is checked against `TWOFOLD_PUBLIC_URL`, never the request's `Host`.
#[tokio::test]
async fn the_signature_covers_the_public_url() {
    let app = spawn_app_with(
        Backend::Sqlite,
        Options {
            public_url: Some("https://login.example.com/".into()),
            sms_inbound: Some((SYSTEM_NUMBER.into(), TOKEN.into())),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let fields = text_fields(PHONE, "123456");
    let local = twilio_signature(TOKEN, &app.url(WEBHOOK), &fields);
    assert_error(
        post_text(&app, &fields, Some(&local)).await,
        StatusCode::FORBIDDEN,
        "invalid_signature",
    )
    .await;
    let public = twilio_signature(
        TOKEN,
        "https://login.example.com/api/v1/sms/inbound",
        &fields,
    );
    let accepted = post_text(&app, &fields, Some(&public)).await;
    assert_eq!(accepted.status(), StatusCode::OK);
}
