//! peerdesk's signaling server as a library: the hub (what each message does), the room store, the limits that
//! bound each client, and the HTTP side: an accept loop with optional TLS and header timeouts, the WebSocket
//! endpoint with an `Origin` check, the health endpoint, and static files with security headers. `main.rs` wraps
//! it in a command; `peerdesk demo` runs it in-process.

pub mod accounts;
pub mod branding;
pub mod connection;
pub mod hub;
pub mod limits;
pub mod outbox;
pub mod rooms;
pub mod tls;
pub mod turn;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
pub use connection::ConnectionLimits;
pub use hub::{Hub, HubConfig};
use hyper_util::rt::{TokioIo, TokioTimer};
use limits::{client_addr, Cidr, ConnectionLimiter};
use peerdesk::signaling::protocol::MAX_MESSAGE_BYTES;
use peerdesk::signaling::PROTOCOL_VERSION;
use rooms::MemoryRoomStore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tls::TlsFiles;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;
use tower_http::set_header::SetResponseHeaderLayer;

/// Frames above this close the connection; between [`MAX_MESSAGE_BYTES`] and this, the client gets `too_large`.
const WEBSOCKET_FRAME_LIMIT: usize = 4 * MAX_MESSAGE_BYTES;
/// tungstenite's read buffer per connection (its default, 128 KiB, made an idle connection cost ≈137 KB).
const WEBSOCKET_READ_BUFFER: usize = 4 * 1024;
/// How long shutdown waits for open connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything about the HTTP side of the server; the defaults suit a server on the open internet.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Folder of static files to serve (the web viewer). Default: none.
    pub static_dir: Option<PathBuf>,
    /// The operator's branding, served as `/branding.json` and `/branding/logo.png`. Default: peerdesk's own.
    pub branding: Arc<branding::Branding>,
    /// TLS certificate and key; `None` serves plain HTTP (behind a TLS proxy, or on loopback). Default: none.
    pub tls: Option<Arc<TlsFiles>>,
    /// Proxies whose `X-Forwarded-For` is believed. Default: none (the TCP peer is the client).
    pub trusted_proxies: Vec<Cidr>,
    /// Origins (`https://support.example.com`) whose pages may open the WebSocket. Default: empty, which allows
    /// only pages served by this server (Origin equal to the request's Host). Clients that send no Origin
    /// (native SDKs) are always allowed.
    pub allowed_origins: Vec<String>,
    /// Open connections per client key (an IPv4 address or IPv6 /64), WebSocket and plain HTTP counted apart.
    /// Default 32.
    pub connections_per_client: usize,
    /// Time to send the HTTP request head, and to finish the TLS handshake. Default 10 s.
    pub header_timeout: Duration,
    /// Per-connection rates and timeouts.
    pub connection: ConnectionLimits,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            static_dir: None,
            branding: Arc::default(),
            tls: None,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            connections_per_client: 32,
            header_timeout: Duration::from_secs(10),
            connection: ConnectionLimits::default(),
        }
    }
}

/// Shared state of the router.
#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    limits: ConnectionLimits,
    trusted_proxies: Arc<[Cidr]>,
    allowed_origins: Arc<[String]>,
    websockets: ConnectionLimiter,
    shutdown: watch::Receiver<bool>,
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match term {
        Ok(mut term) => tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        },
        Err(e) => {
            tracing::warn!("no SIGTERM handler ({e}); stopping on SIGINT only");
            let _ = ctrl_c.await;
        }
    }
}

/// Liveness only: the numbers of codes and sessions would tell a guesser the odds.
async fn health() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok", "protocol": PROTOCOL_VERSION }))
}

/// Whether a browser page from `origin` may open the WebSocket: listed, or (no list) the same origin as `host`.
fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    if !allowed.is_empty() {
        return allowed.iter().any(|a| a.eq_ignore_ascii_case(origin));
    }
    let Some(host) = host else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

async fn websocket(
    upgrade: WebSocketUpgrade,
    ConnectInfo(tcp_peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(state): State<AppState>,
) -> Response {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = client_addr(tcp_peer.ip(), forwarded, &state.trusted_proxies);
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let allowed = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, host, &state.allowed_origins));
        if !allowed {
            tracing::debug!(%client, origin = ?origin, "WebSocket from a foreign origin refused");
            return (StatusCode::FORBIDDEN, "this origin may not use the signaling server").into_response();
        }
    }
    let Some(permit) = state.websockets.try_acquire(client) else {
        return (StatusCode::TOO_MANY_REQUESTS, "too many connections from this address").into_response();
    };
    let AppState {
        hub, limits, shutdown, ..
    } = state;
    upgrade
        .read_buffer_size(WEBSOCKET_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(WEBSOCKET_FRAME_LIMIT)
        .max_frame_size(WEBSOCKET_FRAME_LIMIT)
        .on_upgrade(move |socket| connection::serve(socket, client, hub, limits, shutdown, permit))
}

