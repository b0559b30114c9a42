//! `twofold keys rotate` while the server runs: every secret is re-sealed under the new key,
//! the old key is kept (0600) for the audit chain, the running server follows without a
//! restart, and a retired key file others can read is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::factors::{dump_postgres, enroll, now, serve_to_completion, totp, walk};
use crate::on_both_backends;
use crate::process::{Installation, PASSWORD, Server, installation, password_step, stderr, stdout};

on_both_backends!(
    keys_rotate_reseals_everything_while_the_server_runs,
    a_readable_retired_key_file_is_refused,
);

/// `twofold keys show` as (key id, sealed secrets) pairs, the current key first.
fn show(install: &Installation) -> Vec<(String, u64)> {
    let output = install.run(&["keys", "show"], None);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| {
            // "current: ID (N sealed secrets) in FILE" / "retired: ID (N sealed secrets) in FILE"
            let mut words = line.split_whitespace();
            words.next().unwrap();
            let id = words.next().unwrap().to_owned();
            let count = words
                .next()
                .unwrap()
                .trim_start_matches('(')
                .parse()
                .unwrap();
            (id, count)
        })
        .collect()
}

/// Runs `twofold keys rotate` (it waits a few seconds for running servers) off the runtime.
pub(crate) async fn rotate(install: &Installation) -> std::process::Output {
    let mut command = install.command();
    command.args(["keys", "rotate"]);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// Signs in with the password and a TOTP code of the next time step (the enrollment used the
/// current one, and a step is accepted once).
pub(crate) async fn signs_in_with_totp(
    server: &Server,
    email: &str,
    secret: &[u8],
) -> reqwest::Client {
    let (client, login) = password_step(server, email, PASSWORD).await;
    assert_eq!(login["state"], "second_factor", "{email}: {login}");
    let verified = client
        .post(server.url("/api/v1/login/verify"))
        .json(&json!({"method": "totp", "code": totp(secret, now() + 30)}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200, "{email}");
    let verified: Value = verified.json().await.unwrap();
    assert_eq!(verified["state"], "authenticated", "{email}");
    client
}

const MESSAGE_BODY: &str = "the safe opens with 2718-2818";

/// Signs in with a recovery code (each works once, where a TOTP code would be a replay).
async fn signs_in_with_recovery_code(server: &Server, email: &str, code: &str) -> reqwest::Client {
    let (client, login) = password_step(server, email, PASSWORD).await;
    assert_eq!(login["state"], "second_factor", "{email}: {login}");
    let verified = client
        .post(server.url("/api/v1/login/verify"))
        .json(&json!({"method": "recovery_code", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200, "{email}");
    client
}

/// Reads message `id` as `email` (signing in with a recovery code) and checks its body.
async fn reads_the_message(server: &Server, email: &str, code: &str, id: &str) {
    let client = signs_in_with_recovery_code(server, email, code).await;
    let read: Value = client
        .get(server.url(&format!("/api/v1/messages/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["body"], MESSAGE_BODY, "{read}");
}

pub(crate) fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn retired_file(install: &Installation, id: &str) -> PathBuf {
    install.data_path().join(format!("master.key.retired-{id}"))
}

async fn keys_rotate_reseals_everything_while_the_server_runs(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let log = install.data_path().join("server.log");
    let server = install.serve_logging_to(Some(&log)).await;
    let mut users = Vec::new();
    let mut recovery_codes = Vec::new();
    for name in ["ada", "bob", "cy"] {
        let email = format!("{name}@example.com");
        let enrolled = enroll(&install, &server, &email).await;
        users.push((email, enrolled.secret));
        recovery_codes.push(enrolled.recovery_codes);
    }
    // A secure message: its data key is sealed under the master key too.
    let ada = signs_in_with_recovery_code(&server, &users[0].0, &recovery_codes[0][0]).await;
    let sent: Value = ada
        .post(server.url("/api/v1/messages"))
        .json(&json!({"to": "bob@example.com", "subject": "Safe", "body": MESSAGE_BODY}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message_id = sent["id"].as_str().unwrap().to_owned();
    let before = show(&install);
    assert_eq!(before.len(), 1, "{before:?}");
    let (old_id, sealed) = before[0].clone();
    assert_eq!(sealed, 4);
    let old_key = std::fs::read(install.data_path().join("master.key")).unwrap();

    // Rotate while the server runs.
    let rotated = rotate(&install).await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let line = stdout(&rotated);
    assert_eq!(line.trim_end().lines().count(), 1, "{line}");
    assert!(
        line.contains(&format!("{old_id} -> ")) && line.contains(": 4 sealed secrets re-sealed"),
        "{line}"
    );
    let new_key = std::fs::read(install.data_path().join("master.key")).unwrap();
    assert_ne!(new_key, old_key);
    let retired = retired_file(&install, &old_id);
    assert_eq!(std::fs::read(&retired).unwrap(), old_key);
    assert_eq!(mode(&retired), 0o600);
    assert_eq!(mode(&install.data_path().join("master.key")), 0o600);

    // The running server opens the re-sealed secrets (no restart)...
    for (email, secret) in &users[..2] {
        signs_in_with_totp(&server, email, secret).await;
    }
    reads_the_message(&server, &users[1].0, &recovery_codes[1][0], &message_id).await;
    // ...and seals new ones under the new key.
    let late = enroll(&install, &server, "dee@example.com").await;
    users.push(("dee@example.com".to_owned(), late.secret));
    let after = show(&install);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_ne!(after[0].0, old_id);
    assert_eq!(
        after[0].1, 5,
        "every secret is under the new key: {after:?}"
    );
    assert_eq!(after[1], (old_id.clone(), 0), "{after:?}");
    assert!(
        line.contains(&format!("{old_id} -> {}", after[0].0)),
        "{line}"
    );

    // The audit chain spans both keys and verifies.
    let verified = install.run(&["audit", "verify"], None);
    assert!(verified.status.success(), "{}", stderr(&verified));

    // No key material reached the log, the rotation's output or the database.
    server.kill();
    let mut haystacks = vec![
        ("server log".to_owned(), std::fs::read(&log).unwrap()),
        ("keys rotate stdout".to_owned(), rotated.stdout.clone()),
        ("keys rotate stderr".to_owned(), rotated.stderr.clone()),
    ];
    for file in walk(install.data_path()) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("master.key") {
            haystacks.push((file.display().to_string(), std::fs::read(&file).unwrap()));
        }
    }
    if postgres {
        haystacks.push((
            "PostgreSQL tables".to_owned(),
            dump_postgres(install.database.url()).await,
        ));
    }
    for key in [&old_key, &new_key] {
        let hex: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
        for (name, contents) in &haystacks {
            for needle in [key.as_slice(), hex.as_bytes()] {
                assert!(
                    !contents
                        .windows(needle.len())
                        .any(|window| window == needle),
                    "key material in {name}"
                );
            }
        }
    }

    // Nothing needs the old key to open: the server starts without it...
    let aside = install.data_path().join("aside");
    std::fs::rename(&retired, &aside).unwrap();
    let server = install.serve().await;
    for (email, secret) in &users[2..] {
        signs_in_with_totp(&server, email, secret).await;
    }
    reads_the_message(&server, &users[1].0, &recovery_codes[1][1], &message_id).await;
    server.kill();
    // ...but the audit chain does: its older entries were made under it.
    let unverified = install.run(&["audit", "verify"], None);
    assert!(!unverified.status.success());
    assert!(
        stderr(&unverified).contains(&old_id),
        "{}",
        stderr(&unverified)
    );
    std::fs::rename(&aside, &retired).unwrap();

    // A restart with both files works, and so does a second rotation.
    let server = install.serve().await;
    assert!(
        reqwest::get(server.url("/healthz"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let again = rotate(&install).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains(": 5 sealed secrets re-sealed"),
        "{}",
        stdout(&again)
    );
    let verified = install.run(&["audit", "verify"], None);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert_eq!(show(&install).len(), 3);
}

async fn a_readable_retired_key_file_is_refused(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let server = install.serve().await;
    enroll(&install, &server, "eve@example.com").await;
    let old_id = show(&install)[0].0.clone();
    let rotated = rotate(&install).await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    server.kill();

    let retired = retired_file(&install, &old_id);
    std::fs::set_permissions(&retired, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = serve_to_completion(&install).await;
    assert!(!refused.status.success());
    let message = stderr(&refused);
    let last = message.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("twofold: ")
            && last.contains("retired master key file")
            && last.contains("chmod 600"),
        "{message}"
    );
    // The CLI refuses it too.
    let shown = install.run(&["keys", "show"], None);
    assert!(!shown.status.success());
    assert!(stderr(&shown).contains("chmod 600"), "{}", stderr(&shown));

    std::fs::set_permissions(&retired, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = install.serve().await;
    assert!(
        reqwest::get(server.url("/healthz"))
            .await
            .unwrap()
            .status()
            .is_success()
    );
}
