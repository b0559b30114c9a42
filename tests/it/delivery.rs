//! Email delivery through the real binary: `twofold mail test` queues, `twofold serve`'s worker
//! sends, and a SIGKILL between the two loses nothing; bad delivery settings stop the server
//! with one line that repeats no secret.

use std::time::{Duration, Instant};

use crate::on_both_backends;
use crate::process::{installation, stderr, stdout};
use crate::smtp::{free_port, start};

on_both_backends!(a_queued_email_survives_sigkill_and_is_sent_after_the_restart);

async fn a_queued_email_survives_sigkill_and_is_sent_after_the_restart(postgres: bool) {
    let Some(install) = installation(postgres).await else {
        return;
    };
    // The SMTP server is down at first: its port is reserved but nothing listens yet.
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}?tls=none");
    let env = [
        ("TWOFOLD_SMTP_URL", smtp_url.as_str()),
        ("TWOFOLD_MAIL_FROM", "Twofold Test <noreply@example.org>"),
    ];
    let first_log = install.data_path().join("first.log");
    let server = install.serve_with(Some(&first_log), &env).await;

    let queued = install.run_with_env(&["mail", "test", "Bob@Example.com"], None, &env);
    assert!(queued.status.success(), "{}", stderr(&queued));
    let printed = stdout(&queued);
    assert!(printed.contains("Queued test email"), "{printed}");
    let code = printed
        .split_whitespace()
        .skip_while(|word| *word != "code")
        .nth(1)
        .unwrap()
        .trim_end_matches(';')
        .to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{printed}"
    );

    // The server's worker tried once, failed to connect, and scheduled a retry.
    wait_for(
        &install,
        "SELECT COUNT(*) FROM deliveries WHERE attempts = 1 AND claimed_until IS NULL",
        1,
    )
    .await;
    let status = install.run_with_env(&["mail", "status"], None, &env);
    let status_text = stdout(&status);
    assert!(status_text.contains("pending: 1"), "{status_text}");
    assert!(status_text.contains("retrying at"), "{status_text}");
    assert!(status_text.contains("bob@example.com"), "{status_text}");

    // The worker logs the failure just after recording it: wait for the line too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&first_log)
        .unwrap_or_default()
        .contains("delivery failed; will retry")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // SIGKILL between "queued" and "sent".
    server.kill();
    let mut smtp = start(port).await;
    let second_log = install.data_path().join("second.log");
    let server = install.serve_with(Some(&second_log), &env).await;

    let data = tokio::time::timeout(Duration::from_secs(60), smtp.messages.recv())
        .await
        .expect("the mail did not arrive after the restart")
        .unwrap();
    assert!(data.contains("\r\nTo: bob@example.com\r\n"), "{data}");
    assert!(
        data.contains("From: \"Twofold Test\" <noreply@example.org>\r\n"),
        "{data}"
    );
    assert!(data.contains("Subject: Twofold test email\r\n"), "{data}");
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(
        data.contains(&format!("\r\n{code}\r\n")),
        "the printed code alone on its line: {data}"
    );
    wait_for(&install, "SELECT COUNT(*) FROM deliveries", 0).await;
    drop(server);

    // The logs name the delivery by domain only and never show the code.
    let first = std::fs::read_to_string(&first_log).unwrap();
    let second = std::fs::read_to_string(&second_log).unwrap();
    assert!(first.contains("delivery failed; will retry"), "{first}");
    assert!(second.contains("message delivered"), "{second}");
    for log_text in [first, second] {
        assert!(log_text.contains("…@example.com"), "{log_text}");
        assert!(!log_text.contains("bob@example.com"), "{log_text}");
        assert!(!log_text.contains(&code), "{log_text}");
    }
}

async fn wait_for(install: &crate::process::Installation, sql: &str, expected: i64) {
    let started = Instant::now();
    loop {
        if install.database.query_i64(sql).await == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{sql} never gave {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_smtp_the_test_email_goes_to_the_outbox() {
    let install = installation(false).await.unwrap();
    let written = install.run(&["mail", "test", "bob@example.com"], None);
    assert!(written.status.success(), "{}", stderr(&written));
    let code = stdout(&written)
        .split_whitespace()
        .skip_while(|word| *word != "code")
        .nth(1)
        .unwrap()
        .to_owned();
    let outbox = install.data_path().join("outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox).unwrap().collect();
    assert_eq!(files.len(), 1);
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files[0].as_ref().unwrap().path()).unwrap()).unwrap();
    assert_eq!(file["to"], "bob@example.com");
    assert!(
        file["body"]
            .as_str()
            .unwrap()
            .contains(&format!("\n{code}\n"))
    );
}

#[tokio::test]
async fn bad_delivery_settings_stop_the_server_with_one_line() {
    let install = installation(false).await.unwrap();
    let cases = [
        (
            "TWOFOLD_SMTP_URL",
            "smtp://alice:hunter2@mail.example.com?tls=never",
        ),
        ("TWOFOLD_SMTP_URL", "pop3://alice:hunter2@mail.example.com"),
        ("TWOFOLD_SMS_URL", "twilio://AC123:hunter2@not-a-number"),
        (
            "TWOFOLD_SMS_URL",
            "https://user:hunter2@sms.example.com/hook",
        ),
    ];
    for (variable, value) in cases {
        let output = install.run_with_env(&["serve"], None, &[(variable, value)]);
        assert!(!output.status.success(), "{variable}={value} started");
        let error = stderr(&output);
        assert_eq!(error.trim_end().lines().count(), 1, "{error}");
        assert!(error.starts_with("twofold: "), "{error}");
        assert!(error.contains(variable), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
