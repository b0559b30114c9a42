//! Type confusion: arrays, objects, numbers, booleans, nulls and nested junk in every field of
//! every JSON write route (the routes and their fields come from the served OpenAPI document,
//! which `api::the_openapi_document_describes_the_api` keeps complete), sent with a session the
//! route's gate lets through: always a 4xx with the contract error body, never a 5xx, never
//! a success.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use twofold_core::session::SessionState;
use twofold_server::gate::Gate;

use super::{login_token, send_as, status_and_text};
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(junk_in_any_field_of_any_write_route_gets_a_4xx);

/// Follows a `$ref` into the document's components.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            resolve(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The JSON type a schema asks for (the first one that is not `null`).
fn kind_of(document: &Value, schema: &Value) -> String {
    let schema = resolve(document, schema);
    for combined in ["allOf", "oneOf", "anyOf"] {
        if let Some(first) = schema[combined].as_array().and_then(|options| {
            options
                .iter()
                .find(|option| resolve(document, option)["type"] != "null")
        }) {
            return kind_of(document, first);
        }
    }
    match &schema["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|kind| *kind != "null")
            .unwrap_or("string")
            .to_owned(),
        _ if schema["enum"].is_array() => "string".to_owned(),
        _ => "any".to_owned(),
    }
}

/// A value of the right type for a field, so that only the field under test is wrong.
fn valid(document: &Value, name: &str, schema: &Value) -> Value {
    let schema = resolve(document, schema);
    if !schema["example"].is_null() {
        return schema["example"].clone();
    }
    if let Some(first) = schema["enum"].as_array().and_then(|values| values.first()) {
        return first.clone();
    }
    match (name, kind_of(document, schema).as_str()) {
        ("email", _) => json!("someone@example.com"),
        ("password" | "new_password", _) => json!(PASSWORD),
        ("method", _) => json!("totp"),
        (_, "boolean") => json!(false),
        (_, "integer" | "number") => json!(1),
        (_, "array") => json!([]),
        (_, "object") => json!({}),
        _ => json!("x"),
    }
}

/// Values of the wrong type for a field of `kind`; `null` only where the field is required.
fn junk(kind: &str, required: bool) -> Vec<Value> {
    let mut values = vec![
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"$ne": null}),
        json!([[[{"a": [1, {"b": null}]}]]]),
        json!({"a": {"b": {"c": ["d"]}}}),
    ];
    match kind {
        "string" => values.extend([json!(12345), json!(-1.5), json!(true), json!(1e300)]),
        "boolean" => values.extend([json!("true"), json!(1), json!(0), json!("")]),
        "integer" => values.extend([json!("5"), json!(1.5), json!(true), json!(1e40)]),
        _ => {}
    }
    if required {
        values.push(Value::Null);
    }
    values
}

/// Session tokens for each gate: an administrator fully signed in (also for every signed-in
/// route), a user at the second step, and one who must change a temporary password.
struct Sessions {
    full: String,
    second_factor: String,
    password_change: String,
    /// A user id for `{id}` in paths.
    target: String,
}

impl Sessions {
    async fn start(app: &TestApp) -> Sessions {
        let (full, _) = super::full_admin_token(app, "root@example.com").await;
        app.enroll("second@example.com").await;
        app.clock.advance_seconds(30);
        let (second_factor, _) = login_token(app, "second@example.com", PASSWORD).await;
        let temporary = app
            .create_user("temporary@example.com", None, false)
            .await
            .unwrap();
        let (password_change, step) = login_token(app, "temporary@example.com", &temporary).await;
        assert_eq!(step["state"], "password_change_required");
        Sessions {
            full,
            second_factor,
            password_change,
            target: app.id_of("second@example.com").await,
        }
    }

