//! `peerdesk`: the command-line front end of the SDK.
//!
//! - `peerdesk demo`: the whole product on this machine (signaling server, host, viewer) with measurements.
//! - `peerdesk share`: share this screen; asks before anyone may watch or control.
//! - `peerdesk view`: join a shared screen by code.
//! - `peerdesk pipeline`: the media pipeline alone (capture → encode → decode) with measurements.

mod demo;
mod pipeline_demo;
mod share;
mod view;

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
    /// Run a signaling server, a host and a viewer on this machine and report latency, fps, bitrate, CPU, memory.
    Demo(demo::DemoArgs),
    /// Share this screen (X11, or the synthetic desktop).
    Share(share::ShareArgs),
    /// Join a shared screen by code.
    View(view::ViewArgs),
    /// Capture, encode and decode in one process and report the codec figures.
    Pipeline(pipeline_demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rtc_ice=error,rtc_dtls=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Pipeline(args) => pipeline_demo::run(args),
        Command::Share(args) => runtime()?.block_on(share::run(args)),
        Command::View(args) => runtime()?.block_on(view::run(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
