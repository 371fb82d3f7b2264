//! The host across the boundary: start, code, consent through a listener, permissions, pushed frames, end.

use crate::errors::{CallbackError, FrameError, SessionError};
use crate::events::HostEvent;
use crate::runtime::{dispatch_thread, run};
use crate::types::{transport, HostOptions, HostStats, Permissions, PushFormat, ScreenSource};
use peerdesk::capture::pushed::{pushed_source, FramePusher};
use peerdesk::session::{self as core, Consent};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Receives a host's events, in order, on one dedicated thread (never an async worker). Return an error
/// rather than throwing; a failing or panicking call is logged and the next event still comes.
#[uniffi::export(foreign)]
pub trait HostListener: Send + Sync {
    /// One event; after `HostEvent::Ended`, none follows.
    fn on_event(&self, event: HostEvent) -> Result<(), CallbackError>;
}

/// A viewer's request to join. Unanswered requests are denied when dropped.
#[derive(uniffi::Object)]
pub struct JoinRequest {
    viewer: String,
    name: String,
    describe: String,
    asks: Permissions,
    verified: Option<(String, String)>,
    unattended_access: Option<String>,
    inner: Mutex<Option<core::JoinRequest>>,
}

#[uniffi::export]
impl JoinRequest {
    /// The viewer's id.
    pub fn viewer(&self) -> String {
        self.viewer.clone()
    }
    /// The name the viewer gave (not verified by anyone; see `verified_by`).
    pub fn name(&self) -> String {
        self.name.clone()
    }
    /// The request in plain words for a prompt, e.g. `alex (verified by Acme Support) asks to see your screen
    /// and use your mouse and keyboard.` or `"Bob" (name not verified) asks to see your screen.`
    pub fn describe(&self) -> String {
        self.describe.clone()
    }
    /// What the viewer asks for (you decide what to grant).
    pub fn asks(&self) -> Permissions {
        self.asks
    }
    /// The operator whose server verified the technician's account, if they signed in.
    pub fn verified_by(&self) -> Option<String> {
        self.verified.as_ref().map(|(operator, _)| operator.clone())
    }
    /// The verified account name, if they signed in.
    pub fn account(&self) -> Option<String> {
        self.verified.as_ref().map(|(_, account)| account.clone())
    }
    /// For an unattended access that asks the customer: the access name claimed (proven after you allow).
    pub fn unattended_access(&self) -> Option<String> {
        self.unattended_access.clone()
    }
    /// Admits the viewer with these permissions.
    pub fn allow(&self, permissions: Permissions) {
        if let Some(request) = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take() {
            request.answer(Consent::Allow(permissions.into()));
        }
    }
    /// Refuses the viewer; `reason` is shown to them.
    pub fn deny(&self, reason: String) {
        if let Some(request) = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take() {
            request.answer(Consent::Deny(reason));
        }
    }
}

/// A shared screen.
#[derive(uniffi::Object)]
pub struct Host {
    inner: Mutex<Option<core::Host>>,
    code: String,
    size: (u32, u32),
    pusher: Option<FramePusher>,
    device_id: Option<String>,
}

