//! Property-based request bodies (issue 6, "bad input"): every write operation of the served
//! OpenAPI document gets arbitrary bodies — objects with the operation's real field names
//! holding JSON of any type, unknown fields, non-objects, truncated JSON, invalid UTF-8, huge
//! numbers, deep nesting, random bytes, bodies over the size limit — from a caller in each
//! session state (none, `password_change_required`, `second_factor`, `enrollment_required`,
//! a signed-in user with an authenticator, an administrator). Whatever happens: never a 5xx,
//! every 4xx is a contract status with the `{"error", "message"}` body (429 with
//! `Retry-After`), every status is one the document lists for the operation, and a body over
//! the limit never gets through.
//!
//! The operations come from the document, and a second test checks the document against the
//! route table, so a new write route cannot be missed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use twofold_core::hasher::Argon2Settings;
use twofold_server::routes::sms_inbound::twilio_signature;

use crate::helpers::{Backend, Options, PASSWORD, TestApp, spawn_app_with};

/// Cases per operation and caller: 27 operations × 6 callers × this.
const CASES: u32 = 16;
/// The body limit of the test server; the over-limit bodies are a little larger.
const BODY_LIMIT: usize = 8 * 1024;
const SMS_NUMBER: &str = "+15005550006";
const SMS_TOKEN: &str = "inbound-token";
/// The 4xx statuses the contract allows.
const CONTRACT_4XX: &[u16] = &[400, 401, 403, 404, 409, 413, 415, 422, 429];

/// A write operation of the document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
    /// The fields of its JSON body (empty for `{}` bodies).
    fields: Vec<Field>,
    /// Form-encoded (the SMS webhook) rather than JSON.
    form: bool,
    /// A file upload (multipart): JSON is refused with 415 whatever its size, and its own body
    /// limit is the attachments' (the JSON limit does not apply).
    multipart: bool,
    documented: BTreeSet<u16>,
}

/// A field of a JSON body and the JSON type the document gives it.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    String,
    Boolean,
    Integer,
    /// An array of strings (method names).
    Array,
}

impl Kind {
    /// The kind of a property schema: `type` (its first non-null one), else a string (the
    /// enums are `$ref`s to string schemas).
    fn of(schema: &Value) -> Kind {
        let types: Vec<&str> = match &schema["type"] {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        match types.into_iter().find(|name| *name != "null") {
            Some("boolean") => Kind::Boolean,
            Some("integer" | "number") => Kind::Integer,
            Some("array") => Kind::Array,
            _ => Kind::String,
        }
    }
}

/// Who sends the requests.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Anonymous,
    PasswordChange,
    SecondFactor,
    Enrollment,
    User,
    Admin,
}

const CALLERS: [Caller; 6] = [
    Caller::Anonymous,
    Caller::PasswordChange,
    Caller::SecondFactor,
    Caller::Enrollment,
    Caller::User,
    Caller::Admin,
];

