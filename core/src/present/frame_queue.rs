//! A small bounded queue that drops the oldest item when full: how decoded frames reach a slow app without
//! building up latency.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Bounded, drop-oldest, usable from threads (blocking) and from async code.
#[derive(Debug)]
pub struct FrameQueue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    dropped: AtomicU64,
    closed: AtomicBool,
    notify: Notify,
    condvar: Condvar,
}

impl<T> FrameQueue<T> {
    /// A queue holding at most `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Self {
        FrameQueue {
            items: Mutex::new(VecDeque::with_capacity(capacity.max(1))),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
            condvar: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an item, dropping the oldest when full.
    pub fn push(&self, item: T) {
        {
            let mut items = self.lock();
            if items.len() == self.capacity {
                items.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            items.push_back(item);
        }
        self.notify.notify_one();
        self.condvar.notify_one();
    }

    /// Items dropped because the consumer was slow.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends the queue: consumers get `None` once it is drained.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
        self.notify.notify_one();
        self.condvar.notify_all();
    }

    /// Whether it was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes the oldest item without waiting.
    pub fn try_pop(&self) -> Option<T> {
        self.lock().pop_front()
    }

    /// Waits for an item; `None` once closed and drained.
    pub async fn pop(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            if let Some(item) = self.try_pop() {
                return Some(item);
            }
            if self.is_closed() {
                return None;
            }
            notified.await;
        }
    }

    /// Blocks the calling thread for up to `timeout` for an item; `None` on timeout or once closed and drained.
    pub fn pop_blocking(&self, timeout: Duration) -> Option<T> {
        let deadline = std::time::Instant::now() + timeout;
        let mut items = self.lock();
        loop {
            if let Some(item) = items.pop_front() {
                return Some(item);
            }
            if self.is_closed() {
                return None;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            items = self
                .condvar
                .wait_timeout(items, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_and_counts() {
        let q = FrameQueue::new(2);
        for i in 0..5 {
            q.push(i);
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.try_pop(), Some(3));
        assert_eq!(q.try_pop(), Some(4));
        assert_eq!(q.try_pop(), None);
    }

    #[tokio::test]
    async fn async_pop_wakes_and_close_ends() {
        let q = std::sync::Arc::new(FrameQueue::new(3));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { (q2.pop().await, q2.pop().await) });
        tokio::task::yield_now().await;
        q.push(7);
        q.close();
        assert_eq!(waiter.await.unwrap(), (Some(7), None));
        assert_eq!(q.pop_blocking(Duration::from_millis(1)), None);
    }
}
