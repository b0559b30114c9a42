//! The security policy through the API: validation, versions, the audit trail, and its
//! effect on sign-in, enrollment and lockout, also in a second instance on the same database.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::kinds;
use crate::codes::{PHONE, json_of, strings, wrong_code};
use crate::helpers::{Backend, Options, PASSWORD, assert_error, spawn_app, start_on};
use crate::on_both_backends;
use crate::totp::independent_totp;

on_both_backends!(
    changes_are_checked_versioned_and_audited,
    requiring_everyone_makes_plain_users_enroll_after_the_grace_period,
    a_method_taken_off_the_list_cannot_be_enrolled_or_used,
    an_administrator_cannot_disallow_their_only_method,
    a_user_whose_only_factor_is_disallowed_enrolls_an_allowed_one,
    a_lower_lockout_threshold_locks_sooner,
    a_second_instance_applies_a_change_without_restart,
);

async fn changes_are_checked_versioned_and_audited(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let initial = json_of(
        app.get(&admin.client, "/api/v1/admin/policy").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            &initial["version"],
            &initial["updated_at"],
            &initial["updated_by"]
        ),
        (&json!(0), &Value::Null, &Value::Null)
    );
    assert_eq!(initial["policy"]["two_factor"], "admins");
    assert_eq!(
        initial["policy"]["allowed_methods"],
        json!(["totp", "sms", "email"])
    );
    for key in [
        "grace_period_days",
        "recovery_code_count",
        "totp_skew_steps",
        "session_idle_timeout_minutes",
        "session_absolute_timeout_minutes",
        "lockout_free_failures",
        "lockout_first_wait_seconds",
        "lockout_longest_wait_seconds",
    ] {
        assert!(initial["policy"][key].is_u64(), "{key}: {initial}");
    }

    let saved = app
        .change_policy(
            &admin,
            json!({"version": 0, "recovery_code_count": 8, "totp_skew_steps": 2}),
        )
        .await;
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["updated_by"], admin.id.as_str());
    assert_eq!(saved["updated_at"], "2027-01-15T08:00:00Z");
    assert_eq!(
        (
            &saved["policy"]["totp_skew_steps"],
            &saved["policy"]["recovery_code_count"]
        ),
        (&json!(2), &json!(8))
    );
    let read = json_of(
        app.get(&admin.client, "/api/v1/admin/policy").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read, saved);
    // The new count applies to the next set of recovery codes.
    let (_, _, codes) = app.enroll("kim@example.com").await;
    assert_eq!(codes.len(), 8);

    let stale = app
        .patch(
            &admin.client,
            "/api/v1/admin/policy",
            json!({"version": 0, "grace_period_days": 5}),
        )
        .await;
    assert_error(stale, StatusCode::CONFLICT, "policy_changed").await;
    for invalid in [
        json!({"recovery_code_count": 2}),
        json!({"grace_period_days": 91}),
        json!({"totp_skew_steps": 9}),
        json!({"allowed_methods": []}),
        json!({"allowed_methods": ["recovery_code"]}),
        json!({"session_idle_timeout_minutes": 0}),
        json!({"lockout_free_failures": 0}),
    ] {
        let response = app
            .patch(&admin.client, "/api/v1/admin/policy", invalid.clone())
            .await;
        let body = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy").await;
        let name = invalid.as_object().unwrap().keys().next().unwrap().clone();
        assert!(
            body["message"].as_str().unwrap().contains(&name),
            "{invalid}: {body}"
        );
    }
    for malformed in [
        json!({}),
        json!({"version": 1}),
        json!({"lockout": 3}),
        json!({"two_factor": "sometimes"}),
        json!({"allowed_methods": ["carrier_pigeon"]}),
        json!({"grace_period_days": -1}),
        json!({"grace_period_days": "3"}),
    ] {
        let response = app
            .patch(&admin.client, "/api/v1/admin/policy", malformed.clone())
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    }
    let unchanged = json_of(
        app.get(&admin.client, "/api/v1/admin/policy").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unchanged, saved, "refused changes change nothing");

    app.change_policy(&admin, json!({"version": 1, "two_factor": "everyone"}))
        .await;
    let changes = app.audit_events(&admin, "kind=policy_changed").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    for change in &changes {
        assert_eq!(change["actor"], admin.id.as_str());
        assert_eq!(change["actor_email"], "root@example.com");
        assert_eq!(change["ip"], "127.0.0.1");
        assert_eq!(change["user_agent"], super::USER_AGENT);
    }
    assert_eq!(changes[0]["detail"]["version"], 2);
    assert_eq!(
        changes[0]["detail"]["changed"],
        json!({"two_factor": "everyone"})
    );
    assert_eq!(
        changes[1]["detail"]["changed"],
        json!({"recovery_code_count": 8, "totp_skew_steps": 2})
    );
}

