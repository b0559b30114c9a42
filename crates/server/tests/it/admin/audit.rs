//! The audit log through the API: what the user flows and administrators' actions record (time,
//! actor, subject, IP address, user agent), the filters and paging, the JSON-lines export in
//! chain order, tamper detection after raw SQL, and the account's own activity.

use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use twofold_core::audit::{Event, EventKind};
use twofold_core::user::UserId;

use super::{Admin, USER_AGENT, kinds};
use crate::codes::json_of;
use crate::helpers::{Backend, PASSWORD, TestApp, assert_error, spawn_app};
use crate::on_both_backends;

on_both_backends!(
    events_record_time_actor_subject_address_and_agent,
    the_log_is_filtered_and_paged_newest_first,
    the_export_is_json_lines_in_chain_order,
    a_changed_entry_breaks_the_chain,
    a_removed_entry_breaks_the_chain,
    retention_keeps_the_chain_verifiable_and_a_moved_anchor_is_caught,
    the_activity_shows_only_the_users_own_recent_events,
);

/// The one event of `kind` among `events`.
fn only<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|event| event["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "{kind} in {:?}", kinds(events));
    found[0]
}

fn is_hex_hash(value: &Value) -> bool {
    value.as_str().is_some_and(|text| {
        text.len() == 64
            && text
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    })
}