impl JoinRequest {
    pub(crate) fn new(request: core::JoinRequest) -> Self {
        JoinRequest {
            viewer: request.viewer.clone(),
            name: request.name.clone(),
            describe: request.describe(),
            asks: request.asks.into(),
            verified: request.verified.clone().map(|v| (v.operator, v.account)),
            unattended_access: request.unattended_access.clone(),
            inner: Mutex::new(Some(request)),
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Host {
    /// Connects to the signaling server, gets a session code and starts sharing `source`. Events go to
    /// `listener` on a dedicated thread.
    #[uniffi::constructor]
    pub async fn start(
        options: HostOptions,
        source: ScreenSource,
        listener: Arc<dyn HostListener>,
    ) -> Result<Arc<Host>, SessionError> {
        let mut config = peerdesk::session::HostConfig::new(&options.server_url)
            .name(&options.name)
            .fps(options.fps)
            .max_bitrate(options.max_bitrate_bps)
            .transport(transport(options.loopback, options.relay_only, &options.ice_servers))
            .require_verification(options.require_verification);
        if let Some(pem) = &options.trusted_ca_pem {
            config = config.trust_ca_pem(pem);
        }
        let invalid = |e: &dyn std::fmt::Display| SessionError::InvalidArgument { details: e.to_string() };
        match (&options.device_key_path, &options.access_policy_path) {
            (Some(key), Some(policy)) => {
                use peerdesk::unattended::{AccessPolicy, DeviceIdentity, UnattendedConfig};
                let identity = DeviceIdentity::load_or_create(key).map_err(|e| invalid(&e))?;
                let policy = AccessPolicy::load(policy).map_err(|e| invalid(&e))?;
                config = config.unattended(UnattendedConfig::new(identity, policy));
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    &"unattended access needs both device_key_path and access_policy_path",
                ))
            }
        }
        use peerdesk::capture::{open_screen, ScreenChoice};
        let (screen, pusher) = match source {
            ScreenSource::Synthetic { width, height } => (
                open_screen(ScreenChoice::Synthetic {
                    width,
                    height,
                    fps: options.fps,
                }),
                None,
            ),
            ScreenSource::X11 { display } => (open_screen(ScreenChoice::X11 { display }), None),
            ScreenSource::Pushed { width, height } => {
                let (pusher, source) = pushed_source(width, height).map_err(|e| invalid(&e))?;
                let screen = peerdesk::capture::OpenedScreen {
                    source: Box::new(source),
                    input: None,
                    description: "pushed frames".into(),
                };
                (Ok(screen), Some(pusher))
            }
        };
        let screen = screen.map_err(|e| invalid(&e))?;
        let (source, input) = (screen.source, screen.input);
        let mut host = run(core::Host::start(config, source, input)).await??;
        let events = host.take_events();
        let (code, size) = (host.code().to_string(), host.screen_size());
        let device_id = host.device_id().map(|id| id.as_str().to_string());
        if let Some(events) = events {
            dispatch_thread(
                "peerdesk-host-events",
                events,
                move |event| match HostEvent::from_core(event) {
                    Some(event) => listener.on_event(event),
                    None => Ok(()),
                },
            );
        }
        Ok(Arc::new(Host {
            inner: Mutex::new(Some(host)),
            code,
            size,
            pusher,
            device_id,
        }))
    }

    /// With unattended access: the nine-digit device ID technicians reach this host by.
    pub fn device_id(&self) -> Option<String> {
        self.device_id.clone()
    }

    /// The one-time code to tell the viewer.
    pub fn code(&self) -> String {
        self.code.clone()
    }

    /// Width of the shared screen.
    pub fn width(&self) -> u32 {
        self.size.0
    }

    /// Height of the shared screen.
    pub fn height(&self) -> u32 {
        self.size.1
    }

    /// Issues another one-time code for another viewer.
    pub async fn invite(&self) -> Result<String, SessionError> {
        let invitation = self.with(|h| h.invite_future())?;
        Ok(run(invitation).await??)
    }

    /// Changes a viewer's permissions (revocation applies to its next message).
    pub fn set_permissions(&self, viewer: String, permissions: Permissions) -> Result<(), SessionError> {
        self.with(|h| h.set_permissions(&viewer, permissions.into()))
    }

    /// Records that the user found this viewer's verification code equal to the technician's; with
    /// `require_verification`, the viewer's granted control and clipboard apply from now on.
    pub fn confirm_verification(&self, viewer: String) -> Result<(), SessionError> {
        self.with(|h| h.confirm_verification(&viewer))
    }

    /// Disconnects one viewer.
    pub fn disconnect(&self, viewer: String, reason: String) -> Result<(), SessionError> {
        self.with(|h| h.disconnect(&viewer, reason))
    }

    /// Sends clipboard text to viewers holding the clipboard permission.
    pub fn send_clipboard(&self, text: String) -> Result<(), SessionError> {
        self.with(|h| h.send_clipboard(text))?.map_err(Into::into)
    }

    /// Sends a chat line to every viewer.
    pub fn send_chat(&self, text: String) -> Result<(), SessionError> {
        self.with(|h| h.send_chat(text))?.map_err(Into::into)
    }

    /// Hands in a captured frame (for `ScreenSource.Pushed` hosts): `stride` bytes a row, BGRA or RGBA,
    /// `timestamp_us` on the app's clock. The bytes are read, not kept; bad sizes are refused with an error.
    pub fn push_frame(
        &self,
        data: &[u8],
        width: u32,
        height: u32,
        stride: u32,
        format: PushFormat,
        timestamp_us: u64,
    ) -> Result<(), FrameError> {
        let pusher = self.pusher.as_ref().ok_or_else(|| FrameError::NotAccepted {
            details: "this host captures its screen itself; start it with ScreenSource.Pushed".into(),
        })?;
        let format = match format {
            PushFormat::Bgra => peerdesk::frame::PixelFormat::Bgra,
            PushFormat::Rgba => peerdesk::frame::PixelFormat::Rgba,
        };
        pusher.push(
            data,
            width,
            height,
            stride as usize,
            format,
            Duration::from_micros(timestamp_us),
        )?;
        Ok(())
    }

    /// `push_frame` for memory the app already holds natively, without any copy: a numpy array or any Python
    /// buffer, a Kotlin direct `ByteBuffer`, a Swift `UnsafeRawBufferPointer`. Each binding's wrapper passes
    /// the buffer's address; call `push_frame` yourself unless you hold such memory.
    ///
    /// The caller keeps the `length` bytes at `address` readable and unchanged until this call returns; the
    /// bytes are read during the call and not kept. A zero address, or a length that cannot hold the frame or is
    /// over 256 MiB, is refused with `FrameError.BadBuffer`.
    #[allow(clippy::too_many_arguments)]
    pub fn push_frame_from_address(
        &self,
        address: u64,
        length: u64,
        width: u32,
        height: u32,
        stride: u32,
        format: PushFormat,
        timestamp_us: u64,
    ) -> Result<(), FrameError> {
        const MAX_FRAME_BYTES: u64 = 256 << 20;
        if address == 0 || length > MAX_FRAME_BYTES {
            return Err(FrameError::BadBuffer {
                details: format!("{length} bytes at address {address:#x}: not a frame buffer"),
            });
        }
        // SAFETY: the caller guarantees (see the doc) that `length` bytes at `address` stay readable and
        // unchanged for this call; the slice is not kept past it. Address 0 and oversized lengths are refused
        // above, and `push_frame` checks that the length holds `stride * height` bytes before reading.
        let data = unsafe { std::slice::from_raw_parts(address as usize as *const u8, length as usize) };
        self.push_frame(data, width, height, stride, format, timestamp_us)
    }

    /// Current figures.
    pub fn stats(&self) -> HostStats {
        let stats = self.with(|h| h.stats()).unwrap_or_default();
        HostStats {
            viewers: stats.viewers as u64,
            frames_encoded: stats.frames_encoded,
            bytes_encoded: stats.bytes_encoded,
            target_bitrate_bps: stats.target_bitrate_bps,
            encode_time_us: stats.encode_time_us,
            keyframes_encoded: stats.keyframes_encoded,
            frames_replaced: self.pusher.as_ref().map_or(0, |p| p.replaced()),
        }
    }

    /// Ends the session for everyone.
    pub async fn end(&self, reason: String) {
        let host = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pusher) = &self.pusher {
            pusher.close();
        }
        if let Some(host) = host {
            let _ = run(async move { host.end(reason).await }).await;
        }
    }
}

