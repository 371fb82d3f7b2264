//! The signaling client: one WebSocket to the signaling server, with typed messages in and out.

use super::protocol::{parse_server_message, ClientMessage, ServerMessage, MAX_MESSAGE_BYTES};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Errors of the signaling connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalingError {
    /// The server could not be reached or refused the WebSocket.
    #[error("cannot connect to the signaling server at {url}: {reason}")]
    Connect {
        /// The URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The connection is closed.
    #[error("signaling connection closed")]
    Closed,
}

/// Sends messages to the server; cheap to clone.
#[derive(Debug, Clone)]
pub struct SignalingSender {
    tx: mpsc::Sender<ClientMessage>,
}

impl SignalingSender {
    /// Queues a message for the server.
    pub async fn send(&self, message: ClientMessage) -> Result<(), SignalingError> {
        self.tx.send(message).await.map_err(|_| SignalingError::Closed)
    }
}

/// A connection to the signaling server.
#[derive(Debug)]
pub struct SignalingClient {
    sender: SignalingSender,
    incoming: mpsc::Receiver<ServerMessage>,
}

impl SignalingClient {
    /// Connects to `url` (`ws://host:port/ws` or `wss://...`).
    pub async fn connect(url: &str) -> Result<Self, SignalingError> {
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_MESSAGE_BYTES);
        config.max_frame_size = Some(MAX_MESSAGE_BYTES);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|e| SignalingError::Connect {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        let (mut write, mut read) = socket.split();
        let (out_tx, mut out_rx) = mpsc::channel::<ClientMessage>(64);
        let (in_tx, in_rx) = mpsc::channel::<ServerMessage>(64);
        tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                let text = match serde_json::to_string(&message) {
                    Ok(text) => text,
                    Err(e) => {
                        tracing::error!("cannot encode signaling message: {e}");
                        continue;
                    }
                };
                if write.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            let _ = write.close().await;
        });
        tokio::spawn(async move {
            while let Some(frame) = read.next().await {
                let text = match frame {
                    Ok(Message::Text(text)) => text,
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue,
                };
                match parse_server_message(&text) {
                    Ok(message) => {
                        if in_tx.send(message).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::warn!("ignoring bad message from the signaling server: {e}"),
                }
            }
        });
        Ok(SignalingClient {
            sender: SignalingSender { tx: out_tx },
            incoming: in_rx,
        })
    }

    /// A handle for sending.
    pub fn sender(&self) -> SignalingSender {
        self.sender.clone()
    }

    /// Sends a message.
    pub async fn send(&self, message: ClientMessage) -> Result<(), SignalingError> {
        self.sender.send(message).await
    }

    /// The next message from the server; `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        self.incoming.recv().await
    }

    /// Splits into the sending handle and the receiving half.
    pub fn split(self) -> (SignalingSender, mpsc::Receiver<ServerMessage>) {
        (self.sender, self.incoming)
    }
}
