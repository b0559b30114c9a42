//! `twofold mail …`: checks the delivery settings from the shell. `mail test` sends a test
//! email the way the server sends codes (queued for the server's worker when SMTP is
//! configured, into the outbox otherwise); `mail status` shows what waits in the queue and
//! what failed.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::Subcommand;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use twofold_core::clock::{Clock, SystemClock};
use twofold_core::delivery::EmailMessage;
use twofold_core::email::Email;
use twofold_core::store::DeliveryFailureState;
use twofold_server::delivery::outbox::Outbox;
use twofold_server::delivery::payload::QueuedMessage;

use crate::config::Config;
use crate::delivery::DeliverySetup;
use crate::serve::{create_private_directory, load_sealer, open_stores};

/// Failures `mail status` lists at most.
const FAILURES_SHOWN: u32 = 20;

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Sends a test email with a random code to ADDRESS through the configured transport. With
    /// TWOFOLD_SMTP_URL set it is queued and a running `twofold serve` sends it (see
    /// `twofold mail status`); otherwise it is written to the outbox.
    Test { address: String },
    /// Shows how many messages wait in the delivery queue and the latest failures.
    Status,
}

pub async fn run(config: Config, command: MailCommand) -> anyhow::Result<()> {
    match command {
        MailCommand::Test { address } => test(&config, &address).await,
        MailCommand::Status => status(&config).await,
    }
}

async fn test(config: &Config, address: &str) -> anyhow::Result<()> {
    let to = Email::parse(address).map_err(|error| anyhow!("{address:?}: {error}"))?;
    create_private_directory(&config.data_dir)?;
    let stores = open_stores(config).await?;
    let outbox = Arc::new(
        Outbox::open(config.data_dir.join("outbox"))
            .context("cannot create the outbox directory")?,
    );
    let delivery = DeliverySetup::from_config(
        config,
        &stores,
        Arc::new(load_sealer(config, &stores).await?),
        outbox.clone(),
    )?;
    let code = test_code()?;
    let message = EmailMessage {
        to,
        subject: "Twofold test email".to_owned(),
        text_body: format!(
            "This is a test email from Twofold at {}.\n\nIts code is:\n\n{code}\n\n\
             If `twofold mail test` printed the same code, email delivery works.\n",
            config.public_url
        ),
        html_body: None,
    };
    let now = SystemClock.now();
    if config.smtp.is_some() {
        let id = delivery
            .queue
            .enqueue(&QueuedMessage::Email(message.clone()), now)
            .await
            .context("cannot queue the test email")?;
        out!(
            "Queued test email {id} to {} with code {code}; a running `twofold serve` sends it \
             (`twofold mail status` shows failures)",
            message.to
        );
    } else {
        delivery
            .mailer
            .send_email(&message, now)
            .await
            .context("cannot write the test email")?;
        out!(
            "Wrote test email to {} with code {code} into the outbox {} (TWOFOLD_SMTP_URL is not set)",
            message.to,
            outbox.directory().display()
        );
    }
    Ok(())
}

/// Six random digits, so the email received can be matched with this command's output.
fn test_code() -> anyhow::Result<String> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow!("the OS random generator failed: {error}"))?;
    Ok(format!("{:06}", u32::from_le_bytes(bytes) % 1_000_000))
}

async fn status(config: &Config) -> anyhow::Result<()> {
    let stores = open_stores(config).await?;
    let counts = stores
        .deliveries
        .delivery_counts()
        .await
        .context("cannot read the delivery queue")?;
    out!("pending: {}", counts.pending);
    out!("failed: {}", counts.failed);
    let failures = stores
        .deliveries
        .failed_deliveries(FAILURES_SHOWN)
        .await
        .context("cannot read the delivery queue")?;
    for failure in failures {
        let state = match failure.state {
            DeliveryFailureState::Retrying { next_attempt_at } => {
                format!("retrying at {}", rfc3339(next_attempt_at))
            }
            DeliveryFailureState::GaveUp { failed_at } => {
                format!("gave up at {}", rfc3339(failed_at))
            }
        };
        out!(
            "{} {} {} queued {}, {} attempt(s), {state}: {}",
            failure.id,
            failure.channel,
            failure.recipient,
            rfc3339(failure.created_at),
            failure.attempts,
            failure.last_error
        );
    }
    Ok(())
}

fn rfc3339(instant: OffsetDateTime) -> String {
    instant
        .format(&Rfc3339)
        .unwrap_or_else(|_| instant.unix_timestamp().to_string())
}
