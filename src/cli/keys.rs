//! `twofold keys …`: rotates the master key while servers keep running, and shows which keys
//! the database needs.
//!
//! `keys rotate` retires the current key (kept beside it, see `master_key`), puts a new one in
//! its place, then re-seals every sealed secret under the new key with a compare-and-swap per
//! row, so a secret a running server changed meanwhile is never overwritten. Running servers
//! re-read the key files at most [`RECHECK`] after they next seal, and at once when they meet a
//! secret under a key they have not loaded; after that period a final pass re-seals whatever
//! they sealed under the old key in between.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use twofold_core::factors::totp_context;
use twofold_core::sealing::Sealer;
use twofold_core::store::{SealedOwner, SealedRow, Stores};
use twofold_server::delivery::payload;

use crate::config::Config;
use crate::master_key::{self, RECHECK};
use crate::serve::{load_sealer, open_stores};

/// Rows re-sealed per batch.
const BATCH: u32 = 200;
/// Passes over the sealed rows before giving up on rows that keep changing under it.
const MAX_PASSES: u32 = 1000;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Replaces the master key with a new random one and re-seals every secret under it;
    /// running servers follow without a restart. The old key is kept as a retired key file.
    Rotate,
    /// Prints the current and retired master key ids and how many sealed secrets each holds.
    Show,
}

pub async fn run(config: Config, command: KeysCommand) -> anyhow::Result<()> {
    let path = &config.master_key_file;
    // A key made here would be a new, unrelated one.
    if !path.exists() {
        bail!(
            "the master key file {} is missing (point TWOFOLD_MASTER_KEY_FILE at it)",
            path.display()
        );
    }
    let stores = open_stores(&config).await?;
    // Refuses, as `serve` does, unless every key the database needs is loaded.
    let sealer = load_sealer(&config, &stores).await?;
    match command {
        KeysCommand::Rotate => rotate(&config, &stores, &sealer).await,
        KeysCommand::Show => show(&config, &stores, &sealer).await,
    }
}

async fn rotate(config: &Config, stores: &Stores, sealer: &Sealer) -> anyhow::Result<()> {
    let rotated = master_key::rotate(&config.master_key_file)?;
    let keys = sealer.keys_knowing(&rotated.new_id);
    if keys.current_key_id() != rotated.new_id {
        bail!(
            "the master key file {} does not hold the new key {} after the rotation; run `twofold keys rotate` again",
            config.master_key_file.display(),
            rotated.new_id
        );
    }
    let mut resealed = reseal_all(stores, sealer, &rotated.new_id).await?;
    // Servers move to the new key within RECHECK of their next seal; what one sealed under the
    // old key before that is re-sealed by this final pass.
    tokio::time::sleep(RECHECK + Duration::from_secs(1)).await;
    resealed += reseal_all(stores, sealer, &rotated.new_id).await?;
    out!(
        "rotated the master key {} -> {}: {resealed} sealed secrets re-sealed (the old key stays in {})",
        rotated.old_id,
        rotated.new_id,
        rotated.retired_file.display()
    );
    Ok(())
}

/// Re-seals, batch by batch, every sealed row not under `key_id` (the sealer's current key);
/// returns how many it replaced. A row that changed meanwhile loses its compare-and-swap and
/// is read again in the next batch (if it is still under an old key).
pub async fn reseal_all(stores: &Stores, sealer: &Sealer, key_id: &str) -> anyhow::Result<u64> {
    let mut resealed = 0;
    for _ in 0..MAX_PASSES {
        let batch = stores
            .factors
            .sealed_rows_not_under(key_id, BATCH)
            .await
            .context("cannot read the sealed secrets")?;
        if batch.is_empty() {
            return Ok(resealed);
        }
        for row in &batch {
            let Some(new) = sealer
                .reseal(&row.secret, &context(row))
                .with_context(|| format!("cannot open the sealed secret of row {}", row.id))?
            else {
                continue;
            };
            if new.key_id != key_id {
                bail!(
                    "the master key changed during the rotation; run `twofold keys rotate` again"
                );
            }
            if stores
                .factors
                .replace_sealed(row, &new)
                .await
                .context("cannot store a re-sealed secret")?
            {
                resealed += 1;
            }
        }
    }
    bail!("sealed secrets keep changing under older keys; run `twofold keys rotate` again")
}

/// The associated data `row` was sealed with.
fn context(row: &SealedRow) -> Vec<u8> {
    match &row.owner {
        SealedOwner::Totp { user_id } => totp_context(*user_id, row.id),
        SealedOwner::Delivery { channel, recipient } => {
            payload::context(row.id, *channel, recipient)
        }
        SealedOwner::Message => twofold_core::messages::key_context(row.id),
    }
}

async fn show(config: &Config, stores: &Stores, sealer: &Sealer) -> anyhow::Result<()> {
    let counts = stores
        .factors
        .sealed_counts()
        .await
        .context("cannot count the sealed secrets")?;
    let held = |id: &str| {
        counts
            .iter()
            .find(|(key_id, _)| key_id == id)
            .map_or(0, |(_, count)| *count)
    };
    let keys = sealer.snapshot();
    out!(
        "current: {} ({} sealed secrets) in {}",
        keys.current_key_id(),
        held(keys.current_key_id()),
        config.master_key_file.display()
    );
    for id in keys.key_ids().skip(1) {
        out!(
            "retired: {id} ({} sealed secrets) in {}",
            held(id),
            master_key::retired_path(&config.master_key_file, id).display()
        );
    }
    Ok(())
}
