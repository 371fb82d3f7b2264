//! One WebSocket connection: frames in, through the rate limit, to the hub; the hub's queued messages out, with a
//! write timeout; pings to keep it alive; closed when it stays silent, never registers or joins, keeps exceeding
//! its rate, or stops reading.

use crate::hub::Hub;
use crate::limits::ConnectionPermit;
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use peerdesk::ratelimit::{FailureWindow, TokenBucket};
use peerdesk::signaling::{ErrorCode, ServerMessage};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Timeouts and rates of a connection.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Sustained messages per second (every frame counts: text, binary, ping, pong). Default 20.
    pub messages_per_second: f64,
    /// Burst of messages. Default 60.
    pub message_burst: f64,
    /// Refused messages per minute after which the connection is closed. Default 200.
    pub refusals_per_minute: usize,
    /// Time to register or join after the upgrade. Default 10 s.
    pub handshake_timeout: Duration,
    /// Silence (no frame at all, pongs included) after which the connection is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// Interval of the server's pings, which well-behaved clients answer. Default 20 s.
    pub ping_interval: Duration,
    /// Longest a single write may take before the connection counts as stuck. Default 10 s.
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            messages_per_second: 20.0,
            message_burst: 60.0,
            refusals_per_minute: 200,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ping_interval: Duration::from_secs(20),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves one upgraded connection from `client` until it ends or the server shuts down.
pub async fn serve(
    socket: WebSocket,
    client: IpAddr,
    hub: Arc<Hub>,
    limits: ConnectionLimits,
    mut shutdown: watch::Receiver<bool>,
    permit: ConnectionPermit,
) {
    let _permit = permit;
    let (mut write, mut read) = socket.split();
    let (peer, mut outgoing) = match hub.connect() {
        Ok(p) => p,
        Err(code) => {
            let text = serde_json::to_string(&ServerMessage::error(code, "server at capacity")).unwrap_or_default();
            let _ = tokio::time::timeout(limits.write_timeout, write.send(Message::Text(text.into()))).await;
            return;
        }
    };
    tracing::debug!(%peer, %client, "connected");
    let (write_timeout, ping_interval) = (limits.write_timeout, limits.ping_interval);
    let mut writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        loop {
            let message = tokio::select! {
                text = outgoing.recv() => match text {
                    Some(text) => Message::Text(text.as_ref().into()),
                    None => break, // the hub dropped this connection
                },
                _ = ping.tick() => Message::Ping(Default::default()),
            };
            match tokio::time::timeout(write_timeout, write.send(message)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::debug!("write timed out; closing");
                    break;
                }
            }
        }
        let _ = tokio::time::timeout(write_timeout, write.close()).await;
    });

    let start = std::time::Instant::now();
    let mut bucket = TokenBucket::new(limits.message_burst, limits.messages_per_second, start);
    let mut refusals = FailureWindow::new(limits.refusals_per_minute, Duration::from_secs(60));
    let handshake_deadline = Instant::now() + limits.handshake_timeout;
    let mut last_frame = Instant::now();
    let reason = loop {
        let deadline = if hub.has_role(&peer) {
            last_frame + limits.idle_timeout
        } else {
            handshake_deadline.min(last_frame + limits.idle_timeout)
        };
        let frame = tokio::select! {
            frame = tokio::time::timeout_at(deadline, read.next()) => match frame {
                Ok(frame) => frame,
                Err(_) if !hub.has_role(&peer) => break "no register or join in time",
                // The role came from another connection's message (a resumed session is paired when the other
                // side presents its token) while this wait ran to the handshake deadline: not idle.
                Err(_) if Instant::now() < last_frame + limits.idle_timeout => continue,
                Err(_) => break "idle",
            },
            _ = shutdown.changed() => break "server shutting down",
            _ = &mut writer => break "stopped reading or writes failed",
        };
        last_frame = Instant::now();
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!(%peer, "connection error: {e}");
                break "connection error";
            }
            None => break "closed",
        };
        if let Message::Close(_) = frame {
            break "closed";
        }
        let now = std::time::Instant::now();
        if !bucket.try_take(now) {
            if !refusals.allows(now) {
                break "kept exceeding its message rate";
            }
            refusals.record_failure(now);
            hub.reply_error(&peer, ErrorCode::RateLimited, "too many messages; slow down");
            continue;
        }
        match frame {
            Message::Text(text) => hub.handle(&peer, client, &text, now),
            Message::Binary(_) => {
                refusals.record_failure(now);
                hub.reply_error(
                    &peer,
                    ErrorCode::Malformed,
                    "binary frames are not part of the protocol",
                );
            }
            _ => {} // ping (answered by the WebSocket layer) and pong: they only count against the rate
        }
        if !hub.is_connected(&peer) {
            break "dropped by the hub";
        }
    };
    hub.disconnect(&peer);
    if !writer.is_finished() {
        // Let queued replies (an error saying why) go out, within the write timeout.
        let _ = tokio::time::timeout(limits.write_timeout, &mut writer).await;
        writer.abort();
    }
    tracing::debug!(%peer, reason, "disconnected");
}
