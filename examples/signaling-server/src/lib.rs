//! peerdesk's signaling server as a library: the hub (what each message does), the room store, and an axum
//! router with the WebSocket endpoint, the health endpoint and static files. `main.rs` wraps it in a command;
//! `peerdesk demo` runs it in-process.

pub mod hub;
pub mod rooms;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
pub use hub::{Hub, HubConfig};
use peerdesk::ratelimit::TokenBucket;
use peerdesk::signaling::protocol::MAX_MESSAGE_BYTES;
use peerdesk::signaling::{ErrorCode, ServerMessage, PROTOCOL_VERSION};
use rooms::MemoryRoomStore;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Shared state of the router.
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

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
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
            let text = serde_json::to_string(&ServerMessage::error(code, "server at capacity")).unwrap_or_default();
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
    let mut bucket = TokenBucket::new(state.message_burst, state.messages_per_second, Instant::now());
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
            state
                .hub
                .reply_error(&peer, ErrorCode::RateLimited, "too many messages; slow down");
            continue;
        }
        state.hub.handle(&peer, addr.ip(), &text, now);
    }
    state.hub.disconnect(&peer);
    let _ = writer.await;
    tracing::info!(%peer, "disconnected");
}

/// A configured server, ready to serve on a listener.
pub struct Server {
    router: Router,
    shutdown_tx: watch::Sender<bool>,
}

impl Server {
    /// A server with this hub configuration, serving static files from `static_dir` when given.
    pub fn new(config: HubConfig, static_dir: Option<&Path>) -> Server {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = AppState {
            messages_per_second: config.messages_per_second,
            message_burst: config.message_burst,
            hub: Arc::new(Hub::new(config, Arc::new(MemoryRoomStore::default()))),
            shutdown: shutdown_rx,
        };
        let mut router = Router::new()
            .route("/ws", get(websocket))
            .route("/healthz", get(health));
        if let Some(dir) = static_dir {
            router = router.fallback_service(tower_http::services::ServeDir::new(dir));
        }
        Server {
            router: router.with_state(state),
            shutdown_tx,
        }
    }

    /// Serves until `shutdown` resolves, then closes every connection and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let shutdown_tx = self.shutdown_tx;
        axum::serve(
            listener,
            self.router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = shutdown_tx.send(true);
        })
        .await
    }
}
