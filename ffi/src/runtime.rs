//! One tokio runtime for everything behind the boundary, and the dedicated threads that call foreign listeners.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Set once the foreign runtime is shutting down: no listener is called any more.
static LISTENERS_DETACHED: AtomicBool = AtomicBool::new(false);

/// Stops every listener call into foreign code, for good, in this process. A binding calls it when its
/// runtime exits (Python's `atexit`): a thread that called into a finalizing interpreter would be ended by it in
/// a way Rust cannot unwind through, aborting the process. Sessions go on; their events are dropped.
#[uniffi::export]
pub fn detach_listeners() {
    LISTENERS_DETACHED.store(true, Ordering::SeqCst);
}

/// Whether listeners may still be called (see [`detach_listeners`]).
pub(crate) fn listeners_attached() -> bool {
    !LISTENERS_DETACHED.load(Ordering::SeqCst)
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
    let _ = std::thread::Builder::new().name(name.to_string()).spawn(move || {
        while !events.is_closed() {
            let Some(event) = events.recv_blocking(std::time::Duration::from_secs(1)) else {
                continue;
            };
            if !listeners_attached() {
                break;
            }
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(event))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("listener failed: {e}"),
                Err(_) => tracing::error!("listener panicked; event dropped"),
            }
        }
    });
}
