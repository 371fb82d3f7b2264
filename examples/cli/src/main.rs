//! `peerdesk`: the command-line front end of the SDK.
//!
//! - `peerdesk demo`: the whole product on this machine (signaling server, host, viewer) with measurements.
//! - `peerdesk share`: share this screen; asks before anyone may watch or control.
//! - `peerdesk view`: join a shared screen by code (or a device by its ID, unattended).
//! - `peerdesk device`: this machine's device ID and the technician accesses it accepts unattended.
//! - `peerdesk pipeline`: the media pipeline alone (capture → encode → decode) with measurements.

mod audit;
mod demo;
mod device;
mod pipeline_demo;
mod report;
mod share;
mod view;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
    /// Check a host's audit trail.
    Audit(audit::AuditArgs),
    /// This machine's device ID and the technicians it accepts unattended.
    Device(device::DeviceArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rtc_ice=error,rtc_dtls=error".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match Cli::parse().command {
        Command::Demo(args) => demo::run(args),
        Command::Pipeline(args) => pipeline_demo::run(args),
        Command::Share(args) => runtime().and_then(|rt| rt.block_on(share::run(args))),
        Command::View(args) => runtime().and_then(|rt| rt.block_on(view::run(args))),
        Command::Audit(args) => audit::run(args),
        Command::Device(args) => device::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", error_report(&error, wants_backtrace()));
            ExitCode::FAILURE
        }
    }
}

/// One line, `peerdesk: error: <context>: <cause>: …`, with control characters escaped (causes can carry text
/// from the other side); then the backtrace, only when `RUST_BACKTRACE`/`RUST_LIB_BACKTRACE` asks for one.
fn error_report(error: &anyhow::Error, with_backtrace: bool) -> String {
    let causes: Vec<String> = error.chain().map(|cause| escape_control(&cause.to_string())).collect();
    let mut report = format!("peerdesk: error: {}", causes.join(": "));
    if with_backtrace {
        let backtrace = error.backtrace();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            report.push_str(&format!("\n\nbacktrace (RUST_BACKTRACE is set):\n{backtrace}"));
        }
    }
    report
}

fn wants_backtrace() -> bool {
    ["RUST_LIB_BACKTRACE", "RUST_BACKTRACE"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .is_some_and(|value| value != "0")
}

fn escape_control(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_readable_line_with_its_causes() {
        let error = anyhow::anyhow!("No such device (os error 19)").context("starting the host");
        assert_eq!(
            error_report(&error, false),
            "peerdesk: error: starting the host: No such device (os error 19)"
        );
    }

    #[test]
    fn control_characters_from_the_other_side_are_escaped() {
        let error = anyhow::anyhow!("server said: \u{1b}[2Jbad\ncode");
        let report = error_report(&error, false);
        assert!(!report.chars().any(char::is_control), "{report:?}");
        assert!(report.contains("\\u{1b}[2Jbad\\ncode"), "{report:?}");
    }
}
