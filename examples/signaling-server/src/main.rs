//! `peerdesk-signaling-server`: issues one-time session codes, relays SDP and ICE between a host and the viewer it
//! accepted, and serves static files (the web viewer). The protocol is documented in `peerdesk::signaling::protocol`.
//!
//! ```text
//! peerdesk-signaling-server --listen 127.0.0.1:8080 --static-dir examples/web-viewer
//! ```
//!
//! Endpoints: `GET /ws` (WebSocket), `GET /healthz` (liveness), everything else from `--static-dir`.
//! Prints `listening on ADDR` once ready; stops gracefully on SIGINT/SIGTERM; with `--tls-cert`/`--tls-key`,
//! serves HTTPS/WSS and re-reads both files on SIGHUP (a renewed certificate, no restart).

use clap::Parser;
use peerdesk::signaling::IceServer;
use peerdesk_signaling_server::limits::{Cidr, JoinLimits};
use peerdesk_signaling_server::tls::TlsFiles;
use peerdesk_signaling_server::turn::TurnRest;
use peerdesk_signaling_server::{shutdown_signal, ConnectionLimits, HubConfig, Server, ServerOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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
    /// Technician accounts (owner-only JSON: the operator's name and SHA-256 hashes of API tokens): signed-in
    /// technicians are shown to hosts as "verified by <operator>".
    #[arg(long)]
    accounts: Option<PathBuf>,
    /// Issue a new API token for this account into --accounts (created when missing, with --operator), print it
    /// once and exit.
    #[arg(long, requires = "accounts")]
    new_token: Option<String>,
    /// The operator's name for a new --accounts file.
    #[arg(long, default_value = "this server's operator")]
    operator: String,
    /// The operator's branding for the served pages: a JSON file with product_name, accent_color,
    /// background_color, consent_text and logo_file (a PNG beside it); every field optional.
    #[arg(long)]
    branding: Option<PathBuf>,
    /// Digits in a session code (9 or more).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(9..=20))]
    code_digits: u8,
    /// Seconds a session code stays valid (1 to 86400).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    code_ttl_secs: u64,
    /// STUN/TURN URL handed to clients (repeatable); none by default.
    #[arg(long = "ice-server")]
    ice_servers: Vec<String>,
    /// TURN user name for the ICE servers.
    #[arg(long, default_value = "")]
    ice_username: String,
    /// File holding the TURN credential for the ICE servers (kept out of the command line, where `ps` shows it).
    #[arg(long)]
    ice_credential_file: Option<PathBuf>,
    /// URL of a TURN server that takes time-limited credentials (coturn with `use-auth-secret`; repeatable).
    /// Each admitted host and viewer gets a credential of its own, valid for --turn-ttl-secs.
    #[arg(long = "turn-url", requires = "turn_secret_file")]
    turn_urls: Vec<String>,
    /// File holding the secret shared with the TURN server (coturn's `static-auth-secret`).
    #[arg(long, requires = "turn_urls")]
    turn_secret_file: Option<PathBuf>,
    /// Seconds a TURN credential stays valid (60 to 604800); a relayed session cannot outlast it.
    #[arg(long, default_value_t = 43_200, value_parser = clap::value_parser!(u64).range(60..=604_800))]
    turn_ttl_secs: u64,
    /// TLS certificate chain (PEM, leaf first); with --tls-key, serves HTTPS and WSS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A reverse proxy (address or CIDR, repeatable) whose X-Forwarded-For header names the client.
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<Cidr>,
    /// An origin whose pages may use the WebSocket (repeatable); default: only pages this server serves.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Open connections per client (an IPv4 address or an IPv6 /64).
    #[arg(long, default_value_t = 32)]
    connections_per_client: usize,
    /// Most connections at once.
    #[arg(long, default_value_t = 10_000)]
    max_peers: usize,
    /// Sustained messages per second per connection.
    #[arg(long, default_value_t = 20.0)]
    messages_per_second: f64,
    /// Failed join attempts allowed per client (an IPv4 address or an IPv6 /64) per minute.
    #[arg(long, default_value_t = 10)]
    join_failures_per_addr: usize,
    /// Failed join attempts allowed per IPv4 /24 or IPv6 /48 per minute.
    #[arg(long, default_value_t = 100)]
    join_failures_per_prefix: usize,
    /// Seconds a client has to send its HTTP request head or finish the TLS handshake.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    header_timeout_secs: u64,
    /// Seconds a WebSocket has to register or join.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    handshake_timeout_secs: u64,
    /// Seconds of silence (pongs to the server's pings count) after which a WebSocket is closed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..=3600))]
    idle_timeout_secs: u64,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(name), Some(path)) = (&args.new_token, &args.accounts) {
        use peerdesk_signaling_server::accounts::Accounts;
        let mut accounts = if path.exists() {
            Accounts::load(path).map_err(|e| anyhow::anyhow!("--accounts {}: {e}", path.display()))?
        } else {
            Accounts::new(args.operator.clone())
        };
        let token = accounts
            .issue(name, path)
            .map_err(|e| anyhow::anyhow!("--accounts {}: {e}", path.display()))?;
        println!("token for {name} (shown once; only its hash is kept): {token}");
        return Ok(());
    }
    let accounts = match &args.accounts {
        Some(path) => Some(Arc::new(
            peerdesk_signaling_server::accounts::Accounts::load(path)
                .map_err(|e| anyhow::anyhow!("--accounts {}: {e}", path.display()))?,
        )),
        None => None,
    };
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
    let credential = match &args.ice_credential_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read --ice-credential-file {}: {e}", path.display()))?
            .trim()
            .to_string(),
        None => String::new(),
    };
    let ice_servers = if args.ice_servers.is_empty() {
        Vec::new()
    } else {
        vec![IceServer {
            urls: args.ice_servers.clone(),
            username: args.ice_username.clone(),
            credential,
        }]
    };
    let turn = match &args.turn_secret_file {
        Some(path) => {
            let secret = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read --turn-secret-file {}: {e}", path.display()))?;
            let secret = secret.trim();
            anyhow::ensure!(!secret.is_empty(), "--turn-secret-file {} is empty", path.display());
            Some(TurnRest::new(
                args.turn_urls.clone(),
                secret.as_bytes(),
                Duration::from_secs(args.turn_ttl_secs),
            ))
        }
        None => None,
    };
    let config = HubConfig {
        code_digits: usize::from(args.code_digits),
        code_ttl: Duration::from_secs(args.code_ttl_secs),
        ice_servers,
        turn,
        accounts,
        max_peers: args.max_peers,
        join: JoinLimits {
            per_key: args.join_failures_per_addr,
            per_prefix: args.join_failures_per_prefix,
            ..JoinLimits::default()
        },
        ..HubConfig::default()
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(TlsFiles::load(cert, key)?)),
        _ => None,
    };
    if let Some(files) = tls.clone() {
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match files.reload() {
                    Ok(()) => tracing::info!("TLS certificate and key reloaded"),
                    Err(e) => tracing::error!("TLS reload failed, keeping the previous certificate: {e}"),
                }
            }
        });
    }
    let mut options = ServerOptions::default();
    options.static_dir = args.static_dir.clone();
    if let Some(path) = &args.branding {
        options.branding = Arc::new(
            peerdesk_signaling_server::branding::Branding::load(path)
                .map_err(|e| anyhow::anyhow!("--branding {}: {e}", path.display()))?,
        );
    }
    options.tls = tls;
    options.trusted_proxies = args.trusted_proxies.clone();
    options.allowed_origins = args.allowed_origins.clone();
    options.connections_per_client = args.connections_per_client;
    options.header_timeout = Duration::from_secs(args.header_timeout_secs);
    let idle_timeout = Duration::from_secs(args.idle_timeout_secs);
    options.connection = ConnectionLimits {
        messages_per_second: args.messages_per_second,
        handshake_timeout: Duration::from_secs(args.handshake_timeout_secs),
        idle_timeout,
        ping_interval: (idle_timeout / 3).max(Duration::from_secs(1)),
        ..ConnectionLimits::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    tracing::info!(%addr, tls = options.tls.is_some(), "signaling server ready");
    Server::with_options(config, options)
        .serve(listener, shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}