async fn events_record_time_actor_subject_address_and_agent(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    let created = json_of(
        app.post(
            &admin.client,
            "/api/v1/admin/users",
            json!({"email": "ivan@example.com", "password": PASSWORD, "require_2fa": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let ivan = created["id"].as_str().unwrap().to_owned();

    app.clock.advance_seconds(60);
    let client = app.agent();
    let wrong = app
        .login(&client, "ivan@example.com", "a wrong password!")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    app.login(&client, "ivan@example.com", PASSWORD).await;
    let (secret, codes) = app.add_totp(&client).await;
    let sent = app
        .post(&client, "/api/v1/account/email/send-code", json!({}))
        .await;
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    app.post(&client, "/api/v1/logout", json!({})).await;
    app.clock.advance_seconds(30);
    let client = app.agent();
    app.login(&client, "ivan@example.com", PASSWORD).await;
    let verified = app
        .post(
            &client,
            "/api/v1/login/verify",
            json!({"method": "recovery_code", "code": codes[0]}),
        )
        .await;
    assert_eq!(verified.status(), StatusCode::OK);
    app.admin_change(&admin, &ivan, json!({"require_2fa": false}))
        .await;
    app.admin_change(&admin, &ivan, json!({"disabled": true}))
        .await;
    app.admin_reset(&admin, &ivan).await;

    let events = app
        .audit_events(&admin, &format!("user={ivan}&limit=100"))
        .await;
    let text = serde_json::to_string(&events).unwrap();
    for secret_text in [PASSWORD, "a wrong password!", &secret, &codes[0]] {
        assert!(!text.contains(secret_text), "the log holds a secret");
    }
    for event in &events {
        assert!(
            event["actor"] == ivan.as_str() || event["subject"] == ivan.as_str(),
            "{event}"
        );
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        assert_eq!(event["user_agent"], USER_AGENT, "{event}");
        let at = OffsetDateTime::parse(event["at"].as_str().unwrap(), &Rfc3339).unwrap();
        let start = app.now() - 120;
        assert!(
            (start..=app.now()).contains(&at.unix_timestamp()),
            "{event}"
        );
        assert!(is_hex_hash(&event["hash"]) && is_hex_hash(&event["prev_hash"]));
        assert!(event["detail"].is_object(), "{event}");
        let description = event["description"].as_str().unwrap();
        assert!(!description.is_empty() && description != event["kind"]);
    }
    let newest_first: Vec<u64> = events
        .iter()
        .map(|event| event["seq"].as_u64().unwrap())
        .collect();
    assert!(newest_first.windows(2).all(|pair| pair[0] > pair[1]));

    let by_admin = |kind: &str| {
        let event = only(&events, kind);
        assert_eq!(event["actor"], admin.id.as_str(), "{event}");
        assert_eq!(event["actor_email"], "root@example.com", "{event}");
        assert_eq!(event["subject_email"], "ivan@example.com", "{event}");
        event.clone()
    };
    let created = by_admin("user_created");
    assert_eq!(created["at"], "2027-01-15T08:00:00Z");
    assert_eq!(created["description"], "User created");
    assert_eq!(by_admin("user_updated")["detail"]["require_2fa"], false);
    by_admin("user_disabled");
    by_admin("two_factor_reset");

    let failed = only(&events, "sign_in_failed");
    assert_eq!(failed["actor"], Value::Null);
    assert_eq!(failed["at"], "2027-01-15T08:01:00Z");
    assert_eq!(failed["description"], "Failed sign-in");
    let own = |kind: &str| {
        let found: Vec<&Value> = events
            .iter()
            .filter(|event| event["kind"] == kind)
            .collect();
        assert!(!found.is_empty(), "no {kind} in {:?}", kinds(&events));
        for event in &found {
            assert_eq!(event["actor"], ivan.as_str(), "{event}");
            assert_eq!(event["actor_email"], "ivan@example.com", "{event}");
        }
        found[0].clone()
    };
    assert_eq!(own("factor_added")["detail"]["method"], "totp");
    own("code_sent");
    own("recovery_code_used");
    let signed_in = own("sign_in_succeeded");
    assert_eq!(signed_in["detail"]["method"], "recovery_code");
    assert_eq!(signed_in["at"], "2027-01-15T08:01:30Z");
}

/// Creates `email` and lets it fail a sign-in `times` times.
async fn fail_sign_ins(app: &TestApp, email: &str, times: usize) {
    app.create_user(email, Some(PASSWORD), false).await;
    for _ in 0..times {
        let response = app.login(&app.client(), email, "not the password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

async fn the_log_is_filtered_and_paged_newest_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin: Admin = app.signed_in_admin("root@example.com").await;
    fail_sign_ins(&app, "ann@example.com", 1).await;
    // Less than the session idle timeout, which would end the administrator's session.
    app.clock.advance_seconds(600);
    let later = "2027-01-15T08:10:00Z";
    fail_sign_ins(&app, "ben@example.com", 2).await;
    let ann = app.id_of("ann@example.com").await;
    let ben = app.id_of("ben@example.com").await;

    let failed = app.audit_events(&admin, "kind=sign_in_failed").await;
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[0]["subject"], ben.as_str());
    assert_eq!(failed[2]["subject"], ann.as_str());
    let of_ann = app
        .audit_events(&admin, "kind=sign_in_failed&user=ann@example.com")
        .await;
    assert_eq!(of_ann.len(), 1);
    let of_ben = app.audit_events(&admin, &format!("user={ben}")).await;
    assert_eq!(
        kinds(&of_ben),
        ["sign_in_failed", "sign_in_failed", "user_created"]
    );
    let since = app.audit_events(&admin, &format!("since={later}")).await;
    assert_eq!(since.len(), 3);
    assert!(since.iter().all(|event| event["at"] == later));
    let until = app
        .audit_events(&admin, &format!("until={}", later.replace(':', "%3A")))
        .await;
    assert!(!until.is_empty() && until.iter().all(|event| event["at"] != later));
    let window = app
        .audit_events(
            &admin,
            "since=2027-01-15T09:05:00%2B01:00&until=2027-01-15T10:00:00Z&kind=user_created",
        )
        .await;
    assert_eq!(window.len(), 1);
    assert!(
        app.audit_events(&admin, "user=nobody@example.com")
            .await
            .is_empty()
    );

    // Pages of two, following next_before, give the whole log once, newest first.
    let everything = app.audit_events(&admin, "limit=500").await;
    assert!(everything.len() > 4);
    let mut paged = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let page = json_of(
            app.get(&admin.client, &format!("/api/v1/admin/audit?{query}"))
                .await,
            StatusCode::OK,
        )
        .await;
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= 2);
        paged.extend(events.iter().cloned());
        match page["next_before"].as_u64() {
            Some(before) => {
                assert_eq!(before, events.last().unwrap()["seq"].as_u64().unwrap());
                query = format!("limit=2&before={before}");
            }
            None => break,
        }
    }
    assert_eq!(paged, everything);

    for bad in [
        "kind=nope",
        "since=yesterday",
        "until=2027-01-15",
        "limit=0",
        "limit=501",
        "before=x",
        "before=0",
        "user=not%20an%20address",
    ] {
        let response = app
            .get(&admin.client, &format!("/api/v1/admin/audit?{bad}"))
            .await;
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query").await;
    }
}

/// The entries of the export, after checking its headers.
async fn export(app: &TestApp, admin: &Admin) -> Vec<Value> {
    let response = app.get(&admin.client, "/api/v1/admin/audit/export").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"twofold-audit.jsonl\""
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with('\n'));
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

async fn the_export_is_json_lines_in_chain_order(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    // More than one batch of the export.
    for number in 0..520 {
        let event =
            Event::by(EventKind::UserUpdated, None, Some(UserId::random())).with("number", number);
        app.service.audit(event).await.unwrap();
    }
    fail_sign_ins(&app, "ann@example.com", 1).await;

    let lines = export(&app, &admin).await;
    assert!(lines.len() > 520);
    let mut previous = "0".repeat(64);
    for (index, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"].as_u64().unwrap(), index as u64 + 1);
        assert_eq!(line["prev_hash"], previous.as_str(), "{line}");
        previous = line["hash"].as_str().unwrap().to_owned();
    }
    // Each line is the entry as the search shows it.
    let newest = app.audit_events(&admin, "limit=1").await;
    assert_eq!(lines.last().unwrap(), &newest[0]);
    let numbered = &lines[lines.len() - 3 - 100];
    assert_eq!(numbered["kind"], "user_updated");
    assert!(numbered["detail"]["number"].is_u64());

    let report = json_of(
        app.get(&admin.client, "/api/v1/admin/audit/verify").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        report,
        json!({"ok": true, "checked": lines.len(), "problem": null, "anchor_seq": null})
    );
}

/// Lets the test change the log as an attacker with database access would: without the
/// trigger that refuses changes.
pub(super) async fn drop_append_only_trigger(app: &TestApp) {
    let sql = if app.database.is_sqlite() {
        "DROP TRIGGER audit_events_append_only"
    } else {
        "DROP TRIGGER audit_events_append_only ON audit_events"
    };
    app.database.execute_raw(sql).await;
}

pub(super) async fn verify(app: &TestApp, admin: &Admin) -> Value {
    json_of(
        app.get(&admin.client, "/api/v1/admin/audit/verify").await,
        StatusCode::OK,
    )
    .await
}

async fn a_changed_entry_breaks_the_chain(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    fail_sign_ins(&app, "ann@example.com", 3).await;
    let intact = verify(&app, &admin).await;
    assert_eq!(intact["ok"], true, "{intact}");
    let target = intact["checked"].as_u64().unwrap() - 2;

    drop_append_only_trigger(&app).await;
    app.database
        .execute_raw(&format!(
            "UPDATE audit_events SET ip = '203.0.113.9' WHERE seq = {target}"
        ))
        .await;
    let report = verify(&app, &admin).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["checked"], target - 1);
    let problem = report["problem"].as_str().unwrap();
    assert!(problem.contains(&target.to_string()), "{problem}");
}

async fn a_removed_entry_breaks_the_chain(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin = app.signed_in_admin("root@example.com").await;
    fail_sign_ins(&app, "ann@example.com", 3).await;
    let intact = verify(&app, &admin).await;
    assert_eq!(intact["ok"], true, "{intact}");

    drop_append_only_trigger(&app).await;
    app.database
        .execute_raw("DELETE FROM audit_events WHERE seq = 2")
        .await;
    let report = verify(&app, &admin).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["problem"].as_str().unwrap().contains("missing"),
        "{report}"
    );
    // The export still shows what is left, with the gap.
    let seqs: Vec<u64> = export(&app, &admin)
        .await
        .iter()
        .map(|line| line["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(&seqs[..2], [1, 3]);
}

/// Retention removes entries past the retention time after announcing the new anchor in the
/// chain; the rest verifies from that anchor. Doing the same by hand (removing more, moving the
/// anchor) is caught.
async fn retention_keeps_the_chain_verifiable_and_a_moved_anchor_is_caught(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    fail_sign_ins(&app, "old@example.com", 3).await;
    let old_entries = app.service.audit_batch(0, 500).await.unwrap();
    let last_old = old_entries.last().unwrap().clone();

    app.clock.advance_seconds(400 * 86_400);
    let admin = app.signed_in_admin("root@example.com").await;
    let removed = app
        .service
        .purge_old_audit_entries(time::Duration::days(365))
        .await
        .unwrap();
    assert_eq!(removed, old_entries.len() as u64);
    let report = verify(&app, &admin).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["anchor_seq"], last_old.seq, "{report}");
    let purged = only(&export(&app, &admin).await, "audit_purged").clone();
    assert_eq!(purged["detail"]["anchor_seq"], last_old.seq);
    // Nothing is old any more: a second run removes nothing and announces nothing.
    assert_eq!(
        app.service
            .purge_old_audit_entries(time::Duration::days(365))
            .await
            .unwrap(),
        0
    );

    // Someone with database access removes the next entry too and moves the anchor to it.
    let next = app.service.audit_batch(last_old.seq, 1).await.unwrap();
    let next = &next[0];
    drop_append_only_trigger(&app).await;
    let hash: String = next.hash.iter().map(|byte| format!("{byte:02x}")).collect();
    let anchor = if app.database.is_sqlite() {
        format!("X'{hash}'")
    } else {
        format!("decode('{hash}', 'hex')")
    };
    app.database
        .execute_raw(&format!(
            "DELETE FROM audit_events WHERE seq = {seq}; \
             UPDATE audit_anchor SET seq = {seq}, hash = {anchor}",
            seq = next.seq
        ))
        .await;
    let report = verify(&app, &admin).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["problem"]
            .as_str()
            .unwrap()
            .contains("no retention entry"),
        "{report}"
    );
}

async fn the_activity_shows_only_the_users_own_recent_events(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let kim = app.signed_in("kim@example.com").await;
    fail_sign_ins(&app, "lee@example.com", 2).await;
    let lee = app.login(&app.client(), "lee@example.com", PASSWORD).await;
    assert_eq!(lee.status(), StatusCode::OK);
    let kim_id = app.id_of("kim@example.com").await;

    let activity = json_of(
        app.get(&kim, "/api/v1/account/activity").await,
        StatusCode::OK,
    )
    .await;
    let events = activity["events"].as_array().unwrap();
    assert_eq!(kinds(events), ["sign_in_succeeded", "user_created"]);
    for event in events {
        assert!(event["actor"] == kim_id.as_str() || event["subject"] == kim_id.as_str());
    }

    // Only the 20 newest.
    let id: UserId = kim_id.parse().unwrap();
    for _ in 0..25 {
        app.service
            .audit(Event::own(EventKind::CodeSent, id))
            .await
            .unwrap();
    }
    let activity = json_of(
        app.get(&kim, "/api/v1/account/activity").await,
        StatusCode::OK,
    )
    .await;
    let events = activity["events"].as_array().unwrap();
    assert_eq!(events.len(), 20);
    assert!(events.iter().all(|event| event["kind"] == "code_sent"));

    // Only for a full session.
    assert_error(
        app.get(&app.client(), "/api/v1/account/activity").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let (_, _, _) = app.enroll("mia@example.com").await;
    app.clock.advance_seconds(30);
    let half = app.at_second_factor("mia@example.com").await;
    assert_error(
        app.get(&half, "/api/v1/account/activity").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
}
