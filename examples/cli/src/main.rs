//! `peerdesk`: the command-line front end of the SDK.
//!
//! - `peerdesk demo`: runs the whole media pipeline on this machine (capture → convert → encode → decode) and
//!   prints what it measured.

mod pipeline_demo;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "peerdesk",
    version,
    about = "Peer-to-peer remote support: demo, share and view"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Capture the screen (X11 when a display is there, else the synthetic desktop), encode, decode, and report.
    Demo(pipeline_demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo(args) => pipeline_demo::run(args),
    }
}
