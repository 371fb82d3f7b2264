//! `peerdesk audit verify FILE`: checks a host's audit trail (see `peerdesk::audit`).

use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `peerdesk audit …`
#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check every record's hash and its link to the one before; print the count and the last hash (keep it
    /// elsewhere: it catches a rewritten tail). Exits 1 at the first record that does not hold.
    Verify {
        /// The audit file (`peerdesk share --audit-log FILE`).
        file: PathBuf,
    },
}

/// Runs `peerdesk audit`.
pub fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::Verify { file } => {
            let reader = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let summary =
                peerdesk::audit::verify(reader).with_context(|| format!("{} does not verify", file.display()))?;
            println!(
                "{}: {} records, chain intact; last hash {}",
                file.display(),
                summary.records,
                summary.head
            );
            Ok(())
        }
    }
}
