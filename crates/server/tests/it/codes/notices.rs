//! The notices that tell owners about changes to their account's protection, and the OpenAPI
//! document of the code routes.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::*;
use crate::helpers::{Backend, PASSWORD, spawn_app};
use crate::on_both_backends;

on_both_backends!(adding_a_factor_and_using_a_recovery_code_are_told_by_email);

async fn adding_a_factor_and_using_a_recovery_code_are_told_by_email(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (client, _, codes) = app.enroll("alice@example.com").await;
    let notice = app.single_notice("alice@example.com", FACTOR_ADDED);
    assert!(notice.contains("An authenticator app"), "{notice}");
    assert!(notice.contains("If this was not you"), "{notice}");
    let messages = app.messages_to("alice@example.com");
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0]["created_at"].is_string());

    // A wrong recovery code tells nothing; a right one does, with the count left.
    let step = app
        .at_second_factor_with("alice@example.com", json!(["totp", "recovery_code"]))
        .await;
    let wrong = app
        .post(
            &step,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": "aaaa-bbbb-cccc-dddd"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        app.emails_titled("alice@example.com", RECOVERY_CODE_USED)
            .is_empty()
    );
    let used = app
        .post(
            &step,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": codes[0]}),
        )
        .await;
    assert_eq!(used.status(), StatusCode::OK);
    let notice = app.single_notice("alice@example.com", RECOVERY_CODE_USED);
    assert!(
        notice.contains("9 of your recovery codes are left"),
        "{notice}"
    );
    assert!(!notice.contains(&codes[0]), "{notice}");

    // New recovery codes are told too; the notice carries none of them.
    let fresh = json_of(
        app.post(
            &client,
            "/api/v1/account/recovery-codes",
            json!({"password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let notice = app.single_notice("alice@example.com", "New recovery codes");
    for code in strings(&fresh["recovery_codes"]) {
        assert!(!notice.contains(&code), "{notice}");
    }

    // An administrator's reset is told as well.
    let user = app.service.find_user("alice@example.com").await.unwrap();
    app.service.reset_two_factor(None, user.id).await.unwrap();
    let notice = app.single_notice("alice@example.com", TWO_FACTOR_RESET);
    assert!(notice.contains("An administrator removed"), "{notice}");

    // Nothing was texted or sent anywhere else.
    let outbox = std::fs::read_dir(&app.outbox_dir).unwrap().count();
    assert_eq!(outbox, app.messages_to("alice@example.com").len());
}

#[tokio::test]
async fn the_openapi_document_lists_the_code_routes() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let document: Value = app
        .get(&app.client(), "/api/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/login/send-code",
        "/api/v1/login/reset/send-code",
        "/api/v1/login/reset",
        "/api/v1/account/phone",
        "/api/v1/account/phone/confirm",
        "/api/v1/account/phone/inbound",
        "/api/v1/account/phone/inbound/confirm",
        "/api/v1/account/email/send-code",
        "/api/v1/account/email/verify",
        "/api/v1/account/email-2fa/send-code",
        "/api/v1/account/email-2fa/confirm",
        "/api/v1/account/two-factor/disable/send-code",
        "/api/v1/account/two-factor/disable",
        "/api/v1/sms/inbound",
    ] {
        let operation = &document["paths"][path]["post"];
        assert!(operation.is_object(), "{path} is not documented");
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()),
            "{path} has no responses"
        );
    }
    let errors = [
        ("/api/v1/login/send-code", "409"),
        ("/api/v1/account/email-2fa/send-code", "403"),
        ("/api/v1/account/two-factor/disable", "403"),
        ("/api/v1/account/phone", "422"),
        ("/api/v1/account/phone/inbound/confirm", "409"),
        ("/api/v1/sms/inbound", "403"),
        ("/api/v1/login/reset", "401"),
    ];
    for (path, status) in errors {
        assert!(
            document["paths"][path]["post"]["responses"][status].is_object(),
            "{path} does not document {status}"
        );
    }
    // The webhook takes a form, not JSON.
    assert!(
        document["paths"]["/api/v1/sms/inbound"]["post"]["requestBody"]["content"]
            ["application/x-www-form-urlencoded"]
            .is_object()
    );
}
