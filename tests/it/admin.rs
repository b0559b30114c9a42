//! `twofold user disable`, `user list` and `twofold policy …`: what administrators do from
//! the shell, seen by the running server.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::process::{Installation, PASSWORD, Server, installation, stderr, stdout};

on_both_backends!(
    a_disabled_user_cannot_sign_in_until_enabled,
    user_list_shows_every_user_with_status,
    policy_set_and_show_round_trip
);

/// Runs `twofold ARGS…`, asserts success, and returns stdout.
fn succeed(install: &Installation, args: &[&str]) -> String {
    let output = install.run(args, None);
    assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

/// Runs `twofold ARGS…` and asserts the contract's failure: non-zero, one line on stderr that
/// contains `expected`, nothing on stdout.
fn fail(install: &Installation, args: &[&str], expected: &str) {
    let output = install.run(args, None);
    assert!(!output.status.success(), "{args:?} succeeded");
    let message = stderr(&output);
    assert_eq!(message.trim_end().lines().count(), 1, "{args:?}: {message}");
    assert!(message.contains(expected), "{args:?}: {message}");
    assert!(stdout(&output).is_empty(), "{args:?}");
}

fn add_with_password(install: &Installation, email: &str) {
    let added = install.run(
        &["user", "add", email, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.status.success(), "{}", stderr(&added));
}

async fn sign_in(server: &Server, client: &reqwest::Client, email: &str) -> reqwest::Response {
    client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
}

async fn a_disabled_user_cannot_sign_in_until_enabled(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let server = install.serve().await;
    add_with_password(&install, "alice@example.com");
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let signed_in: Value = sign_in(&server, &client, "alice@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(signed_in["state"], "authenticated");

    let disabled = succeed(&install, &["user", "disable", "alice@example.com"]);
    assert!(disabled.contains("disabled: yes"), "{disabled}");
    assert!(disabled.contains("two_factor: off"), "{disabled}");
    // Disabling ends the sessions the user has, and refuses new ones like a wrong password.
    let account = client
        .get(server.url("/api/v1/account"))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 401);
    let refused = sign_in(&server, &reqwest::Client::new(), "alice@example.com").await;
    assert_eq!(refused.status(), 401);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"], "invalid_credentials");
    let shown = succeed(&install, &["user", "show", "alice@example.com"]);
    assert!(shown.contains("disabled: yes"), "{shown}");

    let enabled = succeed(
        &install,
        &["user", "disable", "ALICE@example.com", "--enable"],
    );
    assert!(enabled.contains("disabled: no"), "{enabled}");
    let again: Value = sign_in(&server, &reqwest::Client::new(), "alice@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["state"], "authenticated");

    fail(
        &install,
        &["user", "disable", "nobody@example.com"],
        "no such user",
    );
}

async fn user_list_shows_every_user_with_status(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    assert_eq!(succeed(&install, &["user", "list"]), "");
    add_with_password(&install, "carol@example.com");
    succeed(&install, &["user", "add", "bob@example.com", "--admin"]);
    succeed(
        &install,
        &["user", "add", "alice@example.com", "--require-2fa"],
    );
    succeed(&install, &["user", "disable", "carol@example.com"]);

    let listed = succeed(&install, &["user", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(
        lines,
        [
            "alice@example.com two_factor=pending methods=none admin=no disabled=no",
            "bob@example.com two_factor=pending methods=none admin=yes disabled=no",
            "carol@example.com two_factor=off methods=none admin=no disabled=yes",
        ],
        "{listed}"
    );
    let shown = succeed(&install, &["user", "show", "bob@example.com"]);
    assert!(
        shown.contains("admin: yes") && shown.contains("disabled: no"),
        "{shown}"
    );

    let found = succeed(&install, &["user", "list", "--query", "CAROL"]);
    assert_eq!(found.lines().count(), 1, "{found}");
    assert!(found.starts_with("carol@example.com "), "{found}");
    assert_eq!(succeed(&install, &["user", "list", "--query", "zed"]), "");
}

async fn policy_set_and_show_round_trip(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let initial: Value = serde_json::from_str(&succeed(&install, &["policy", "show"])).unwrap();
    assert_eq!(initial["version"], 0, "{initial}");
    assert_eq!(initial["two_factor"], "admins");
    assert_eq!(initial["updated_at"], Value::Null);
    add_with_password(&install, "dana@example.com");
    let shown = succeed(&install, &["user", "show", "dana@example.com"]);
    assert!(shown.contains("two_factor: off"), "{shown}");

    let set: Value = serde_json::from_str(&succeed(
        &install,
        &[
            "policy",
            "set",
            "two_factor=everyone",
            "allowed_methods=totp,sms",
            "grace_period_days=7",
        ],
    ))
    .unwrap();
    assert_eq!(set["version"], 1, "{set}");
    assert_eq!(set["two_factor"], "everyone");
    assert_eq!(set["allowed_methods"], json!(["totp", "sms"]));
    assert_eq!(set["grace_period_days"], 7);
    assert_eq!(set["recovery_code_count"], initial["recovery_code_count"]);
    assert!(set["updated_at"].as_str().unwrap().contains('T'), "{set}");
    let again: Value = serde_json::from_str(&succeed(&install, &["policy", "show"])).unwrap();
    assert_eq!(again, set);

    // The status follows the policy: required of everyone, nothing enrolled.
    let shown = succeed(&install, &["user", "show", "dana@example.com"]);
    assert!(shown.contains("two_factor: pending"), "{shown}");
    let listed = succeed(&install, &["user", "list"]);
    assert!(
        listed.contains("dana@example.com two_factor=pending"),
        "{listed}"
    );

    for (args, expected) in [
        (vec!["policy", "set", "two_factor=sometimes"], "two_factor"),
        (vec!["policy", "set", "colour=blue"], "colour"),
        (
            vec!["policy", "set", "grace_period_days=lots"],
            "grace_period_days",
        ),
        (
            vec!["policy", "set", "allowed_methods=totp,pigeon"],
            "pigeon",
        ),
        (vec!["policy", "set", "allowed_methods="], "allowed_methods"),
        (
            vec!["policy", "set", "lockout_free_failures=1000"],
            "lockout_free_failures",
        ),
        (vec!["policy", "set", "two_factor"], "KEY=VALUE"),
    ] {
        fail(&install, &args, expected);
    }
    let unchanged: Value = serde_json::from_str(&succeed(&install, &["policy", "show"])).unwrap();
    assert_eq!(unchanged, set);
}

/// Usage errors follow the contract too: exit status 2 and one line naming the usage.
#[test]
fn usage_errors_are_one_line() {
    for (args, expected) in [
        (vec![], "usage: twofold [OPTIONS] <COMMAND>"),
        (vec!["user"], "usage: twofold user [OPTIONS] <COMMAND>"),
        (vec!["user", "add"], "<EMAIL>"),
        (vec!["user", "adx"], "'add'"),
        (vec!["policy", "set"], "<KEY=VALUE>"),
        (vec!["audit", "export", "--output"], "--output"),
        (vec!["audit", "verify", "extra"], "'extra'"),
    ] {
        let output = std::process::Command::new(crate::process::binary())
            .env_clear()
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = stderr(&output);
        assert_eq!(message.trim_end().lines().count(), 1, "{args:?}: {message}");
        assert!(message.starts_with("twofold: "), "{args:?}: {message}");
        assert!(message.contains(expected), "{args:?}: {message}");
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
    let help = std::process::Command::new(crate::process::binary())
        .args(["policy", "set", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(stdout(&help).contains("allowed_methods"));
}
