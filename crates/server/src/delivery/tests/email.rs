//! Email through the queue to a real (small) SMTP server.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::transport::smtp::extension::ClientId;
use time::OffsetDateTime;
use tokio::sync::Notify;
use twofold_core::delivery::{DeliveryChannel, EmailMessage, Mailer};
use twofold_core::email::Email;
use twofold_core::metrics::{DeliveryOutcome, Metrics};
use twofold_core::store::DeliveryFailureState;
use uuid::Uuid;

use super::fake_smtp::{FakeSmtp, parse_mail};
use super::{Harness, contains, gave_up, worker_settings};
use crate::delivery::smtp::{SmtpSender, SmtpSettings, parse_sender};
use crate::delivery::transport::{EmailTransport, TransportError};

fn code_email(code: &str) -> EmailMessage {
    EmailMessage {
        to: Email::parse("bob@example.com").unwrap(),
        subject: "Your Twofold code".into(),
        text_body: format!("Hello,\n\nyour sign-in code is:\n\n{code}\n\nIt works once.\n"),
        html_body: None,
    }
}

fn sender(url: &str) -> Arc<SmtpSender> {
    Arc::new(
        SmtpSender::new(
            &SmtpSettings::parse(url).unwrap(),
            parse_sender("Twofold Test <twofold@example.org>").unwrap(),
            ClientId::Domain("login.example.org".into()),
        )
        .unwrap(),
    )
}