/// A configured server, ready to serve on a listener.
pub struct Server {
    router: Router,
    options: ServerOptions,
    shutdown_tx: watch::Sender<bool>,
}

impl Server {
    /// A server with this hub configuration, serving static files from `static_dir` when given, with the default
    /// [`ServerOptions`] otherwise.
    pub fn new(config: HubConfig, static_dir: Option<&std::path::Path>) -> Server {
        let options = ServerOptions {
            static_dir: static_dir.map(PathBuf::from),
            ..ServerOptions::default()
        };
        Server::with_options(config, options)
    }

    /// A server with this hub configuration and these options.
    pub fn with_options(config: HubConfig, options: ServerOptions) -> Server {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = AppState {
            hub: Arc::new(Hub::new(config, Arc::new(MemoryRoomStore::default()))),
            limits: options.connection.clone(),
            trusted_proxies: options.trusted_proxies.clone().into(),
            allowed_origins: options.allowed_origins.clone().into(),
            websockets: ConnectionLimiter::new(options.connections_per_client),
            shutdown: shutdown_rx,
        };
        let branding = options.branding.clone();
        let logo = options.branding.clone();
        let mut router = Router::new()
            .route("/ws", get(websocket))
            .route("/healthz", get(health))
            .route(
                "/branding.json",
                get(move || async move { Json(branding.as_ref().clone()) }),
            )
            .route(
                "/branding/logo.png",
                get(move || async move {
                    match logo.logo_png() {
                        Some(png) => ([(header::CONTENT_TYPE, "image/png")], png.to_vec()).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }),
            );
        if let Some(dir) = &options.static_dir {
            router = router.fallback_service(tower_http::services::ServeDir::new(dir));
        }
        let mut router = router
            .with_state(state)
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; \
                     media-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
                     frame-ancestors 'none'",
                ),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ));
        if options.tls.is_some() {
            router = router.layer(SetResponseHeaderLayer::if_not_present(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            ));
        }
        Server {
            router,
            options,
            shutdown_tx,
        }
    }

    /// Serves until `shutdown` resolves, then closes every connection and returns.
    ///
    /// Each accepted TCP connection counts against its client key's cap (plain HTTP and TLS alike; trusted
    /// proxies are exempt, their clients are counted at the WebSocket), must finish its TLS handshake and
    /// request head within the header timeout, and is served by hyper with WebSocket upgrades.
    ///
    /// # Errors
    /// Never at present; accept errors (such as running out of file descriptors) are logged and retried.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Server {
            router,
            options,
            shutdown_tx,
        } = self;
        let mut stopping = shutdown_tx.subscribe();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            let _ = shutdown_tx.send(true);
            // Keep the sender alive until every receiver is gone.
            shutdown_tx.closed().await;
        });
        let tcp_limiter = ConnectionLimiter::new(options.connections_per_client);
        let trusted: Arc<[Cidr]> = options.trusted_proxies.clone().into();
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // EMFILE and friends: back off a little instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopping.changed() => break,
            };
            let permit = if trusted.iter().any(|proxy| proxy.contains(peer.ip())) {
                None
            } else {
                match tcp_limiter.try_acquire(peer.ip()) {
                    Some(permit) => Some(permit),
                    None => continue, // dropped: too many connections from this client
                }
            };
            let _ = tcp.set_nodelay(true);
            let service = router
                .clone()
                .map_request(move |mut request: axum::extract::Request<_>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
            let tls = options.tls.as_ref().map(|files| files.acceptor());
            let header_timeout = options.header_timeout;
            let shutdown = stopping.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let _done = done;
                match tls {
                    Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_http(stream, service, header_timeout, shutdown).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    },
                    None => serve_http(tcp, service, header_timeout, shutdown).await,
                }
            });
        }
        drop(done_tx);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv()).await;
        Ok(())
    }
}

async fn serve_http<IO, S>(io: IO, service: S, header_timeout: Duration, mut shutdown: watch::Receiver<bool>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            axum::extract::Request<hyper::body::Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), hyper_util::service::TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("HTTP connection ended: {e}");
            }
        }
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_or_same_origin_pages_may_connect() {
        assert!(origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080"), &[]));
        assert!(origin_allowed("https://support.example", Some("support.example"), &[]));
        assert!(!origin_allowed("https://evil.example", Some("support.example"), &[]));
        assert!(!origin_allowed("null", Some("support.example"), &[]));
        assert!(!origin_allowed("http://127.0.0.1:8080", None, &[]));
        let listed = ["https://app.example".to_string()];
        assert!(origin_allowed("https://app.example", Some("signal.example"), &listed));
        assert!(!origin_allowed(
            "https://signal.example",
            Some("signal.example"),
            &listed
        ));
    }
}