impl Host {
    fn with<T>(&self, f: impl FnOnce(&core::Host) -> T) -> Result<T, SessionError> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(f).ok_or(SessionError::Ended {
            reason: "the host has ended the session".into(),
        })
    }
}

/// Adds (or replaces) a technician's unattended access in the policy file at `policy_path` (created owner-only):
/// `secret` (at least 8 characters) is stored as an argon2id hash only. With `with_totp`, a TOTP second factor is
/// required and its base32 secret is returned, once, for the technician's authenticator app.
#[uniffi::export]
pub fn add_technician_access(
    policy_path: String,
    name: String,
    secret: String,
    permissions: Permissions,
    ask_customer: bool,
    with_totp: bool,
) -> Result<Option<String>, SessionError> {
    use peerdesk::unattended::{AccessPolicy, TechnicianAccess, TotpSecret};
    let invalid = |e: &dyn std::fmt::Display| SessionError::InvalidArgument { details: e.to_string() };
    let mut policy = AccessPolicy::load(&policy_path).map_err(|e| invalid(&e))?;
    let mut access = TechnicianAccess::new(&name, &secret)
        .map_err(|e| invalid(&e))?
        .permissions(permissions.into())
        .ask_customer(ask_customer);
    let totp = if with_totp {
        let totp = TotpSecret::generate().map_err(|e| invalid(&e))?;
        access = access.totp(totp.clone());
        Some(totp.to_base32())
    } else {
        None
    };
    policy.insert(access);
    policy.save(&policy_path).map_err(|e| invalid(&e))?;
    Ok(totp)
}

/// The device ID of the key at `key_path` (created owner-only on first use).
#[uniffi::export]
pub fn device_id_of_key(key_path: String) -> Result<String, SessionError> {
    peerdesk::unattended::DeviceIdentity::load_or_create(&key_path)
        .map(|identity| identity.device_id().as_str().to_string())
        .map_err(|e| SessionError::InvalidArgument { details: e.to_string() })
}