fn plain_url(smtp: &FakeSmtp) -> String {
    format!("smtp://127.0.0.1:{}?tls=none", smtp.port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_email_arrives_as_multipart_text_and_html() {
    let smtp = FakeSmtp::start(&[]).await;
    let harness = Harness::new().await;
    let worker = harness.worker(Some(sender(&plain_url(&smtp))), None);
    let running = tokio::spawn(worker.run());

    harness
        .queue
        .send_email(&code_email("482913"), harness.now())
        .await
        .unwrap();
    let received = smtp.wait_for(1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].mail_from, "<twofold@example.org>");
    assert_eq!(received[0].rcpt_to, ["<bob@example.com>"]);
    assert!(
        smtp.commands()
            .contains(&"EHLO login.example.org".to_owned())
    );

    let mail = parse_mail(&received[0].data);
    assert_eq!(
        mail.header("From"),
        "\"Twofold Test\" <twofold@example.org>"
    );
    assert_eq!(mail.header("To"), "bob@example.com");
    assert_eq!(mail.header("Subject"), "Your Twofold code");
    assert!(
        mail.header("Content-Type")
            .starts_with("multipart/alternative")
    );
    assert!(mail.header("Message-ID").ends_with("@example.org>"));
    assert_eq!(mail.parts.len(), 2, "{mail:?}");
    let text = mail.part("text/plain");
    assert!(text.content_type.contains("charset=utf-8"), "{text:?}");
    let code_lines: Vec<&str> = text
        .body
        .lines()
        .filter(|line| line.contains("482913"))
        .collect();
    assert_eq!(code_lines, ["482913"], "the code stands alone on its line");
    let html = mail.part("text/html");
    assert!(html.body.contains("<code>482913</code>"), "{}", html.body);
    assert!(html.body.contains("monospace"), "{}", html.body);
    assert!(html.body.contains("<p>Hello,</p>"), "{}", html.body);

    // Sent means gone from the queue.
    wait_until_empty(&harness).await;
    running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_sent_percent_decoded() {
    let smtp = FakeSmtp::start(&[]).await;
    let harness = Harness::new().await;
    let url = format!(
        "smtp://alice%40example.org:p%40ss%3Aword@127.0.0.1:{}?tls=none",
        smtp.port
    );
    let worker = harness.worker(Some(sender(&url)), None);
    harness
        .queue
        .send_email(&code_email("111222"), harness.now())
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert_eq!(smtp.auth(), ["\0alice@example.org\0p@ss:word"]);
    assert_eq!(smtp.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_so_a_server_without_it_gets_nothing() {
    let smtp = FakeSmtp::start(&[]).await;
    let harness = Harness::new().await;
    let url = format!("smtp://alice:secret@127.0.0.1:{}", smtp.port);
    let worker = harness.worker(Some(sender(&url)), None);
    harness
        .queue
        .send_email(&code_email("333444"), harness.now())
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);

    let commands = smtp.commands();
    assert!(
        commands
            .iter()
            .all(|command| !command.starts_with("AUTH") && !command.starts_with("MAIL")),
        "{commands:?}"
    );
    assert!(smtp.auth().is_empty() && smtp.received().is_empty());
    let failure = harness.only_failure().await;
    assert!(
        failure.last_error.contains("STARTTLS"),
        "{}",
        failure.last_error
    );
    assert_eq!(
        failure.state,
        DeliveryFailureState::Retrying {
            next_attempt_at: harness.now() + time::Duration::seconds(5)
        },
        "a missing STARTTLS may be fixed on the server: retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_refusal_is_retried_after_the_backoff() {
    let smtp = FakeSmtp::start(&["451 4.7.1 Greylisted, try again later"]).await;
    let harness = Harness::new().await;
    let metrics = Arc::new(Metrics::new());
    let worker = harness.worker(Some(sender(&plain_url(&smtp))), None);
    let worker = worker.with_metrics(Arc::clone(&metrics));
    let counted = |outcome| metrics.deliveries(DeliveryChannel::Email, outcome);
    harness
        .queue
        .send_email(&code_email("555666"), harness.now())
        .await
        .unwrap();

    assert_eq!(worker.run_once().await.unwrap(), 1);
    let failure = harness.only_failure().await;
    assert_eq!(failure.attempts, 1);
    assert!(failure.last_error.contains("451"), "{}", failure.last_error);
    assert!(smtp.received().is_empty());
    assert_eq!(counted(DeliveryOutcome::Failed), 1);
    assert_eq!(counted(DeliveryOutcome::Sent), 0);

    harness.clock.advance_seconds(4);
    assert_eq!(worker.run_once().await.unwrap(), 0, "not due before 5 s");
    harness.clock.advance_seconds(1);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(harness.pending().await, 0);
    assert_eq!(counted(DeliveryOutcome::Failed), 1);
    assert_eq!(counted(DeliveryOutcome::Sent), 1);
    assert!(
        harness
            .stores
            .deliveries
            .failed_deliveries(10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_recipient_is_given_up_and_its_message_erased() {
    let smtp = FakeSmtp::start(&["550 5.1.1 <bob@example.com>: Recipient address rejected"]).await;
    let harness = Harness::new().await;
    let metrics = Arc::new(Metrics::new());
    let worker = harness.worker(Some(sender(&plain_url(&smtp))), None);
    let worker = worker.with_metrics(Arc::clone(&metrics));
    harness
        .queue
        .send_email(&code_email("777888"), harness.now())
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);

    let failure = harness.only_failure().await;
    assert!(gave_up(&failure), "{failure:?}");
    assert!(failure.last_error.contains("550"), "{}", failure.last_error);
    let counted = |outcome| metrics.deliveries(DeliveryChannel::Email, outcome);
    assert_eq!(counted(DeliveryOutcome::GivenUp), 1);
    assert_eq!(counted(DeliveryOutcome::Failed), 0);
    assert!(
        failure.last_error.contains("…@example.com") && !failure.last_error.contains("bob@"),
        "{}",
        failure.last_error
    );
    assert_eq!(
        harness
            .database
            .query_i64("SELECT COUNT(*) FROM deliveries WHERE sealed_payload IS NOT NULL")
            .await,
        0
    );
    harness.clock.advance_seconds(3600);
    assert_eq!(worker.run_once().await.unwrap(), 0, "never retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_never_holds_the_message_in_clear() {
    let harness = Harness::new().await;
    harness
        .queue
        .send_email(&code_email("902817"), harness.now())
        .await
        .unwrap();
    assert_eq!(harness.pending().await, 1);
    let bytes = harness.database_bytes();
    assert!(contains(&bytes, "bob@example.com"), "the scan sees the row");
    for secret in ["902817", "Your Twofold code", "sign-in code"] {
        assert!(!contains(&bytes, secret), "{secret} is in the database");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_moved_to_another_recipient_is_not_sent() {
    let smtp = FakeSmtp::start(&[]).await;
    let harness = Harness::new().await;
    let worker = harness.worker(Some(sender(&plain_url(&smtp))), None);
    harness
        .queue
        .send_email(&code_email("246810"), harness.now())
        .await
        .unwrap();
    harness
        .database
        .execute_raw("UPDATE deliveries SET recipient = 'mallory@example.net'")
        .await;
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert!(smtp.commands().is_empty(), "no connection was even made");
    let failure = harness.only_failure().await;
    assert!(gave_up(&failure));
    assert!(
        failure.last_error.contains("does not open"),
        "{}",
        failure.last_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_queued_before_a_restart_is_sent_by_the_next_process() {
    let smtp = FakeSmtp::start(&[]).await;
    let first = Harness::new().await;
    first
        .queue
        .send_email(&code_email("135791"), first.now())
        .await
        .unwrap();
    // The process dies before its worker ever ran.
    let Harness { database, .. } = first;

    let second = Harness::over(database).await;
    let worker = second.worker(Some(sender(&plain_url(&smtp))), None);
    let running = tokio::spawn(worker.run());
    let received = smtp.wait_for(1).await;
    assert!(received[0].data.contains("\r\n135791\r\n"));
    wait_until_empty(&second).await;
    running.abort();
}

/// An SMTP server that never answers: the attempt hangs until its task is killed.
struct Hanging {
    entered: Arc<Notify>,
}

#[async_trait]
impl EmailTransport for Hanging {
    async fn send_email(
        &self,
        _delivery_id: Uuid,
        _message: &EmailMessage,
        _created_at: OffsetDateTime,
    ) -> Result<(), TransportError> {
        self.entered.notify_one();
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_claimed_by_a_worker_that_died_is_sent_after_its_lease() {
    let smtp = FakeSmtp::start(&[]).await;
    let first = Harness::new().await;
    let entered = Arc::new(Notify::new());
    let dying = first.worker(
        Some(Arc::new(Hanging {
            entered: entered.clone(),
        })),
        None,
    );
    let running = tokio::spawn(dying.run());
    first
        .queue
        .send_email(&code_email("864209"), first.now())
        .await
        .unwrap();
    // The worker claimed it and is mid-send when the process dies.
    entered.notified().await;
    running.abort();
    let _ = running.await;
    let Harness { database, .. } = first;

    let second = Harness::over(database).await;
    let worker = second.worker(Some(sender(&plain_url(&smtp))), None);
    let lease = worker_settings().lease.whole_seconds();
    second.clock.advance_seconds(lease - 1);
    assert_eq!(worker.run_once().await.unwrap(), 0, "still leased");
    assert!(smtp.received().is_empty());
    second.clock.advance_seconds(1);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].data.contains("\r\n864209\r\n"));
    assert_eq!(second.pending().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_a_queued_email_falls_back_to_the_outbox() {
    let harness = Harness::new().await;
    let worker = harness.worker(None, None);
    harness
        .queue
        .send_email(&code_email("192837"), harness.now())
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let files: Vec<_> = std::fs::read_dir(harness.outbox.directory())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(file["channel"], "email");
    assert_eq!(file["to"], "bob@example.com");
    assert!(file["body"].as_str().unwrap().contains("\n192837\n"));
}

async fn wait_until_empty(harness: &Harness) {
    for _ in 0..200 {
        if harness.pending().await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the queue did not empty");
}
