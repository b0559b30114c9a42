//! `twofold user …` and first start, as the contract describes them.

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::process::{
    PASSWORD, binary, installation, password_step, stderr, stdout, temporary_password,
};

on_both_backends!(
    user_commands_follow_the_contract,
    first_start_creates_one_admin_and_the_cli_sees_the_server_database
);

async fn user_commands_follow_the_contract(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };

    let added = install.run(&["user", "add", "alice@example.com"], None);
    assert!(added.status.success(), "{}", stderr(&added));
    let password = temporary_password(stdout(&added).trim());
    assert!(password.len() >= 12);

    let shown = install.run(&["user", "show", "alice@example.com"], None);
    assert!(shown.status.success());
    let text = stdout(&shown);
    assert!(
        text.contains("two_factor: off") && text.contains("methods: none"),
        "{text}"
    );

    let required = install.run(&["user", "require-2fa", "ALICE@example.com"], None);
    assert!(
        stdout(&required).contains("two_factor: pending"),
        "{}",
        stdout(&required)
    );
    let not_required = install.run(&["user", "require-2fa", "alice@example.com", "--off"], None);
    assert!(stdout(&not_required).contains("two_factor: off"));
    let required_again = install.run(&["user", "require-2fa", "alice@example.com"], None);
    assert!(required_again.status.success());
    let reset = install.run(&["user", "reset-2fa", "alice@example.com"], None);
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert!(
        stdout(&reset).contains("two_factor: pending"),
        "required and nothing enrolled"
    );

    let with_password = install.run(
        &[
            "user",
            "add",
            "bob@example.com",
            "--require-2fa",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(with_password.status.success(), "{}", stderr(&with_password));
    assert_eq!(stdout(&with_password).trim(), "Created bob@example.com");
    assert!(
        stdout(&install.run(&["user", "show", "bob@example.com"], None))
            .contains("two_factor: pending")
    );

    // Failures: non-zero, one clear line on stderr, nothing on stdout.
    for (args, stdin, expected) in [
        (vec!["user", "add", "alice@example.com"], None, "exists"),
        (vec!["user", "add", "not-an-address"], None, "@"),
        (
            vec!["user", "add", "carol@example.com", "--password-stdin"],
            Some("password1\n"),
            "too common",
        ),
        (
            vec!["user", "show", "nobody@example.com"],
            None,
            "no such user",
        ),
        (
            vec!["user", "reset-2fa", "nobody@example.com"],
            None,
            "no such user",
        ),
    ] {
        let failed = install.run(&args, stdin);
        assert!(!failed.status.success(), "{args:?} succeeded");
        let message = stderr(&failed);
        assert_eq!(message.trim_end().lines().count(), 1, "{args:?}: {message}");
        assert!(message.contains(expected), "{args:?}: {message}");
        assert!(stdout(&failed).is_empty());
    }
}

async fn first_start_creates_one_admin_and_the_cli_sees_the_server_database(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let server = install.serve().await;
    let first = server.next_stdout_line();
    let mut lines = vec![first];
    lines.extend(server.stdout_lines());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("admin@localhost"));
    let admin_password = temporary_password(&lines[0]);
    assert!(admin_password.len() >= 12 && !admin_password.contains(' '));
    assert!(install.data_path().join("master.key").exists());

    // A user made with the CLI signs in through the running server's API.
    let added = install.run(
        &["user", "add", "dana@example.com", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let (client, login) = password_step(&server, "dana@example.com", PASSWORD).await;
    assert_eq!(login["state"], "authenticated");
    let account: Value = client
        .get(server.url("/api/v1/account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account["email"], "dana@example.com");

    // The admin must change the temporary password, then enroll.
    let (admin, step) = password_step(&server, "admin@localhost", &admin_password).await;
    assert_eq!(step["state"], "password_change_required");
    let step: Value = admin
        .post(server.url("/api/v1/login/password"))
        .json(&json!({"new_password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(step["state"], "enrollment_required");
    drop(server);

    // A second start finds users and creates no second admin.
    let again = install.serve().await;
    assert!(again.stdout_lines().is_empty());
    assert!(binary().exists());
}

/// Regression: a CLI command run before the first `serve` created the data directory (and the
/// SQLite file in it) with the umask's mode, readable by everyone.
#[tokio::test]
async fn the_cli_creates_a_private_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data_dir = parent.path().join("twofold-data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_twofold"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TWOFOLD_DATA_DIR", &data_dir)
        .env("TWOFOLD_LOG", "warn")
        .args(["user", "show", "nobody@example.com"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}

/// Regression (found by a review): output into a pipe whose reader has gone
/// (`twofold user list | head -1`) panicked with a backtrace; it now ends quietly.
#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly() {
    let Some(install) = installation(false).await else {
        return;
    };
    for index in 0..3 {
        let email = format!("user{index}@example.com");
        assert!(install.run(&["user", "add", &email], None).status.success());
    }
    // The read end of the pipe is closed before the command writes anything.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = install
        .command()
        .args(["user", "list"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let errors = stderr(&output);
    assert!(!errors.contains("panicked"), "{errors}");
    assert!(output.status.success(), "{errors}");
}
