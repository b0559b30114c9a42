//! `twofold user …`: account administration from the shell, on the database the configuration
//! names (the same one the server uses).

use std::io::BufRead;

use anyhow::Context;
use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};
use twofold_core::Service;
use twofold_core::accounts::{AccountError, NewAccount};

use crate::config::Config;
use crate::serve::build_service;

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
    /// Prints the user's two-factor status (off, pending, enabled) and enrolled methods.
    Show { email: String },
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
}

pub async fn run(config: Config, command: UserCommand) -> anyhow::Result<()> {
    // One hashing thread is plenty for a single command.
    let service = build_service(&config, 1).await?.service;
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
            let created = service.create_account(request).await.map_err(describe)?;
            match created.temporary_password {
                Some(temporary) => println!(
                    "Created {} with temporary password: {}",
                    created.user.email,
                    temporary.expose_secret()
                ),
                None => println!("Created {}", created.user.email),
            }
        }
        UserCommand::Show { email } => show(&service, &email).await?,
        UserCommand::Require2fa { email, off } => {
            let user = service.find_user(&email).await.map_err(describe)?;
            service
                .set_require_two_factor(user.id, !off)
                .await
                .map_err(describe)?;
            show(&service, &email).await?;
        }
        UserCommand::Reset2fa { email } => {
            let user = service.find_user(&email).await.map_err(describe)?;
            service.reset_two_factor(user.id).await.map_err(describe)?;
            show(&service, &email).await?;
        }
    }
    Ok(())
}

async fn show(service: &Service, email: &str) -> anyhow::Result<()> {
    let user = service.find_user(email).await.map_err(describe)?;
    let summary = service.account_summary(&user).await.map_err(describe)?;
    let methods: Vec<&str> = summary
        .methods
        .iter()
        .map(|method| method.as_str())
        .collect();
    println!("email: {}", user.email);
    println!("two_factor: {}", summary.two_factor.as_str());
    println!(
        "methods: {}",
        if methods.is_empty() {
            "none".to_owned()
        } else {
            methods.join(", ")
        }
    );
    println!(
        "require_2fa: {}",
        if user.require_2fa { "yes" } else { "no" }
    );
    println!("admin: {}", if user.is_admin { "yes" } else { "no" });
    println!(
        "password_change_required: {}",
        if user.password_change_required {
            "yes"
        } else {
            "no"
        }
    );
    Ok(())
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

/// Turns an account error into the one line the CLI prints.
fn describe(error: AccountError) -> anyhow::Error {
    match error {
        AccountError::NotFound => anyhow::anyhow!("no such user"),
        AccountError::WeakPassword(reason) => anyhow::anyhow!("password refused: {reason}"),
        other => anyhow::Error::new(other),
    }
}
