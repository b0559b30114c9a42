//! `twofold user …`: creating users, showing and listing them, and what administrators do
//! to them (requiring or resetting 2FA, disabling).

use std::io::BufRead;

use anyhow::Context;
use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};
use twofold_core::Service;
use twofold_core::accounts::NewAccount;
use twofold_core::admin::{AdminUser, MAX_PAGE};
use twofold_core::user::Method;

use super::{describe, open_service, yes_no};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Creates a user. Without --password-stdin, prints a temporary password that must be
    /// changed at first login.
    Add {
        email: String,
        /// Make the user an administrator (administrators always use two factors).
        #[arg(long)]
        admin: bool,
        /// Require the user to enroll a second factor at next login.
        #[arg(long = "require-2fa")]
        require_2fa: bool,
        /// Read the password from the first line of standard input.
        #[arg(long = "password-stdin")]
        password_stdin: bool,
    },
    /// Prints the user's two-factor status (off, pending, enabled), enrolled methods, and
    /// whether they are an administrator or disabled.
    Show { email: String },
    /// Lists users by email address, one line each: email, two_factor, methods, admin,
    /// disabled.
    List {
        /// Only users whose email address contains this text (ignoring case).
        #[arg(long)]
        query: Option<String>,
    },
    /// Requires (or with --off stops requiring) two-factor authentication for the user.
    #[command(name = "require-2fa")]
    Require2fa {
        email: String,
        #[arg(long)]
        off: bool,
    },
    /// Removes every second factor of the user and ends their sessions (the lost-device path).
    #[command(name = "reset-2fa")]
    Reset2fa { email: String },
    /// Disables the user (they cannot sign in; their sessions end at once), or with --enable
    /// lets them sign in again.
    Disable {
        email: String,
        #[arg(long)]
        enable: bool,
    },
}

pub async fn run(config: Config, command: UserCommand) -> anyhow::Result<()> {
    let service = open_service(&config).await?;
    match command {
        UserCommand::Add {
            email,
            admin,
            require_2fa,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password_line()?)
            } else {
                None
            };
            let request = NewAccount {
                email: &email,
                password: password.as_ref(),
                is_admin: admin,
                require_2fa,
            };
            let created = service
                .create_account(None, request)
                .await
                .map_err(describe)?;
            match created.temporary_password {
                Some(temporary) => out!(
                    "Created {} with temporary password: {}",
                    created.user.email,
                    temporary.expose_secret()
                ),
                None => out!("Created {}", created.user.email),
            }
        }
        UserCommand::Show { email } => show(&service, &email).await?,
        UserCommand::List { query } => list(&service, query.as_deref()).await?,
        UserCommand::Require2fa { email, off } => {
            let user = service.find_user(&email).await.map_err(describe)?;
            service
                .set_require_two_factor(None, user.id, !off)
                .await
                .map_err(describe)?;
            show(&service, &email).await?;
        }
        UserCommand::Reset2fa { email } => {
            let user = service.find_user(&email).await.map_err(describe)?;
            service
                .reset_two_factor(None, user.id)
                .await
                .map_err(describe)?;
            show(&service, &email).await?;
        }
        UserCommand::Disable { email, enable } => {
            let user = service.find_user(&email).await.map_err(describe)?;
            service
                .set_disabled(None, user.id, !enable)
                .await
                .map_err(describe)?;
            show(&service, &email).await?;
        }
    }
    Ok(())
}

/// The status goes through `account_summary`, so it follows the security policy in the
/// database (a policy requiring 2FA of everyone makes a user without factors `pending`).
async fn show(service: &Service, email: &str) -> anyhow::Result<()> {
    let user = service.find_user(email).await.map_err(describe)?;
    let summary = service.account_summary(&user).await.map_err(describe)?;
    out!("email: {}", user.email);
    out!("two_factor: {}", summary.two_factor.as_str());
    out!("methods: {}", method_list(&summary.methods, ", "));
    out!("require_2fa: {}", yes_no(user.require_2fa));
    out!("admin: {}", yes_no(user.is_admin));
    out!("disabled: {}", yes_no(user.disabled));
    out!(
        "password_change_required: {}",
        yes_no(user.password_change_required)
    );
    Ok(())
}

/// Every matching user, a page at a time.
async fn list(service: &Service, query: Option<&str>) -> anyhow::Result<()> {
    let mut offset = 0;
    loop {
        let page = service
            .list_users(query, offset, MAX_PAGE)
            .await
            .map_err(describe)?;
        for user in &page.users {
            out!("{}", list_line(user));
        }
        offset += page.users.len() as u64;
        if page.users.is_empty() || offset >= page.total {
            return Ok(());
        }
    }
}

/// `alice@example.com two_factor=enabled methods=totp,sms admin=no disabled=no`
fn list_line(listed: &AdminUser) -> String {
    format!(
        "{} two_factor={} methods={} admin={} disabled={}",
        listed.user.email,
        listed.two_factor.as_str(),
        method_list(&listed.methods, ","),
        yes_no(listed.user.is_admin),
        yes_no(listed.user.disabled)
    )
}

fn method_list(methods: &[Method], separator: &str) -> String {
    if methods.is_empty() {
        return "none".to_owned();
    }
    methods
        .iter()
        .map(|method| method.as_str())
        .collect::<Vec<_>>()
        .join(separator)
}

fn read_password_line() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line
        .strip_suffix('\n')
        .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
        .unwrap_or(&line);
    Ok(SecretString::from(password.to_owned()))
}
