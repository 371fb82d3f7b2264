//! `peerdesk-signaling-server`: issues one-time session codes, relays SDP and ICE between a host and the viewer it
//! accepted, and serves static files (the web viewer). The protocol is documented in `peerdesk::signaling::protocol`.
//!
//! ```text
//! peerdesk-signaling-server --listen 127.0.0.1:8080 --static-dir examples/web-viewer
//! ```
//!
//! Endpoints: `GET /ws` (WebSocket), `GET /healthz` (JSON status), everything else from `--static-dir`.
//! Prints `listening on ADDR` once ready; stops gracefully on SIGINT/SIGTERM.

mod hub;
mod rooms;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hub::{Hub, HubConfig};
use peerdesk::ratelimit::TokenBucket;
use peerdesk::signaling::protocol::MAX_MESSAGE_BYTES;
use peerdesk::signaling::{ErrorCode, IceServer, ServerMessage, PROTOCOL_VERSION};
use rooms::MemoryRoomStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    messages_per_second: f64,
    message_burst: f64,
    shutdown: watch::Receiver<bool>,
}

/// Frames above this close the connection; between [`MAX_MESSAGE_BYTES`] and this, the client gets `too_large`.
const WEBSOCKET_FRAME_LIMIT: usize = 4 * MAX_MESSAGE_BYTES;
/// A connection that keeps exceeding its rate after this many refusals is closed.
const MAX_REFUSALS: u32 = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
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
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState {
        messages_per_second: config.messages_per_second,
        message_burst: config.message_burst,
        hub: Arc::new(Hub::new(config, Arc::new(MemoryRoomStore::default()))),
        shutdown: shutdown_rx,
    };
    let mut app = Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(health));
    if let Some(dir) = &args.static_dir {
        app = app.fallback_service(tower_http::services::ServeDir::new(dir));
    }
    let app = app.with_state(state);

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    tracing::info!(%addr, "signaling server ready");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let (peers, codes, pairs) = state.hub.counts();
    Json(
        serde_json::json!({ "status": "ok", "protocol": PROTOCOL_VERSION, "peers": peers, "codes": codes, "sessions": pairs }),
    )
}

async fn websocket(
    upgrade: WebSocketUpgrade,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    State(state): State<AppState>,
) -> impl IntoResponse {
    upgrade
        .max_message_size(WEBSOCKET_FRAME_LIMIT)
        .max_frame_size(WEBSOCKET_FRAME_LIMIT)
        .on_upgrade(move |socket| serve_peer(socket, addr, state))
}

async fn serve_peer(socket: WebSocket, addr: SocketAddr, state: AppState) {
    let (mut write, mut read) = socket.split();
    let (peer, mut outgoing) = match state.hub.connect() {
        Ok(p) => p,
        Err(code) => {
            let text = serde_json::to_string(&ServerMessage::error(code, "server at capacity"))
                .unwrap_or_default();
            let _ = write.send(Message::Text(text.into())).await;
            return;
        }
    };
    tracing::info!(%peer, %addr, "connected");
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let Ok(text) = serde_json::to_string(&message) else {
                continue;
            };
            if write.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = write.close().await;
    });
    let mut bucket = TokenBucket::new(
        state.message_burst,
        state.messages_per_second,
        Instant::now(),
    );
    let mut refusals = 0u32;
    let mut shutdown = state.shutdown.clone();
    loop {
        let frame = tokio::select! {
            frame = read.next() => frame,
            _ = shutdown.changed() => break,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => {
                state.hub.reply_error(
                    &peer,
                    ErrorCode::Malformed,
                    "binary frames are not part of the protocol",
                );
                continue;
            }
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::info!(%peer, "connection error: {e}");
                break;
            }
        };
        let now = Instant::now();
        if !bucket.try_take(now) {
            refusals += 1;
            if refusals > MAX_REFUSALS {
                tracing::warn!(%peer, "closing a connection that keeps exceeding its message rate");
                break;
            }
            state.hub.reply_error(
                &peer,
                ErrorCode::RateLimited,
                "too many messages; slow down",
            );
            continue;
        }
        state.hub.handle(&peer, addr.ip(), &text, now);
    }
    state.hub.disconnect(&peer);
    let _ = writer.await;
    tracing::info!(%peer, "disconnected");
}