fn write_operations(document: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (name, method) in [
            ("post", Method::POST),
            ("put", Method::PUT),
            ("patch", Method::PATCH),
            ("delete", Method::DELETE),
        ] {
            let operation = &item[name];
            if operation.is_null() {
                continue;
            }
            let content = &operation["requestBody"]["content"];
            let form = content["application/x-www-form-urlencoded"].is_object();
            let multipart = content["multipart/form-data"].is_object();
            let mut schema = &content["application/json"]["schema"];
            if let Some(reference) = schema["$ref"].as_str() {
                let name = reference.trim_start_matches("#/components/schemas/");
                schema = &document["components"]["schemas"][name];
            }
            let fields = schema["properties"]
                .as_object()
                .map(|properties| {
                    properties
                        .iter()
                        .map(|(name, property)| Field {
                            name: name.clone(),
                            kind: Kind::of(property),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let documented = operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|status| status.parse().unwrap())
                .collect();
            found.push(Operation {
                method,
                path: path.clone(),
                fields,
                form,
                multipart,
                documented,
            });
        }
    }
    found
}

mod generators;

use generators::{body, form_body};

// ---- the run ------------------------------------------------------------------------------

static USERS: AtomicUsize = AtomicUsize::new(0);
/// How often each status was answered, shown at the end of the run.
static STATUSES: std::sync::Mutex<std::collections::BTreeMap<u16, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn fresh_email(kind: &str) -> String {
    format!(
        "{kind}{}@example.com",
        USERS.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client whose session is in the state `caller` names.
async fn session(app: &TestApp, caller: Caller) -> Client {
    match caller {
        Caller::Anonymous => app.client(),
        Caller::PasswordChange => {
            let email = fresh_email("temporary");
            let temporary = app.create_user(&email, None, false).await.unwrap();
            let client = app.client();
            let state: Value = app
                .login(&client, &email, &temporary)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(state["state"], "password_change_required", "{state}");
            client
        }
        Caller::SecondFactor => {
            let email = fresh_email("second");
            app.enroll(&email).await;
            app.at_second_factor(&email).await
        }
        Caller::Enrollment => {
            let email = fresh_email("enrolling");
            app.create_user(&email, Some(PASSWORD), true).await;
            let client = app.client();
            let state: Value = app
                .login(&client, &email, PASSWORD)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(state["state"], "enrollment_required", "{state}");
            client
        }
        Caller::User => app.enroll(&fresh_email("user")).await.0,
        Caller::Admin => app.signed_in_admin(&fresh_email("admin")).await.client,
    }
}

async fn start() -> TestApp {
    let options = Options {
        // Bodies with passwords are hashed; the cheapest valid parameters keep the run short.
        argon2: Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        body_limit_bytes: BODY_LIMIT,
        sms_inbound: Some((SMS_NUMBER.into(), SMS_TOKEN.into())),
        ..Options::default()
    };
    spawn_app_with(Backend::Sqlite, options).await.unwrap()
}

/// One request and everything its answer must be.
async fn check(
    app: &TestApp,
    client: &Client,
    operation: &Operation,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
    signature: Option<String>,
) -> Result<(), TestCaseError> {
    let over_limit = body.len() > BODY_LIMIT && !operation.multipart;
    // RFC 8259 JSON (UTF-8, any nesting and number size): a field of the wrong type is 422.
    let well_formed = std::str::from_utf8(&body).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
    let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    let mut request = client
        .request(operation.method.clone(), app.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(signature) = signature {
        request = request.header("x-twilio-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    STATUSES
        .lock()
        .unwrap()
        .entry(status.as_u16())
        .and_modify(|n| *n += 1)
        .or_insert(1);
    let retry_after = response.headers().contains_key("retry-after");
    let text = response.text().await.unwrap();
    let what = format!("{} {path} {shown:?} -> {status} {text}", operation.method);
    prop_assert!(!status.is_server_error(), "5xx: {}", what);
    prop_assert!(
        operation.documented.contains(&status.as_u16()),
        "status not in the OpenAPI document: {}",
        what
    );
    if status.is_client_error() {
        prop_assert!(
            CONTRACT_4XX.contains(&status.as_u16()),
            "not a contract status: {}",
            what
        );
        let error: Value = serde_json::from_str(&text)
            .map_err(|_| TestCaseError::fail(format!("not the error body: {what}")))?;
        let code = error["error"].as_str().unwrap_or_default();
        prop_assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "error code: {}",
            what
        );
        prop_assert!(
            error["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty()),
            "message: {}",
            what
        );
        prop_assert!(
            status != StatusCode::TOO_MANY_REQUESTS || retry_after,
            "Retry-After: {}",
            what
        );
    }
    if well_formed && content_type == "application/json" {
        prop_assert!(
            status != StatusCode::BAD_REQUEST,
            "well-formed JSON got 400: {}",
            what
        );
    }
    if over_limit {
        let code = serde_json::from_str::<Value>(&text).unwrap_or_default()["error"].clone();
        prop_assert!(
            status == StatusCode::PAYLOAD_TOO_LARGE
                || ["unauthenticated", "forbidden", "not_found"]
                    .contains(&code.as_str().unwrap_or_default()),
            "over the limit and not refused: {}",
            what
        );
    }
    Ok(())
}

/// Runs the cases of one operation from one caller.
fn run_operation(
    runtime: &tokio::runtime::Runtime,
    app: &TestApp,
    operation: &Operation,
    caller: Caller,
    target_id: &str,
) {
    let client = runtime.block_on(session(app, caller));
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let ids = vec![
        target_id.to_owned(),
        "00000000-0000-0000-0000-000000000000".to_owned(),
        "not-an-id".to_owned(),
    ];
    let strategy = (
        body(operation.fields.clone()),
        form_body(),
        prop::sample::select(ids),
    );
    let result = runner.run(&strategy, |(json_body, (form, signed), id)| {
        let path = operation.path.replace("{id}", &id);
        runtime.block_on(async {
            if operation.form {
                let fields: Vec<(String, String)> = url::form_urlencoded::parse(&form)
                    .map(|(name, value)| (name.into_owned(), value.into_owned()))
                    .collect();
                let token = secrecy::SecretString::from(SMS_TOKEN.to_owned());
                let signature = signed.then(|| twilio_signature(&token, &app.url(&path), &fields));
                let form_type = "application/x-www-form-urlencoded";
                check(app, &client, operation, &path, form, form_type, signature).await?;
            }
            check(
                app,
                &client,
                operation,
                &path,
                json_body,
                "application/json",
                None,
            )
            .await
        })
    });
    if let Err(failure) = result {
        panic!(
            "{caller:?}, {} {}: {failure}",
            operation.method, operation.path
        );
    }
}

#[test]
fn arbitrary_bodies_on_every_write_route_get_contract_answers() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let document: Value = runtime.block_on(async {
        let app = start().await;
        app.get(&app.client(), "/api/openapi.json")
            .await
            .json()
            .await
            .unwrap()
    });
    let operations = write_operations(&document);
    assert!(
        operations.len() >= 25,
        "only {} write operations",
        operations.len()
    );
    for operation in &operations {
        // A fresh server per operation: what one operation's bodies change (the policy, a
        // lockout) does not decide another's.
        let app = runtime.block_on(start());
        let target_id = runtime.block_on(async {
            app.create_user("target@example.com", Some(PASSWORD), false)
                .await;
            app.id_of("target@example.com").await
        });
        for caller in CALLERS {
            run_operation(&runtime, &app, operation, caller, &target_id);
        }
    }
    eprintln!("statuses answered: {:?}", STATUSES.lock().unwrap());
}

/// The document lists every write the route table serves under `/api/`: a route with a POST,
/// PUT, PATCH or DELETE handler (anything but 405 to an anonymous `{}`) is in the document
/// with that method, so the test above covers it.
#[tokio::test]
async fn every_api_write_route_is_in_the_document() {
    let app = start().await;
    let client = app.client();
    let document: Value = app
        .get(&client, "/api/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let documented: BTreeSet<(String, Method)> = write_operations(&document)
        .into_iter()
        .map(|operation| (operation.path, operation.method))
        .collect();
    for entry in app
        .inventory
        .iter()
        .filter(|entry| entry.path.starts_with("/api/"))
    {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let path = entry
                .path
                .replace("{id}", "00000000-0000-0000-0000-000000000000");
            let response = client
                .request(method.clone(), app.url(&path))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            if response.status() != StatusCode::METHOD_NOT_ALLOWED {
                assert!(
                    documented.contains(&(entry.path.to_owned(), method.clone())),
                    "{method} {} is served but not in the OpenAPI document",
                    entry.path
                );
            }
        }
    }
}

/// The fuzz targets' checks (`crates/server/fuzz/src/checks.rs`), run over their committed seed
/// inputs (`crates/server/fuzz/seeds/<target>/`), so `cargo test` keeps them compiling and true
/// without building libFuzzer.
#[path = "../../fuzz/src/checks.rs"]
mod fuzz_checks;

#[test]
fn the_fuzz_checks_hold_on_their_seed_inputs() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (target, check) in fuzz_checks::TARGETS {
        let mut count = 0;
        for entry in std::fs::read_dir(seeds.join(target)).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", path.display());
            count += 1;
        }
        assert!(count > 0, "no seeds for {target}");
    }
}

/// Issue 6, item 5: a field of the wrong type is 422 `invalid_body` on every route, also where
/// serde_json calls it a syntax error (`null` or a number where an enum's name belongs); only
/// bytes that are not JSON are 400 `malformed_json`.
#[tokio::test]
async fn wrong_types_in_well_formed_json_are_422_everywhere() {
    let app = start().await;
    let admin = app.signed_in_admin("types@example.com").await;
    for body in [
        r#"{"allowed_methods": [null]}"#,
        r#"{"allowed_methods": [5]}"#,
        r#"{"two_factor": 1}"#,
        r#"{"two_factor": null, "allowed_methods": [["totp"]]}"#,
        r#"{"grace_period_days": 1e400}"#,
    ] {
        let response = admin
            .client
            .patch(app.url("/api/v1/admin/policy"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        crate::helpers::assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
            .await;
    }
    let email = fresh_email("types");
    app.enroll(&email).await;
    let client = app.at_second_factor(&email).await;
    for body in [
        json!({"method": null, "code": "123456"}),
        json!({"method": 1}),
    ] {
        let response = app
            .post(&client, "/api/v1/login/send-code", body.clone())
            .await;
        crate::helpers::assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
            .await;
        let response = app.post(&client, "/api/v1/login/verify", body).await;
        crate::helpers::assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body")
            .await;
    }
    let truncated = client
        .post(app.url("/api/v1/login/verify"))
        .header("content-type", "application/json")
        .body(r#"{"method": "totp", "code": "12"#)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(truncated, StatusCode::BAD_REQUEST, "malformed_json").await;
}
