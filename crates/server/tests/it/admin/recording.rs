//! When the audit log records: administrators' actions and policy changes are recorded before
//! they are made (a change that cannot be recorded is not made); an entry that cannot even be
//! read is reported by the chain check, not turned into an error; requiring 2FA takes effect
//! at once; and a user's activity shows what an administrator did, not who from where.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::audit::{drop_append_only_trigger, verify};
use crate::codes::json_of;
use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    a_change_that_cannot_be_recorded_is_not_made,
    an_unreadable_entry_is_reported_not_an_error,
    requiring_two_factor_ends_password_only_sessions_at_once,
    the_activity_shows_what_an_administrator_did_but_not_who_from_where,
);

async fn block_audit_appends(app: &TestApp, blocked: bool) {
    let sql = match (app.database.is_sqlite(), blocked) {
        (true, true) => "CREATE TRIGGER block_audit BEFORE INSERT ON audit_events \
                         BEGIN SELECT RAISE(ABORT, 'blocked'); END"
            .to_owned(),
        (true, false) => "DROP TRIGGER block_audit".to_owned(),
        (false, true) => "CREATE FUNCTION block_audit() RETURNS trigger LANGUAGE plpgsql AS \
                          $$ BEGIN RAISE EXCEPTION 'blocked'; END $$; \
                          CREATE TRIGGER block_audit BEFORE INSERT ON audit_events \
                          FOR EACH ROW EXECUTE FUNCTION block_audit()"
            .to_owned(),
        (false, false) => "DROP TRIGGER block_audit ON audit_events".to_owned(),
    };
    app.database.execute_raw(&sql).await;
}

async fn a_change_that_cannot_be_recorded_is_not_made(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    app.create_user("pat@example.com", Some(PASSWORD), false)
        .await;
    let pat = app.id_of("pat@example.com").await;

    block_audit_appends(&app, true).await;
    let path = format!("/api/v1/admin/users/{pat}");
    for (path, body) in [
        (path.as_str(), json!({"disabled": true})),
        (path.as_str(), json!({"require_2fa": true})),
    ] {
        let response = app.patch(&admin.client, path, body).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    let reset = app
        .post(
            &admin.client,
            &format!("/api/v1/admin/users/{pat}/reset-2fa"),
            json!({}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let created = app
        .post(
            &admin.client,
            "/api/v1/admin/users",
            json!({"email": "quinn@example.com"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let policy = app
        .patch(
            &admin.client,
            "/api/v1/admin/policy",
            json!({"grace_period_days": 9}),
        )
        .await;
    assert_eq!(policy.status(), StatusCode::INTERNAL_SERVER_ERROR);
    block_audit_appends(&app, false).await;

    let view = app.admin_view(&admin, &pat).await;
    assert_eq!(
        (&view["disabled"], &view["require_2fa"]),
        (&json!(false), &json!(false)),
        "nothing changed"
    );
    assert!(app.service.find_user("quinn@example.com").await.is_err());
    let policy = json_of(
        app.get(&admin.client, "/api/v1/admin/policy").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&policy["version"], &policy["policy"]["grace_period_days"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(verify(&app, &admin).await["ok"], true);
}

async fn an_unreadable_entry_is_reported_not_an_error(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    drop_append_only_trigger(&app).await;
    app.database
        .execute_raw("UPDATE audit_events SET actor_id = 'not-a-uuid' WHERE seq = 2")
        .await;
    let report = verify(&app, &admin).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["problem"]
            .as_str()
            .unwrap()
            .contains("cannot be read"),
        "{report}"
    );
}

async fn requiring_two_factor_ends_password_only_sessions_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let ray = app.signed_in("ray@example.com").await;
    assert_eq!(
        app.get(&ray, "/api/v1/account").await.status(),
        StatusCode::OK
    );
    let id = app.id_of("ray@example.com").await;
    app.admin_change(&admin, &id, json!({"require_2fa": true}))
        .await;
    assert_eq!(
        app.get(&ray, "/api/v1/account").await.status(),
        StatusCode::UNAUTHORIZED,
        "the password-only session ended"
    );
    let step = json_of(
        app.login(&app.client(), "ray@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "enrollment_required");
}

async fn the_activity_shows_what_an_administrator_did_but_not_who_from_where(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let sam = app.signed_in("sam@example.com").await;
    let id = app.id_of("sam@example.com").await;
    app.admin_change(&admin, &id, json!({"require_2fa": false}))
        .await;
    // The administrator's own account page does not list what they did to others.
    let own = json_of(
        app.get(&admin.client, "/api/v1/account/activity").await,
        StatusCode::OK,
    )
    .await;
    assert!(
        own["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|event| event["kind"] != "user_updated"),
        "{own}"
    );
    let activity = json_of(
        app.get(&sam, "/api/v1/account/activity").await,
        StatusCode::OK,
    )
    .await;
    let events = activity["events"].as_array().unwrap();
    let by_admin: Vec<&Value> = events
        .iter()
        .filter(|event| event["kind"] == "user_updated")
        .collect();
    assert_eq!(by_admin.len(), 1, "{activity}");
    assert_eq!(
        (
            &by_admin[0]["ip"],
            &by_admin[0]["user_agent"],
            &by_admin[0]["actor_email"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let own_sign_in = events
        .iter()
        .find(|event| event["kind"] == "sign_in_succeeded")
        .unwrap();
    assert_eq!(own_sign_in["ip"], "127.0.0.1");
}
