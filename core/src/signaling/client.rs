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
    /// A trusted certificate given in [`SignalingTls`] could not be read.
    #[error("unusable trusted certificate: {0}")]
    Certificate(String),
}

/// Which servers a `wss://` connection trusts: the webpki (Mozilla) roots, the system's bundle when there is one
/// (`/etc/ssl/certs/ca-certificates.crt`), and any CA certificates given here, for self-hosted servers with a
/// private CA. `ws://` connections (loopback, or a TLS-terminating proxy in front) ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignalingTls {
    /// Extra trusted CA certificates, each PEM text (several certificates per entry are fine). Default: none.
    pub extra_roots_pem: Vec<String>,
}

impl SignalingTls {
    /// Also trusts the CA certificate(s) in `pem`.
    ///
    /// ```
    /// let tls = peerdesk::signaling::SignalingTls::default().trust_pem("-----BEGIN CERTIFICATE-----\n...");
    /// assert_eq!(tls.extra_roots_pem.len(), 1);
    /// ```
    #[must_use]
    pub fn trust_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_roots_pem.push(pem.into());
        self
    }

    fn client_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, SignalingError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Ok(certs) = CertificateDer::pem_file_iter(SYSTEM_BUNDLE) {
            let (added, ignored) = roots.add_parsable_certificates(certs.filter_map(Result::ok));
            tracing::debug!(added, ignored, "system CA bundle");
        }
        for pem in &self.extra_roots_pem {
            let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SignalingError::Certificate(e.to_string()))?;
            if certs.is_empty() {
                return Err(SignalingError::Certificate("no certificate in the PEM text".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| SignalingError::Certificate(e.to_string()))?;
            }
        }
        let config =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| SignalingError::Certificate(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(std::sync::Arc::new(config))
    }
}

/// Where Debian and Ubuntu keep the system's trusted CAs.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

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
    /// Connects to `url` (`ws://host:port/ws`, or `wss://...` trusting the default roots).
    ///
    /// # Errors
    /// [`SignalingError::Connect`] when the server cannot be reached, refuses the WebSocket or fails TLS.
    pub async fn connect(url: &str) -> Result<Self, SignalingError> {
        Self::connect_with(url, &SignalingTls::default()).await
    }

    /// Connects to `url`, trusting what `tls` says for `wss://` URLs.
    ///
    /// # Errors
    /// [`SignalingError::Certificate`] for unusable extra roots; [`SignalingError::Connect`] when the server
    /// cannot be reached, refuses the WebSocket, or its certificate is not trusted.
    pub async fn connect_with(url: &str, tls: &SignalingTls) -> Result<Self, SignalingError> {
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_MESSAGE_BYTES);
        config.max_frame_size = Some(MAX_MESSAGE_BYTES);
        let connector = if url.starts_with("wss:") {
            tokio_tungstenite::Connector::Rustls(tls.client_config()?)
        } else {
            tokio_tungstenite::Connector::Plain
        };
        let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, Some(connector))
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
