//! `peerdesk-signaling-server`: issues one-time session codes, relays SDP and ICE between a host and the viewer it
//! accepted, and serves static files (the web viewer). The protocol is documented in `peerdesk::signaling::protocol`.
//!
//! ```text
//! peerdesk-signaling-server --listen 127.0.0.1:8080 --static-dir examples/web-viewer
//! ```
//!
//! Endpoints: `GET /ws` (WebSocket), `GET /healthz` (JSON status), everything else from `--static-dir`.
//! Prints `listening on ADDR` once ready; stops gracefully on SIGINT/SIGTERM.

use clap::Parser;
use peerdesk::signaling::IceServer;
use peerdesk_signaling_server::{shutdown_signal, HubConfig, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(version, about = "peerdesk signaling server")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder of static files to serve (the web viewer).
    #[arg(long)]
    static_dir: Option<PathBuf>,
    /// Digits in a session code (9 or more).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(9..=20))]
    code_digits: u8,
    /// Seconds a session code stays valid.
    #[arg(long, default_value_t = 600)]
    code_ttl_secs: u64,
    /// STUN/TURN URL handed to clients (repeatable); none by default.
    #[arg(long = "ice-server")]
    ice_servers: Vec<String>,
    /// TURN user name for the ICE servers.
    #[arg(long, default_value = "")]
    ice_username: String,
    /// TURN credential for the ICE servers.
    #[arg(long, default_value = "")]
    ice_credential: String,
    /// Most connections at once.
    #[arg(long, default_value_t = 10_000)]
    max_peers: usize,
    /// Sustained messages per second per connection.
    #[arg(long, default_value_t = 20.0)]
    messages_per_second: f64,
    /// Failed join attempts allowed per address per minute.
    #[arg(long, default_value_t = 10)]
    join_failures_per_addr: usize,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let ice_servers = if args.ice_servers.is_empty() {
        Vec::new()
    } else {
        vec![IceServer {
            urls: args.ice_servers.clone(),
            username: args.ice_username.clone(),
            credential: args.ice_credential.clone(),
        }]
    };
    let config = HubConfig {
        code_digits: usize::from(args.code_digits),
        code_ttl: Duration::from_secs(args.code_ttl_secs),
        ice_servers,
        max_peers: args.max_peers,
        messages_per_second: args.messages_per_second,
        join_failures_per_addr: args.join_failures_per_addr,
        ..HubConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    tracing::info!(%addr, "signaling server ready");
    Server::new(config, args.static_dir.as_deref())
        .serve(listener, shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}
