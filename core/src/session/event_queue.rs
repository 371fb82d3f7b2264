//! The bounded queue that carries session events to the app.
//!
//! An app that reads its events slowly (a UI thread that is busy, a foreign listener that blocks) must not let the
//! other side of a session fill the host's or viewer's memory: a view-only viewer may send chat at the control
//! channel's rate. The queue holds at most [`EVENT_QUEUE_CAPACITY`] events. When it is full, events that a later
//! one supersedes or that are only informative (chat, clipboard, cursor moves, refusals) are dropped and counted;
//! events that change what the app must do (join requests, viewers connecting or leaving, verification codes, the
//! end) are still queued, up to [`EVENT_QUEUE_HARD_LIMIT`]. Past that limit nothing more is queued: a dropped
//! [`JoinRequest`](super::JoinRequest) denies itself, so even then nobody is let in unasked.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Events kept for an app that does not read them, before informative ones are dropped.
pub const EVENT_QUEUE_CAPACITY: usize = 256;
/// Events kept at most, whatever their kind.
pub const EVENT_QUEUE_HARD_LIMIT: usize = 4 * EVENT_QUEUE_CAPACITY;

/// Whether an event may be dropped when the app's queue is full.
pub(crate) trait Droppable {
    /// `true` for events that are informative or superseded by a later one.
    fn droppable(&self) -> bool;
}

#[derive(Debug)]
struct State<T> {
    events: VecDeque<T>,
    /// The sending side is gone: no event will come after the queued ones.
    closed: bool,
    dropped: u64,
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes an async reader.
    notify: Notify,
    /// Wakes a blocking reader (a binding's dispatch thread).
    condvar: Condvar,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session's side of the queue.
#[derive(Debug)]
pub(crate) struct EventSender<T> {
    shared: Arc<Shared<T>>,
}

/// The app's side of a session's event queue: events in order, with a bounded backlog (see the module docs).
#[derive(Debug)]
pub struct EventReceiver<T> {
    shared: Arc<Shared<T>>,
}

/// A new queue.
pub(crate) fn event_queue<T>() -> (EventSender<T>, EventReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            events: VecDeque::new(),
            closed: false,
            dropped: 0,
        }),
        notify: Notify::new(),
        condvar: Condvar::new(),
    });
    (EventSender { shared: shared.clone() }, EventReceiver { shared })
}

impl<T: Droppable> EventSender<T> {
    /// Queues `event`, or drops it (counted) when the queue is full and the event may go. Returns whether it was
    /// queued.
    pub(crate) fn send(&self, event: T) -> bool {
        let mut state = self.shared.lock();
        let len = state.events.len();
        if len >= EVENT_QUEUE_HARD_LIMIT || (len >= EVENT_QUEUE_CAPACITY && event.droppable()) {
            state.dropped += 1;
            if state.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = state.dropped,
                    "the app is not reading session events; dropping some"
                );
            }
            return false;
        }
        state.events.push_back(event);
        drop(state);
        self.shared.notify.notify_one();
        self.shared.condvar.notify_all();
        true
    }
}

impl<T> Drop for EventSender<T> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.notify.notify_one();
        self.shared.condvar.notify_all();
    }
}

impl<T> EventReceiver<T> {
    /// The next event, waiting for one; `None` once the session ended and every event was read.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            let notified = self.shared.notify.notified();
            {
                let mut state = self.shared.lock();
                if let Some(event) = state.events.pop_front() {
                    return Some(event);
                }
                if state.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.shared.lock().events.pop_front()
    }

    /// The next event, blocking the calling thread up to `timeout` (for a thread of the app's own, never an
    /// async task). `None` on timeout or once the session ended and every event was read; tell the two apart
    /// with [`EventReceiver::is_closed`].
    pub fn recv_blocking(&mut self, timeout: Duration) -> Option<T> {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(event) = state.events.pop_front() {
                return Some(event);
            }
            let now = std::time::Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self
                .shared
                .condvar
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Whether the session ended and every event was read.
    pub fn is_closed(&self) -> bool {
        let state = self.shared.lock();
        state.closed && state.events.is_empty()
    }

    /// Events dropped so far because the app did not read them in time.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Event {
        Chat(usize),
        Join(usize),
    }

    impl Droppable for Event {
        fn droppable(&self) -> bool {
            matches!(self, Event::Chat(_))
        }
    }

    #[test]
    fn a_full_queue_drops_chat_keeps_joins_up_to_the_hard_limit() {
        let (tx, mut rx) = event_queue();
        for i in 0..EVENT_QUEUE_CAPACITY + 10 {
            tx.send(Event::Chat(i));
        }
        assert_eq!(rx.dropped(), 10, "chat past the capacity is dropped");
        assert!(tx.send(Event::Join(0)), "a join request still gets in");
        for i in 1..EVENT_QUEUE_HARD_LIMIT {
            tx.send(Event::Join(i));
        }
        // CAPACITY chats and one join were queued; of the HARD_LIMIT - 1 later joins, HARD_LIMIT - CAPACITY - 1 fit.
        assert_eq!(
            rx.dropped(),
            10 + EVENT_QUEUE_CAPACITY as u64,
            "nothing past the hard limit"
        );
        assert_eq!(rx.try_recv(), Some(Event::Chat(0)), "in order");
        drop(tx);
        let mut left = 1;
        while rx.recv_blocking(Duration::from_millis(1)).is_some() {
            left += 1;
        }
        assert_eq!(left, EVENT_QUEUE_HARD_LIMIT);
        assert!(rx.is_closed());
    }

    #[tokio::test]
    async fn recv_wakes_on_send_and_ends_when_the_sender_goes() {
        let (tx, mut rx) = event_queue();
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(event) = rx.recv().await {
                seen.push(event);
            }
            seen
        });
        tokio::task::yield_now().await;
        tx.send(Event::Join(1));
        tx.send(Event::Chat(2));
        drop(tx);
        assert_eq!(reader.await.unwrap(), vec![Event::Join(1), Event::Chat(2)]);
    }

    #[test]
    fn a_blocking_reader_times_out_without_events() {
        let (_tx, mut rx) = event_queue::<Event>();
        assert_eq!(rx.recv_blocking(Duration::from_millis(10)), None);
        assert!(!rx.is_closed());
    }
}
