//! The administration commands (`twofold user …`, `twofold policy …`, `twofold audit …`,
//! `twofold keys …`, `twofold backup`):
//! each opens the database the configuration names (the same one the server uses) and acts
//! as the command line, the actor `None` in the audit log.

pub mod audit;
pub mod backup;
pub mod keys;
pub mod policy;
pub mod user;

use twofold_core::Service;
use twofold_core::accounts::AccountError;

use crate::config::Config;
use crate::serve::build_service;

/// The service a single command needs.
async fn open_service(config: &Config) -> anyhow::Result<Service> {
    // One hashing thread is plenty for a single command.
    Ok(build_service(config, 1).await?.service)
}

/// Turns an account error into the one line the CLI prints.
fn describe(error: AccountError) -> anyhow::Error {
    match error {
        AccountError::NotFound => anyhow::anyhow!("no such user"),
        AccountError::WeakPassword(reason) => anyhow::anyhow!("password refused: {reason}"),
        other => anyhow::Error::new(other),
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}