async fn requiring_everyone_makes_plain_users_enroll_after_the_grace_period(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    app.create_user("frank@example.com", Some(PASSWORD), false)
        .await;
    let frank = app.id_of("frank@example.com").await;
    assert_eq!(app.admin_view(&admin, &frank).await["two_factor"], "off");
    assert_eq!(
        app.login_state("frank@example.com").await["state"],
        "authenticated"
    );

    app.change_policy(&admin, json!({"two_factor": "everyone"}))
        .await;
    assert_eq!(
        app.admin_view(&admin, &frank).await["two_factor"],
        "pending"
    );
    let listed = json_of(
        app.get(&admin.client, "/api/v1/admin/users?query=frank")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["users"][0]["two_factor"], "pending");
    assert_eq!(
        app.login_state("frank@example.com").await,
        json!({"state": "enrollment_required", "methods": ["totp", "sms", "email"]})
    );

    // With a grace period a user may still sign in for a while, pending all along.
    app.change_policy(&admin, json!({"grace_period_days": 7}))
        .await;
    app.create_user("gina@example.com", Some(PASSWORD), false)
        .await;
    let gina = app.id_of("gina@example.com").await;
    let client = app.client();
    let step = json_of(
        app.login(&client, "gina@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["state"], "authenticated");
    let account = json_of(app.get(&client, "/api/v1/account").await, StatusCode::OK).await;
    assert_eq!(account["two_factor"], "pending");
    assert_eq!(app.admin_view(&admin, &gina).await["two_factor"], "pending");
    app.clock.advance_seconds(6 * 24 * 3600);
    assert_eq!(
        app.login_state("gina@example.com").await["state"],
        "authenticated"
    );
    app.clock.advance_seconds(2 * 24 * 3600);
    assert_eq!(
        app.login_state("gina@example.com").await["state"],
        "enrollment_required"
    );
}

async fn a_method_taken_off_the_list_cannot_be_enrolled_or_used(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    // The administrator keeps a factor that stays allowed.
    app.add_phone(&admin.client, PHONE).await;
    app.enroll("erin@example.com").await;
    let erin = app.id_of("erin@example.com").await;

    let saved = app
        .change_policy(&admin, json!({"allowed_methods": ["email", "sms"]}))
        .await;
    assert_eq!(saved["policy"]["allowed_methods"], json!(["sms", "email"]));

    // Erin's only factor is an authenticator: she must set up another at sign-in.
    let erin_view = app.admin_view(&admin, &erin).await;
    assert_eq!(
        (&erin_view["two_factor"], &erin_view["methods"]),
        (&json!("pending"), &json!([]))
    );
    let client = app.client();
    let step = json_of(
        app.login(&client, "erin@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        step,
        json!({"state": "enrollment_required", "methods": ["sms", "email"]})
    );
    let refused = app.post(&client, "/api/v1/account/totp", json!({})).await;
    assert_error(refused, StatusCode::FORBIDDEN, "method_not_allowed").await;

    // A new user who must enroll is offered only the allowed methods, and TOTP is refused.
    app.create_user("fay@example.com", Some(PASSWORD), true)
        .await;
    let fay = app.client();
    let step = json_of(
        app.login(&fay, "fay@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(step["methods"], json!(["sms", "email"]));
    let refused = app.post(&fay, "/api/v1/account/totp", json!({})).await;
    assert_error(refused, StatusCode::FORBIDDEN, "method_not_allowed").await;

    // The administrator, who has a phone, still administers.
    let me = app.admin_view(&admin, &admin.id).await;
    assert_eq!(me["methods"], json!(["sms"]));
}

async fn a_lower_lockout_threshold_locks_sooner(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    app.change_policy(&admin, json!({"lockout_free_failures": 2}))
        .await;
    let (_, secret, _) = app.enroll("grace@example.com").await;
    app.clock.advance_seconds(30);
    let client = app.at_second_factor("grace@example.com").await;
    let right = independent_totp(&secret, app.now());
    for _ in 0..2 {
        let wrong = app
            .post(
                &client,
                "/api/v1/login/verify",
                json!({"method": "totp", "code": wrong_code(&right)}),
            )
            .await;
        assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_code").await;
    }
    let locked = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "totp", "code": right}),
        )
        .await;
    assert!(locked.headers().contains_key("retry-after"));
    assert_error(locked, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts").await;

    let grace = app.id_of("grace@example.com").await;
    let events = app
        .audit_events(&admin, &format!("user={grace}&limit=5"))
        .await;
    assert_eq!(
        kinds(&events)[..3],
        ["locked_out", "sign_in_failed", "sign_in_failed"],
        "{events:?}"
    );
    assert_eq!(events[0]["detail"]["failures"], 2);
}

async fn a_second_instance_applies_a_change_without_restart(backend: Backend) {
    let Some(first) = spawn_app(backend).await else {
        return;
    };
    let admin = first.signed_in_admin("root@example.com").await;
    first
        .create_user("hal@example.com", Some(PASSWORD), false)
        .await;
    let first_policy = first.url("/api/v1/admin/policy");
    let second = start_on(first.database, Options::default()).await;
    // The second instance has read the policy (and keeps it for up to a second).
    assert_eq!(
        second.login_state("hal@example.com").await,
        json!({"state": "authenticated", "methods": []})
    );

    let changed = admin
        .client
        .patch(&first_policy)
        .json(&json!({"two_factor": "everyone", "allowed_methods": ["totp", "email"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let started = Instant::now();
    loop {
        let step = second.login_state("hal@example.com").await;
        if step["state"] == "enrollment_required" {
            assert_eq!(step["methods"], json!(["totp", "email"]));
            break;
        }
        assert_eq!(step["state"], "authenticated", "{step}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the second instance still applies the old policy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Sessions live in the database, so the administrator's cookie works here too.
    let read = json_of(
        second.get(&admin.client, "/api/v1/admin/policy").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["version"], 1);
    assert_eq!(
        strings(&read["policy"]["allowed_methods"]),
        ["totp", "email"]
    );
}

/// An administrator whose only factor is an authenticator app cannot take TOTP off the list:
/// their very next request would be refused, and only the command line could undo it.
async fn an_administrator_cannot_disallow_their_only_method(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let refused = app
        .patch(
            &admin.client,
            "/api/v1/admin/policy",
            json!({"allowed_methods": ["sms", "email"]}),
        )
        .await;
    let body = assert_error(refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("you have set up"),
        "{body}"
    );
    let policy = json_of(
        app.get(&admin.client, "/api/v1/admin/policy").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(policy["version"], 0, "nothing was saved");
    // Still an administrator with a usable factor.
    json_of(
        app.get(&admin.client, "/api/v1/admin/users").await,
        StatusCode::OK,
    )
    .await;
    // Keeping TOTP among others is fine.
    let saved = app
        .change_policy(&admin, json!({"allowed_methods": ["totp", "email"]}))
        .await;
    assert_eq!(saved["policy"]["allowed_methods"], json!(["totp", "email"]));
}

/// A user whose only factor (a phone) the policy stops allowing is neither let in with the
/// password alone nor stuck: the enrollment at sign-in adds an allowed factor as their first.
async fn a_user_whose_only_factor_is_disallowed_enrolls_an_allowed_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let gus = app.signed_in("gus@example.com").await;
    app.add_phone(&gus, PHONE).await;
    app.change_policy(&admin, json!({"allowed_methods": ["totp"]}))
        .await;

    let client = app.client();
    let step = json_of(
        app.login(&client, "gus@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        step,
        json!({"state": "enrollment_required", "methods": ["totp"]})
    );
    let started = json_of(
        app.post(&client, "/api/v1/account/totp", json!({})).await,
        StatusCode::OK,
    )
    .await;
    let secret = started["secret"].as_str().unwrap().to_owned();
    let confirmed = json_of(
        app.post(
            &client,
            "/api/v1/account/totp/confirm",
            json!({"code": independent_totp(&secret, app.now())}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        !strings(&confirmed["recovery_codes"]).is_empty(),
        "a first usable factor comes with recovery codes"
    );
    let account = json_of(app.get(&client, "/api/v1/account").await, StatusCode::OK).await;
    assert_eq!(
        (&account["two_factor"], &account["methods"][0]),
        (&json!("enabled"), &json!("totp"))
    );
}
