//! SIGKILL right after an acknowledged write loses nothing, and SIGKILL in the middle of a
//! burst of writes leaves each of them whole or absent.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::factors::{base32_decode, now, totp};
use crate::on_both_backends;
use crate::process::{
    Installation, PASSWORD, Server, installation, password_step, stderr, stdout, temporary_password,
};

on_both_backends!(acknowledged_writes_survive_sigkill);

async fn acknowledged_writes_survive_sigkill(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };

    // 1. The first admin is acknowledged by the printed line; kill at once.
    let server = install.serve().await;
    let admin_password = temporary_password(&server.next_stdout_line());
    server.kill();

    // 2. A password change is acknowledged by its 200; kill at once.
    let server = install.serve().await;
    assert!(
        server.stdout_lines().is_empty(),
        "the admin survived: no second one is made"
    );
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": "admin@localhost", "password": admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let changed = client
        .post(server.url("/api/v1/login/password"))
        .json(&json!({"new_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    server.kill();

    // 3. After the restart the new password works and the temporary one does not.
    let server = install.serve().await;
    let client = reqwest::Client::new();
    let new: Value = client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": "admin@localhost", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(new["state"], "enrollment_required");
    let old = client
        .post(server.url("/api/v1/login"))
        .json(&json!({"email": "admin@localhost", "password": admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
}

/// How many users enroll at once, and how many acknowledged confirmations to wait for before
/// the kill (the rest are in flight or not yet sent).
const BURST: usize = 30;
const KILL_AFTER: usize = 10;
/// Confirmations start this far apart, so that the burst is still going when the kill comes
/// even on a slow machine.
const STAGGER: Duration = Duration::from_millis(25);

/// One user's enrollment, started before the burst.
struct Started {
    email: String,
    client: reqwest::Client,
    secret: Vec<u8>,
}

/// What the confirmation got: `Some(recovery codes)` for a 200, `None` for anything else (no
/// answer because of the kill).
type Acknowledged = Option<Vec<String>>;

async fn start_enrollment(server: &Server, email: &str) -> Started {
    let (client, login) = password_step(server, email, PASSWORD).await;
    assert_eq!(login["state"], "enrollment_required", "{email}: {login}");
    let started: Value = client
        .post(server.url("/api/v1/account/totp"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Started {
        email: email.to_owned(),
        client,
        secret: base32_decode(started["secret"].as_str().unwrap()),
    }
}

/// Confirms `started`'s enrollment; a 200 counts towards `acked` and wakes the killer.
async fn confirm(
    started: &Started,
    url: String,
    acked: Arc<AtomicUsize>,
    wake: Arc<Notify>,
) -> Acknowledged {
    let response = started
        .client
        .post(url)
        .json(&json!({"code": totp(&started.secret, now())}))
        .send()
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    acked.fetch_add(1, Ordering::SeqCst);
    wake.notify_one();
    Some(codes)
}

/// The users with a `factor_added` entry in the audit log (which must verify).
fn audited_enrollments(install: &Installation) -> HashSet<String> {
    let verified = install.run(&["audit", "verify"], None);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let exported = install.run(&["audit", "export"], None);
    assert!(exported.status.success(), "{}", stderr(&exported));
    stdout(&exported)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|entry| entry["kind"] == "factor_added")
        .map(|entry| entry["subject_email"].as_str().unwrap().to_owned())
        .collect()
}

/// Signs `email` in with a code of the next time step (the confirmation used the current
/// one); returns the account as the API shows it.
async fn sign_in_with_totp(server: &Server, email: &str, secret: &[u8]) -> Value {
    let (client, login) = password_step(server, email, PASSWORD).await;
    assert_eq!(login["state"], "second_factor", "{email}: {login}");
    assert_eq!(
        login["methods"],
        json!(["totp", "recovery_code"]),
        "{email}"
    );
    let verified = client
        .post(server.url("/api/v1/login/verify"))
        .json(&json!({"method": "totp", "code": totp(secret, now() + 30)}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200, "{email}");
    client
        .get(server.url("/api/v1/account"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

on_both_backends!(a_burst_of_enrollments_survives_sigkill_whole_or_not_at_all);

/// Many users confirm their authenticators at once and the server is SIGKILLed in the middle:
/// after a restart every acknowledged enrollment works, and every other one is either complete
/// (authenticator, recovery codes and audit entry) or absent and can start again.
async fn a_burst_of_enrollments_survives_sigkill_whole_or_not_at_all(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    let server = install.serve().await;
    let mut started = Vec::with_capacity(BURST);
    for n in 0..BURST {
        let email = format!("burst{n}@example.com");
        let added = install.run(
            &["user", "add", &email, "--require-2fa", "--password-stdin"],
            Some(PASSWORD),
        );
        assert!(added.status.success(), "{}", stderr(&added));
        started.push(Arc::new(start_enrollment(&server, &email).await));
    }

    // The burst: confirmations a few milliseconds apart, killed once a third are answered.
    let acked = Arc::new(AtomicUsize::new(0));
    let wake = Arc::new(Notify::new());
    let mut tasks = Vec::with_capacity(BURST);
    for (n, user) in started.iter().enumerate() {
        let (user, url) = (Arc::clone(user), server.url("/api/v1/account/totp/confirm"));
        let (acked, wake) = (Arc::clone(&acked), Arc::clone(&wake));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(STAGGER * n as u32).await;
            confirm(&user, url, acked, wake).await
        }));
    }
    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::timeout(Duration::from_secs(60), wake.notified())
            .await
            .expect("the burst stalled");
    }
    server.kill();
    let mut outcomes: Vec<Acknowledged> = Vec::with_capacity(BURST);
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let answered = outcomes.iter().filter(|outcome| outcome.is_some()).count();
    assert!(answered >= KILL_AFTER);
    assert!(answered < BURST, "the kill came after the burst");

    // After the restart.
    let server = install.serve().await;
    let audited = audited_enrollments(&install);
    let mut completed_unacknowledged = 0;
    for (user, outcome) in started.iter().zip(&outcomes) {
        let state: Value = reqwest::Client::new()
            .post(server.url("/api/v1/login"))
            .json(&json!({"email": user.email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let enrolled = match state["state"].as_str() {
            Some("second_factor") => true,
            Some("enrollment_required") => false,
            _ => panic!("{}: {state}", user.email),
        };
        if let Some(codes) = outcome {
            assert!(enrolled, "{}: acknowledged, then lost", user.email);
            assert!(!codes.is_empty());
        }
        if enrolled {
            // Whole: the authenticator works, the recovery codes and the audit entry exist.
            let account = sign_in_with_totp(&server, &user.email, &user.secret).await;
            assert_eq!(account["two_factor"], "enabled", "{account}");
            let codes_left = account["recovery_codes_left"].as_u64().unwrap();
            if let Some(codes) = outcome {
                assert_eq!(codes_left, codes.len() as u64, "{}", user.email);
            } else {
                assert!(codes_left > 0, "{}: no recovery codes", user.email);
                completed_unacknowledged += 1;
            }
            assert!(audited.contains(&user.email), "{}: not audited", user.email);
        } else {
            // Absent: no trace, and enrollment starts again from scratch.
            assert!(!audited.contains(&user.email), "{}: audited", user.email);
            let again = start_enrollment(&server, &user.email).await;
            let confirmed = again
                .client
                .post(server.url("/api/v1/account/totp/confirm"))
                .json(&json!({"code": totp(&again.secret, now())}))
                .send()
                .await
                .unwrap();
            assert_eq!(confirmed.status(), 200, "{}", user.email);
            let confirmed: Value = confirmed.json().await.unwrap();
            assert!(
                !confirmed["recovery_codes"].as_array().unwrap().is_empty(),
                "{}: a first factor again",
                user.email
            );
        }
    }
    eprintln!(
        "burst: {answered} of {BURST} acknowledged, {completed_unacknowledged} more completed unanswered"
    );
    let verified = install.run(&["audit", "verify"], None);
    assert!(verified.status.success(), "{}", stderr(&verified));
}