    /// The token that gets through `gate`; `None` for routes that take no session.
    fn for_gate(&self, gate: Gate) -> Option<&str> {
        match gate {
            Gate::AdminApi => Some(&self.full),
            Gate::Api(states) if states.contains(&SessionState::Authenticated) => Some(&self.full),
            Gate::Api(states) if states.contains(&SessionState::SecondFactor) => {
                Some(&self.second_factor)
            }
            Gate::Api(states) if states.contains(&SessionState::PasswordChangeRequired) => {
                Some(&self.password_change)
            }
            Gate::Api(states) => panic!("no session for {states:?}"),
            _ => None,
        }
    }
}

/// Asserts a 4xx with the contract error body.
async fn refused(response: reqwest::Response, what: &str) {
    let (status, text) = status_and_text(response).await;
    assert!(status.is_client_error(), "{what}: {status} {text}");
    assert!(
        !matches!(status.as_u16(), 401 | 403 | 404 | 405),
        "{what}: {status} {text} (the gate or routing answered, not the body check)"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert!(
        body["error"].as_str().is_some_and(|code| !code.is_empty())
            && body["message"]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
        "{what}: {body}"
    );
}

async fn junk_in_any_field_of_any_write_route_gets_a_4xx(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let sessions = Sessions::start(&app).await;
    let document: Value = app
        .get(&app.client(), "/api/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let (mut routes, mut fields) = (0, 0);
    for entry in &app.inventory {
        let Some(operations) = document["paths"][entry.path].as_object() else {
            continue;
        };
        let path = entry.path.replace("{id}", &sessions.target);
        let token = sessions.for_gate(entry.gate);
        for (verb, operation) in operations {
            let method = match verb.as_str() {
                "post" => Method::POST,
                "patch" => Method::PATCH,
                "put" => Method::PUT,
                "delete" => Method::DELETE,
                _ => continue,
            };
            // File uploads (secure-message attachments) take multipart, not JSON fields.
            if operation["requestBody"]["content"]
                .get("multipart/form-data")
                .is_some()
            {
                continue;
            }
            let Some(schema) =
                operation["requestBody"]["content"]["application/json"].get("schema")
            else {
                assert!(
                    entry.gate == Gate::Public,
                    "{verb} {} takes no JSON body in the document",
                    entry.path
                );
                continue;
            };
            routes += 1;
            let what = format!("{verb} {}", entry.path);
            // Not an object at all.
            for body in [
                json!([]),
                json!("x"),
                json!(1),
                Value::Null,
                json!(true),
                json!([{}]),
            ] {
                refused(
                    send_as(&app, token, method.clone(), &path, &body).await,
                    &what,
                )
                .await;
            }
            let schema = resolve(&document, schema);
            let properties = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let base: Map<String, Value> = properties
                .iter()
                .map(|(name, field)| (name.clone(), valid(&document, name, field)))
                .collect();
            // Unknown fields (mass assignment) are refused too.
            let mut extra = base.clone();
            extra.insert("is_admin".into(), json!(true));
            extra.insert("user_id".into(), json!(sessions.target));
            let body = Value::Object(extra);
            refused(
                send_as(&app, token, method.clone(), &path, &body).await,
                &what,
            )
            .await;
            for (name, field) in &properties {
                fields += 1;
                let kind = kind_of(&document, field);
                for value in junk(&kind, required.contains(&name.as_str())) {
                    let mut body = base.clone();
                    body.insert(name.clone(), value.clone());
                    let what = format!("{what} {name}={value}");
                    let body = Value::Object(body);
                    refused(
                        send_as(&app, token, method.clone(), &path, &body).await,
                        &what,
                    )
                    .await;
                }
            }
        }
    }
    assert!(
        routes >= 25 && fields >= 15,
        "{routes} routes, {fields} fields"
    );
    // Nothing was let through: every session is where it was.
    let account = send_as(
        &app,
        Some(&sessions.full),
        Method::GET,
        "/api/v1/account",
        &json!({}),
    )
    .await;
    assert_eq!(account.status(), StatusCode::OK);
    let weak = json!({"new_password": "x"});
    let kept = send_as(
        &app,
        Some(&sessions.password_change),
        Method::POST,
        "/api/v1/login/password",
        &weak,
    )
    .await;
    crate::helpers::assert_error(kept, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
}
