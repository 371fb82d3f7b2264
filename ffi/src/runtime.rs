//! One tokio runtime for everything behind the boundary, and the dedicated threads that call foreign listeners.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Set once the foreign runtime is shutting down: no listener is called any more.
static LISTENERS_DETACHED: AtomicBool = AtomicBool::new(false);
/// Listener calls under way right now.
static CALLS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// How long `detach_listeners` waits for calls under way to return.
const DETACH_WAIT: Duration = Duration::from_secs(2);

/// Stops every listener call into foreign code, for good, in this process, and waits (up to 2 s) for calls under
/// way to return. A binding calls it when its runtime exits (Python's `atexit`): a thread that called into a
/// finalizing interpreter would be ended by it in a way Rust cannot unwind through, aborting the process.
/// Sessions go on; their events are dropped.
#[uniffi::export]
pub fn detach_listeners() {
    LISTENERS_DETACHED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + DETACH_WAIT;
    while CALLS_IN_FLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Calls a foreign listener through `call`, unless listeners were detached (then `None`, and the caller stops).
/// A panic in the call is contained and logged.
pub(crate) fn call_listener<T>(call: impl FnOnce() -> Result<T, crate::errors::CallbackError>) -> Option<()> {
    CALLS_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    // Checked after counting, so `detach_listeners` either sees this call or this call sees the flag.
    if LISTENERS_DETACHED.load(Ordering::SeqCst) {
        CALLS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!("listener failed: {e}"),
        Err(_) => tracing::error!("listener panicked; event dropped"),
    }
    CALLS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    Some(())
}

/// A value that holds foreign objects (a listener, or a closure over one). Dropping the last reference to a
/// foreign object calls into foreign code too (its `free`), so it gets the same guard as a call: after
/// [`detach_listeners`] the value is leaked instead (the process is exiting), and a drop under way is waited for.
pub(crate) struct Foreign<T>(std::mem::ManuallyDrop<T>);

impl<T> Foreign<T> {
    pub(crate) fn new(value: T) -> Self {
        Foreign(std::mem::ManuallyDrop::new(value))
    }
}

impl<T> std::ops::Deref for Foreign<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for Foreign<T> {
    fn drop(&mut self) {
        CALLS_IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        if !LISTENERS_DETACHED.load(Ordering::SeqCst) {
            // SAFETY: dropped once, here; `self.0` is not used again.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                std::mem::ManuallyDrop::drop(&mut self.0)
            }));
        }
        CALLS_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("peerdesk-worker")
            .enable_all()
            .build()
            .expect("the peerdesk runtime starts")
    })
}

/// Runs `future` on peerdesk's runtime and waits for it (from any executor the foreign side uses). A panic in it
/// is passed on (uniffi turns it into an error for the foreign caller); a task cancelled because the runtime is
/// shutting down is [`SessionError::Ended`](crate::errors::SessionError::Ended).
pub(crate) async fn run<F>(future: F) -> Result<F::Output, crate::errors::SessionError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime().spawn(future).await {
        Ok(output) => Ok(output),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down (the process is exiting). `into_panic` would panic here.
        Err(_) => Err(crate::errors::SessionError::Ended {
            reason: "peerdesk's runtime is shutting down".into(),
        }),
    }
}

/// Calls `call` with every event from `events` on one dedicated thread, in order, until the session ends. The
/// session's queue is bounded (see `peerdesk::session::EventReceiver`): a listener slower than the events loses
/// informative ones (chat, cursor moves), counted, never memory. A failing callback is logged and skipped; a
/// panicking one is contained.
pub(crate) fn dispatch_thread<E, F>(name: &str, mut events: peerdesk::session::EventReceiver<E>, call: F)
where
    E: Send + 'static,
    F: Fn(E) -> Result<(), crate::errors::CallbackError> + Send + 'static,
{
    let call = Foreign::new(call);
    let _ = std::thread::Builder::new().name(name.to_string()).spawn(move || {
        while !events.is_closed() {
            let Some(event) = events.recv_blocking(std::time::Duration::from_secs(1)) else {
                continue;
            };
            if call_listener(|| (*call)(event)).is_none() {
                break;
            }
        }
    });
}
