//! `twofold-bench`: the load-test tool behind `bench/load.sh`.
//!
//! - `argon2-rate --seconds N` prints single-thread Argon2id verifications per second at the
//!   server's default cost: `nproc` times this bounds password logins.
//! - `seed …` fills a database (SQLite or PostgreSQL) with users, authenticators and sessions
//!   for the load runs, and writes the files the wrk scripts read; see `twofold_bench::seed`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use twofold_bench::seed::{self, SeedOptions};

/// Twofold's load-test tool.
#[derive(Debug, Parser)]
#[command(name = "twofold-bench", about)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints single-thread Argon2id verifications per second (default cost, reused buffer).
    Argon2Rate {
        /// How long to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Makes a database ready for the load runs, and the files the wrk scripts read.
    Seed(SeedArguments),
}

#[derive(Debug, clap::Args)]
struct SeedArguments {
    /// The server's data directory (its master.key is created here when missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// The server's database: sqlite://PATH or postgres://…
    #[arg(long)]
    database_url: String,
    /// The master key file, if not DATA_DIR/master.key.
    #[arg(long)]
    master_key_file: Option<PathBuf>,
    /// Users, each with an active authenticator.
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    /// Sessions in state second_factor, two per user, for the second-factor step.
    #[arg(long, default_value_t = 0)]
    second_factor_sessions: usize,
    /// Sessions in state second_factor, one per user, for wrong codes.
    #[arg(long, default_value_t = 100)]
    wrong_code_sessions: usize,
    /// Sessions in state authenticated, spread over every user.
    #[arg(long, default_value_t = 0)]
    authenticated_sessions: usize,
    /// Every user's password.
    #[arg(long, default_value = "correct horse battery staple")]
    password: String,
    /// The output files' prefix: PREFIX.users, .second_factor, .wrong_code, .authenticated.
    #[arg(long)]
    out: PathBuf,
    /// Users enrolled (and sessions inserted) at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// TOTP codes per line, from the seeding's 30-s step on.
    #[arg(long, default_value_t = 41)]
    code_steps: u64,
    /// Start enrollments through the service call that also draws the QR code (slower).
    #[arg(long)]
    draw_qr: bool,
    /// second_factor sessions are stamped this many seconds ahead (see the seed module).
    #[arg(long, default_value_t = 600)]
    second_factor_lead_seconds: i64,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    match arguments.command {
        Command::Argon2Rate { seconds } => {
            let duration = Duration::try_from_secs_f64(seconds)?;
            let rate = twofold_bench::argon2_verify::verifies_per_second(duration)?;
            println!("{rate:.2}");
        }
        Command::Seed(arguments) => {
            let options = SeedOptions {
                data_dir: arguments.data_dir,
                database_url: arguments.database_url,
                master_key_file: arguments.master_key_file,
                users: arguments.users,
                second_factor_sessions: arguments.second_factor_sessions,
                wrong_code_sessions: arguments.wrong_code_sessions,
                authenticated_sessions: arguments.authenticated_sessions,
                password: arguments.password,
                out: arguments.out,
                concurrency: arguments.concurrency,
                code_steps: arguments.code_steps,
                draw_qr: arguments.draw_qr,
                second_factor_lead_seconds: arguments.second_factor_lead_seconds,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(seed::run(&options))?;
            println!(
                "seeded {} users with authenticators in {:.1} s, {} sessions in {:.1} s",
                report.users, report.users_seconds, report.sessions, report.sessions_seconds
            );
        }
    }
    Ok(())
}
