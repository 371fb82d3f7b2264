//! `peerdesk device …`: this machine's device identity and the technician accesses it accepts unattended.

use anyhow::Context;
use clap::{Args, Subcommand};
use peerdesk::control::Permissions;
use peerdesk::unattended::{AccessPolicy, DeviceIdentity, TechnicianAccess, TotpSecret};
use std::path::{Path, PathBuf};

/// `peerdesk device …`
#[derive(Args, Debug)]
pub struct DeviceArgs {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Subcommand, Debug)]
enum DeviceCommand {
    /// Print this machine's device ID (creating its key, owner-only, on first use).
    Id {
        /// The device key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Let a technician connect unattended: their secret is stored as an argon2id hash only.
    AddAccess {
        /// The access policy file (created owner-only when missing).
        #[arg(long)]
        policy: PathBuf,
        /// The technician's access name.
        #[arg(long)]
        name: String,
        /// A file whose first line is the secret (at least 8 characters; `-` reads standard input). Never on the
        /// command line, where other users see it.
        #[arg(long)]
        secret_file: PathBuf,
        /// Grant control (pointer and keyboard).
        #[arg(long)]
        control: bool,
        /// Grant the clipboard.
        #[arg(long)]
        clipboard: bool,
        /// Still ask the customer before each session.
        #[arg(long)]
        ask_customer: bool,
        /// Require a TOTP code too; prints the secret for the technician's authenticator app once.
        #[arg(long)]
        totp: bool,
    },
    /// Remove a technician's access.
    RemoveAccess {
        /// The access policy file.
        #[arg(long)]
        policy: PathBuf,
        /// The access name.
        #[arg(long)]
        name: String,
    },
    /// List the accesses of a policy (names, permissions, second factor; never secrets).
    List {
        /// The access policy file.
        #[arg(long)]
        policy: PathBuf,
    },
}

/// Reads the first line of `path` (`-`: standard input) as a secret.
pub fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text = if path == Path::new("-") {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading the secret file {}", path.display()))?
    };
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Runs `peerdesk device`.
pub fn run(args: DeviceArgs) -> anyhow::Result<()> {
    match args.command {
        DeviceCommand::Id { key } => {
            let identity = DeviceIdentity::load_or_create(&key).context("loading the device key")?;
            println!("device ID: {}", identity.device_id());
        }
        DeviceCommand::AddAccess {
            policy: path,
            name,
            secret_file,
            control,
            clipboard,
            ask_customer,
            totp,
        } => {
            let mut policy = AccessPolicy::load(&path).context("loading the access policy")?;
            let secret = read_secret(&secret_file)?;
            let mut access = TechnicianAccess::new(&name, &secret)?
                .permissions(Permissions::VIEW_ONLY.with_control(control).with_clipboard(clipboard))
                .ask_customer(ask_customer);
            if totp {
                let secret = TotpSecret::generate()?;
                println!(
                    "TOTP secret for {name}'s authenticator app (shown once): {}",
                    secret.to_base32()
                );
                println!("  {}", secret.otpauth_uri("peerdesk", &name));
                access = access.totp(secret);
            }
            policy.insert(access);
            policy.save(&path).context("saving the access policy")?;
            println!("access {name} saved to {}", path.display());
        }
        DeviceCommand::RemoveAccess { policy: path, name } => {
            let mut policy = AccessPolicy::load(&path).context("loading the access policy")?;
            anyhow::ensure!(policy.remove(&name), "no access named {name}");
            policy.save(&path).context("saving the access policy")?;
            println!("access {name} removed");
        }
        DeviceCommand::List { policy: path } => {
            let policy = AccessPolicy::load(&path).context("loading the access policy")?;
            for name in policy.names() {
                if let Some(access) = policy.get(name) {
                    let granted = access.granted();
                    println!(
                        "{name}: view{}{}{}{}",
                        if granted.control { ", control" } else { "" },
                        if granted.clipboard { ", clipboard" } else { "" },
                        if access.requires_totp() { "; TOTP required" } else { "" },
                        if access.asks_customer() {
                            "; the customer is asked"
                        } else {
                            ""
                        },
                    );
                }
            }
        }
    }
    Ok(())
}
