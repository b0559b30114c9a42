//! The `twofold` binary: the command line, the configuration and start-up.

mod cli;
mod config;
mod delivery;
mod mail;
mod master_key;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Twofold: accounts with a password and a second factor.
#[derive(Debug, Parser)]
#[command(name = "twofold", version, about)]
struct Arguments {
    /// A TOML configuration file; TWOFOLD_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the HTTP server.
    Serve,
    /// Manages users.
    #[command(subcommand)]
    User(cli::UserCommand),
    /// Checks email delivery: sends a test email, shows the delivery queue.
    #[command(subcommand)]
    Mail(mail::MailCommand),
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let outcome = config::Config::load(arguments.config.as_deref()).and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            match arguments.command {
                Command::Serve => serve::run(config).await,
                Command::User(command) => cli::run(config, command).await,
                Command::Mail(command) => mail::run(config, command).await,
            }
        })
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes, separated by colons.
            eprintln!("twofold: {error:#}");
            ExitCode::FAILURE
        }
    }
}
