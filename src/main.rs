//! The `twofold` binary: the command line, the configuration and start-up.

/// `println!` for command output: a reader that stops early (`twofold user list | head -1`)
/// ends the process quietly instead of making it panic on the closed pipe.
macro_rules! out {
    ($($argument:tt)*) => {
        $crate::write_output_line(format_args!($($argument)*))
    };
}

mod cli;
mod config;
mod delivery;
mod mail;
mod serve;

// The master key files live in the library (`src/lib.rs`), shared with the load-test seeder;
// `crate::master_key::…` keeps naming them here.
pub(crate) use twofold::master_key;

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
    User(cli::user::UserCommand),
    /// Shows and changes the security policy.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// Exports the audit log and checks its hash chain.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Rotates the master key (re-sealing every secret) and shows the keys in use.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Checks email delivery: sends a test email, shows the delivery queue.
    #[command(subcommand)]
    Mail(mail::MailCommand),
    /// Backs up a SQLite installation while servers run: the database and the master keys.
    Backup(cli::backup::BackupArguments),
}

fn main() -> ExitCode {
    let arguments = match Arguments::try_parse() {
        Ok(arguments) => arguments,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("twofold: {}", usage_error_line(&error));
            return ExitCode::from(2);
        }
    };
    let outcome = config::Config::load(arguments.config.as_deref()).and_then(|config| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            match arguments.command {
                Command::Serve => serve::run(config).await,
                Command::User(command) => cli::user::run(config, command).await,
                Command::Policy(command) => cli::policy::run(config, command).await,
                Command::Audit(command) => cli::audit::run(config, command).await,
                Command::Keys(command) => cli::keys::run(config, command).await,
                Command::Mail(command) => mail::run(config, command).await,
                Command::Backup(arguments) => cli::backup::run(config, arguments).await,
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

/// A usage error in one line, as the contract wants every failure: clap's message, its tip,
/// and the usage of the command at fault, without the blank lines and the pointer to --help.
fn usage_error_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let mut message = Vec::new();
    let mut usage = None;
    for line in rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        if let Some(rest) = line.strip_prefix("Usage:") {
            usage = Some(rest.trim().to_owned());
        } else if line.starts_with("For more information") {
            continue;
        } else if line.starts_with("tip:") {
            message.push(format!("({line})"));
        } else if usage.is_none() {
            message.push(
                line.strip_prefix("error:")
                    .unwrap_or(line)
                    .trim()
                    .to_owned(),
            );
        }
    }
    if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // Clap rendered the whole help: keep only its usage.
        message = vec!["a command is missing".to_owned()];
    }
    let mut line = message.join(" ");
    if let Some(usage) = usage {
        line.push_str(&format!("; usage: {usage}"));
    }
    line.push_str(" (see --help)");
    line
}

/// Writes one line of command output (see `out!`): exit 0 when the reader has gone, 1 with a
/// line on standard error when standard output cannot be written otherwise.
fn write_output_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("twofold: cannot write to standard output: {error}");
        std::process::exit(1);
    }
}
