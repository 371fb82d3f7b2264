//! Each connection's outgoing queue, bounded in bytes rather than messages: a peer that stops reading can pin at
//! most [`OUTBOX_BYTES`] of server memory, and when it would need more it is disconnected (its counterparts are
//! told it left) instead of having messages silently dropped, which used to break call set-up without an error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Bytes of encoded messages queued for one connection before it counts as not keeping up: four messages of the
/// largest size, or hundreds of ICE candidates.
pub const OUTBOX_BYTES: usize = 256 * 1024;

/// The sending half, kept by the hub.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Arc<str>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The receiving half, drained by the connection's writer.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Arc<str>>,
    queued: Arc<AtomicUsize>,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// The connection has more than the limit queued: it is not reading.
    #[error("the connection is not reading its messages ({0} bytes queued)")]
    Full(usize),
    /// The connection is gone.
    #[error("the connection is closed")]
    Closed,
}

/// A new outbox holding at most `limit` bytes.
pub fn outbox(limit: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued: queued.clone(),
            limit,
        },
        OutboxReceiver { rx, queued },
    )
}

impl Outbox {
    /// Queues an encoded message.
    ///
    /// # Errors
    /// [`OutboxError::Full`] when it would take the queue past its limit (nothing is queued then),
    /// [`OutboxError::Closed`] when the writer has gone.
    pub fn push(&self, text: Arc<str>) -> Result<(), OutboxError> {
        let len = text.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(OutboxError::Full(before));
        }
        self.tx.send(text).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            OutboxError::Closed
        })
    }
}

impl OutboxReceiver {
    /// The next message; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Arc<str>> {
        let text = self.rx.recv().await?;
        self.queued.fetch_sub(text.len(), Ordering::AcqRel);
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_stops_is_refused_past_the_byte_limit() {
        let (tx, mut rx) = outbox(10);
        tx.push("12345".into()).unwrap();
        tx.push("12345".into()).unwrap();
        assert_eq!(tx.push("1".into()), Err(OutboxError::Full(10)));
        assert_eq!(rx.recv().await.as_deref(), Some("12345"));
        tx.push("1".into()).unwrap();
        drop(rx);
        assert_eq!(tx.push("1".into()), Err(OutboxError::Closed));
    }
}
