//! `twofold audit export` and `twofold audit verify`: the log as JSON lines in chain order,
//! and a chain that tells a changed or removed entry, on the database the server uses.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::on_both_backends;
use crate::process::{Installation, installation, stderr, stdout};

on_both_backends!(
    audit_export_writes_every_entry_in_chain_order,
    audit_verify_names_a_changed_or_removed_entry,
    audit_verify_catches_an_anchor_moved_by_hand
);

fn succeed(install: &Installation, args: &[&str]) -> String {
    let output = install.run(args, None);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

/// The one stderr line of a failed `twofold audit verify`.
fn verify_fails(install: &Installation) -> String {
    let output = install.run(&["audit", "verify"], None);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    let message = stderr(&output);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    message
}

async fn audit_export_writes_every_entry_in_chain_order(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    succeed(&install, &["user", "add", "alice@example.com"]);
    succeed(&install, &["user", "add", "bob@example.com", "--admin"]);
    succeed(&install, &["policy", "set", "grace_period_days=3"]);
    succeed(&install, &["user", "disable", "alice@example.com"]);

    let exported = succeed(&install, &["audit", "export"]);
    let entries: Vec<Value> = exported
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(entries.len() >= 4, "{exported}");
    let keys: BTreeSet<&str> = [
        "seq",
        "at",
        "kind",
        "description",
        "actor",
        "actor_email",
        "subject",
        "subject_email",
        "ip",
        "user_agent",
        "detail",
        "prev_hash",
        "hash",
    ]
    .into();
    let mut prev_hash = "0".repeat(64);
    for (index, entry) in entries.iter().enumerate() {
        let fields: BTreeSet<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, keys, "{entry}");
        assert_eq!(
            entry["seq"],
            index as u64 + 1,
            "oldest first, no gaps: {exported}"
        );
        assert_eq!(entry["prev_hash"], prev_hash.as_str(), "{entry}");
        let hash = entry["hash"].as_str().unwrap();
        assert!(
            hash.len() == 64 && hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "{entry}"
        );
        prev_hash = hash.to_owned();
        assert!(entry["detail"].is_object(), "{entry}");
        let at = entry["at"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
            "{at}"
        );
        // Everything here was done from the command line: no actor, no request.
        assert_eq!(entry["actor"], Value::Null, "{entry}");
        assert_eq!(entry["ip"], Value::Null, "{entry}");
    }
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|entry| {
            (
                entry["kind"].as_str().unwrap(),
                entry["subject_email"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("user_created", "alice@example.com"),
        ("user_created", "bob@example.com"),
        ("policy_changed", ""),
        ("user_disabled", "alice@example.com"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    let created = entries
        .iter()
        .find(|entry| entry["subject_email"] == "bob@example.com")
        .unwrap();
    assert_eq!(created["detail"]["admin"], true, "{created}");
    assert!(
        created["subject"].as_str().unwrap().len() >= 32,
        "{created}"
    );

    // To a file: the same lines, readable by this user only.
    let path = install.data_path().join("audit.jsonl");
    let written = succeed(
        &install,
        &["audit", "export", "--output", path.to_str().unwrap()],
    );
    assert!(
        written.contains(&format!("exported {} audit entries", entries.len())),
        "{written}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), exported);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

async fn audit_verify_names_a_changed_or_removed_entry(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        succeed(&install, &["user", "add", email]);
    }
    let intact = succeed(&install, &["audit", "verify"]);
    assert_eq!(intact.trim(), "audit log intact: 3 entries checked");

    // Someone with write access to the database, but not the master key, edits an entry.
    let database = &install.database;
    database
        .execute_raw(if database.is_sqlite() {
            "DROP TRIGGER audit_events_append_only"
        } else {
            "DROP TRIGGER audit_events_append_only ON audit_events"
        })
        .await;
    database
        .execute_raw("UPDATE audit_events SET kind = 'user_updated' WHERE seq = 2")
        .await;
    let message = verify_fails(&install);
    assert!(message.contains("entry 2 was changed"), "{message}");
    // The hash covers the content: put back, the chain verifies again.
    database
        .execute_raw("UPDATE audit_events SET kind = 'user_created' WHERE seq = 2")
        .await;
    succeed(&install, &["audit", "verify"]);

    // Removing an entry from the middle leaves a gap the chain names.
    database
        .execute_raw("DELETE FROM audit_events WHERE seq = 2")
        .await;
    let message = verify_fails(&install);
    assert!(message.contains("entry 2 is missing"), "{message}");
}

/// Removing the oldest entries and pointing the anchor at the last one removed is exactly what
/// retention does; done by hand (by someone with database access, hiding the start of the
/// log) it is caught, because no retention entry in the chain announced that anchor.
async fn audit_verify_catches_an_anchor_moved_by_hand(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        succeed(&install, &["user", "add", email]);
    }
    let exported = succeed(&install, &["audit", "export"]);
    let second: Value = serde_json::from_str(exported.lines().nth(1).unwrap()).unwrap();
    let hash = second["hash"].as_str().unwrap();
    let database = &install.database;
    let anchor = if database.is_sqlite() {
        format!("X'{hash}'")
    } else {
        format!("decode('{hash}', 'hex')")
    };
    database
        .execute_raw(&format!(
            "DELETE FROM audit_events WHERE seq <= 2; \
             INSERT INTO audit_anchor (id, seq, hash) VALUES (1, 2, {anchor})"
        ))
        .await;
    let message = verify_fails(&install);
    assert!(
        message.contains("starts after entry 2") && message.contains("no retention entry"),
        "{message}"
    );
    let exported = succeed(&install, &["audit", "export"]);
    let first: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 3);
    assert_eq!(first["prev_hash"], hash);

    // The first entry after the anchor removed too: the chain no longer starts at the anchor.
    succeed(&install, &["user", "add", "d@example.com"]);
    database
        .execute_raw("DELETE FROM audit_events WHERE seq = 3")
        .await;
    let message = verify_fails(&install);
    assert!(message.contains("entry 4 does not follow"), "{message}");
}

/// The chain key comes from the master key: another key file cannot check it, and none is
/// made up in its place.
#[tokio::test]
async fn audit_verify_with_another_master_key_reports_it() {
    use std::os::unix::fs::PermissionsExt;
    let install = installation(false).await.unwrap();
    succeed(&install, &["user", "add", "a@example.com"]);
    let key_file = install.data_path().join("master.key");
    let right_key = std::fs::read(&key_file).unwrap();

    std::fs::write(&key_file, [0x5a; 32]).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let message = verify_fails(&install);
    assert!(
        message.contains("entry 1") && message.contains("master key"),
        "{message}"
    );

    std::fs::remove_file(&key_file).unwrap();
    let message = verify_fails(&install);
    assert!(message.contains("missing"), "{message}");
    assert!(!key_file.exists(), "audit verify made a new master key");
    let export = install.run(&["audit", "export"], None);
    assert!(!export.status.success());
    assert!(!key_file.exists(), "audit export made a new master key");

    std::fs::write(&key_file, right_key).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    succeed(&install, &["audit", "verify"]);
}
