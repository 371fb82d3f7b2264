//! The viewer across the boundary: join, frames (pulled, or pushed to a listener from one thread), events,
//! input, clipboard, leave.

use crate::errors::{CallbackError, SessionError};
use crate::events::ViewerEvent;
use crate::frame::VideoFrame;
use crate::runtime::{call_listener, dispatch_thread, run, Foreign};
use crate::types::{transport, InputEvent, Permissions, ViewerOptions, ViewerStats};
use peerdesk::decode::DecodedFrame;
use peerdesk::session::{self as core, FrameQueue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Receives a viewer's events, in order, on one dedicated thread. Return an error rather than throwing; a
/// failing or panicking call is logged and the next event still comes.
#[uniffi::export(foreign)]
pub trait ViewerListener: Send + Sync {
    /// One event; after `ViewerEvent::Ended`, none follows.
    fn on_event(&self, event: ViewerEvent) -> Result<(), CallbackError>;
}

/// Receives decoded frames on one dedicated thread.
#[uniffi::export(foreign)]
pub trait FrameListener: Send + Sync {
    /// A new frame; older ones were dropped if this call was slow (see `ViewerStats.frames_dropped`).
    fn on_frame(&self, frame: Arc<VideoFrame>) -> Result<(), CallbackError>;
}

/// A joined session.
#[derive(uniffi::Object)]
pub struct Viewer {
    inner: Mutex<Option<core::Viewer>>,
    frames: Arc<FrameQueue<DecodedFrame>>,
    size: (u32, u32),
    host_name: String,
    verification_code: String,
    device_public_key: Option<Vec<u8>>,
    listening: AtomicBool,
}

#[uniffi::export(async_runtime = "tokio")]
impl Viewer {
    /// Joins the host owning `options.code`; returns once the host consented and the connection is up.
    #[uniffi::constructor]
    pub async fn join(options: ViewerOptions, listener: Arc<dyn ViewerListener>) -> Result<Arc<Viewer>, SessionError> {
        let invalid = |details: String| SessionError::InvalidArgument { details };
        let mut config = match (&options.device_id, &options.access, &options.secret) {
            (Some(device), Some(access), Some(secret)) => {
                let device = device
                    .parse()
                    .map_err(|e: peerdesk::unattended::UnattendedError| invalid(e.to_string()))?;
                let config =
                    core::ViewerConfig::for_device(&options.server_url, device, access, secret).name(&options.name);
                match &options.totp_code {
                    Some(code) => config.totp_code(code),
                    None => config,
                }
            }
            (None, _, _) => core::ViewerConfig::new(&options.server_url, &options.code, &options.name),
            _ => return Err(invalid("unattended access needs device_id, access and secret".into())),
        }
        .transport(transport(options.loopback, options.relay_only, &options.ice_servers));
        match (&options.account, &options.token) {
            (Some(account), Some(token)) => config = config.sign_in(account, token),
            (None, None) => {}
            _ => return Err(invalid("signing in needs both account and token".into())),
        }
        config = config.frame_queue(options.frame_queue as usize);
        if let Some(pem) = &options.trusted_ca_pem {
            config = config.trust_ca_pem(pem);
        }
        let mut viewer = run(core::Viewer::join(config)).await??;
        if let Some(events) = viewer.take_events() {
            dispatch_thread(
                "peerdesk-viewer-events",
                events,
                move |event| match ViewerEvent::from_core(event) {
                    Some(event) => listener.on_event(event),
                    None => Ok(()),
                },
            );
        }
        Ok(Arc::new(Viewer {
            frames: viewer.frame_queue(),
            size: viewer.screen_size(),
            host_name: viewer.host_name().to_string(),
            verification_code: viewer.verification_code().to_string(),
            device_public_key: viewer.device_public_key().map(|k| k.to_vec()),
            inner: Mutex::new(Some(viewer)),
            listening: AtomicBool::new(false),
        }))
    }

    /// Unattended sessions: the device's Ed25519 public key (32 bytes), which it proved it holds. Remember it
    /// from the first session to refuse a later one with another key.
    pub fn device_public_key(&self) -> Option<Vec<u8>> {
        self.device_public_key.clone()
    }

    /// Width of the host's screen.
    pub fn width(&self) -> u32 {
        self.size.0
    }

    /// Height of the host's screen.
    pub fn height(&self) -> u32 {
        self.size.1
    }

    /// The host's display name (typed by the host app; not verified by anyone).
    pub fn host_name(&self) -> String {
        self.host_name.clone()
    }

    /// This session's six-digit verification code (`"042 917"`): read it to the person sharing; their app shows
    /// the same digits only if nobody sits in the middle of the encrypted connection.
    pub fn verification_code(&self) -> String {
        self.verification_code.clone()
    }

    /// Waits up to `timeout_ms` for the next decoded frame (blocking the calling thread; call it from a thread
    /// of your own). `None` on timeout or once the session ended.
    pub fn next_frame(&self, timeout_ms: u32) -> Option<Arc<VideoFrame>> {
        self.frames
            .pop_blocking(Duration::from_millis(u64::from(timeout_ms)))
            .map(|f| Arc::new(VideoFrame::new(f)))
    }

    /// Waits for the next decoded frame without blocking a thread: a Kotlin `suspend` function, a Swift `async`
    /// function, a Python coroutine. `None` once the session ended and every frame was taken. Frames the app
    /// takes too slowly are dropped oldest first (`ViewerStats.frames_dropped`).
    pub async fn receive_frame(&self) -> Option<Arc<VideoFrame>> {
        let frames = self.frames.clone();
        run(async move { frames.pop().await })
            .await
            .ok()
            .flatten()
            .map(|f| Arc::new(VideoFrame::new(f)))
    }

    /// Delivers every decoded frame to `listener` on one dedicated thread, until the session ends. Only one
    /// listener can be set.
    pub fn set_frame_listener(&self, listener: Arc<dyn FrameListener>) -> Result<(), SessionError> {
        if self.listening.swap(true, Ordering::SeqCst) {
            return Err(SessionError::InvalidArgument {
                details: "a frame listener is already set".into(),
            });
        }
        let frames = self.frames.clone();
        let listener = Foreign::new(listener);
        std::thread::Builder::new()
            .name("peerdesk-frames".into())
            .spawn(move || loop {
                // Woken by each frame and by the end of the session (the queue's close wakes every waiter):
                // the long timeout is only a backstop, never a poll.
                let delivered = match frames.pop_blocking(Duration::from_secs(3600)) {
                    Some(frame) => call_listener(|| listener.on_frame(Arc::new(VideoFrame::new(frame)))).is_some(),
                    None => !frames.is_closed(),
                };
                if !delivered {
                    break;
                }
            })
            .map_err(|e| SessionError::InvalidArgument { details: e.to_string() })?;
        Ok(())
    }

    /// The permissions the host granted.
    pub fn permissions(&self) -> Permissions {
        self.with(|v| v.permissions().into()).unwrap_or(Permissions {
            control: false,
            clipboard: false,
        })
    }

    /// Sends input; the host checks permissions and reports refusals through `on_refused`.
    pub fn send_input(&self, event: InputEvent) -> Result<(), SessionError> {
        self.with(|v| v.send_input(event.into()))?.map_err(Into::into)
    }

    /// Sends clipboard text (needs the clipboard permission).
    pub fn send_clipboard(&self, text: String) -> Result<(), SessionError> {
        self.with(|v| v.send_clipboard(text))?.map_err(Into::into)
    }

    /// Sends a chat line.
    pub fn send_chat(&self, text: String) -> Result<(), SessionError> {
        self.with(|v| v.send_chat(text))?.map_err(Into::into)
    }

    /// Connection figures.
    pub fn stats(&self) -> ViewerStats {
        let s = self.with(|v| v.stats()).unwrap_or_default();
        ViewerStats {
            rtt_ms: s.rtt_ms,
            bitrate_kbps: s.bitrate_kbps,
            fps: s.fps,
            frames: s.frames,
            frames_dropped: s.frames_dropped,
            bytes: s.bytes,
            packets_lost: s.packets_lost,
            keyframes: s.keyframes,
            packets_nacked: s.packets_nacked,
            packets_recovered: s.packets_recovered,
            keyframe_requests: s.keyframe_requests,
        }
    }

    /// Leaves the session.
    pub async fn leave(&self) {
        let viewer = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(viewer) = viewer {
            let _ = run(async move { viewer.leave().await }).await;
        }
    }
}

impl Viewer {
    fn with<T>(&self, f: impl FnOnce(&core::Viewer) -> T) -> Result<T, SessionError> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(f).ok_or(SessionError::Ended {
            reason: "left the session".into(),
        })
    }
}
