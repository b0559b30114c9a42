//! `twofold audit …`: exports the audit log and checks its hash chain. Both need the master
//! key the chain key is derived from; neither creates one.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use twofold_core::Service;
use twofold_core::audit::{ChainBreak, MAX_AUDIT_PAGE};
use twofold_core::store::AuditFilter;

use super::open_service;
use crate::config::Config;
use twofold_server::routes::audit::EventView;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Writes every entry as JSON lines, oldest first (in chain order).
    Export {
        /// Write to this file (created readable by this user only) instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Checks the hash chain of the whole log: exit status 0 when intact, 1 naming the first
    /// entry that was changed, removed or inserted.
    Verify,
}

pub async fn run(config: Config, command: AuditCommand) -> anyhow::Result<()> {
    // A new key made here would be the wrong one: the chain was made with the server's.
    if !config.master_key_file.exists() {
        bail!(
            "the master key file {} is missing; the audit chain is keyed with the server's master key (point TWOFOLD_MASTER_KEY_FILE at it)",
            config.master_key_file.display()
        );
    }
    let service = open_service(&config).await?;
    match command {
        AuditCommand::Export { output: None } => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            match export(&service, &mut stdout).await {
                // `twofold audit export | head` is not an error.
                Err(error) if is_broken_pipe(&error) => Ok(()),
                other => other.map(drop),
            }
        }
        AuditCommand::Export { output: Some(path) } => {
            let mut file = std::io::BufWriter::new(create_private_file(&path)?);
            let count = export(&service, &mut file)
                .await
                .with_context(|| format!("cannot write {}", path.display()))?;
            file.into_inner()
                .map_err(|error| error.into_error())
                .and_then(|file| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            out!("exported {count} audit entries to {}", path.display());
            Ok(())
        }
        AuditCommand::Verify => verify(&service).await,
    }
}

/// Writes the entries up to the newest one there was when it began, a batch at a time;
/// returns how many.
async fn export(service: &Service, out: &mut impl Write) -> anyhow::Result<u64> {
    let newest = service
        .audit_log(&AuditFilter {
            limit: 1,
            ..AuditFilter::default()
        })
        .await?
        .first()
        .map_or(0, |record| record.seq);
    let mut after = 0;
    let mut count = 0;
    while after < newest {
        let batch = service.audit_batch(after, MAX_AUDIT_PAGE).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for record in batch.iter().filter(|record| record.seq <= newest) {
            serde_json::to_writer(&mut *out, &EventView::from(record.clone()))?;
            out.write_all(b"\n")?;
            count += 1;
        }
    }
    out.flush()?;
    Ok(count)
}

async fn verify(service: &Service) -> anyhow::Result<()> {
    let report = service.verify_audit_chain().await?;
    match report.broken {
        Some(broken @ ChainBreak::UnknownKey { .. }) => bail!(
            "audit log cannot be checked: {broken} (is TWOFOLD_MASTER_KEY_FILE the server's key file?)"
        ),
        Some(broken) => bail!("audit log broken: {broken}"),
        None => {
            let checked = report.checked;
            match report.anchor {
                None => out!("audit log intact: {checked} entries checked"),
                Some(anchor) => out!(
                    "audit log intact: {checked} entries checked, starting after entry {} (older entries were removed by retention)",
                    anchor.seq
                ),
            }
            Ok(())
        }
    }
}

fn create_private_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}
