//! The host across the boundary: start, code, consent through a listener, permissions, pushed frames, end.

use crate::errors::{CallbackError, FrameError, SessionError};
use crate::runtime::{dispatch_thread, run};
use crate::types::{transport, HostOptions, HostStats, Permissions, PushFormat, ScreenSource};
use peerdesk::capture::pushed::{pushed_source, FramePusher};
use peerdesk::session::{self as core, Consent};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Receives host events, on one dedicated thread (never an async worker). Return an error rather than throwing.
#[uniffi::export(foreign)]
pub trait HostListener: Send + Sync {
    /// A viewer asks to join: answer with `request.allow(...)` or `request.deny(...)`, now or later.
    fn on_join_request(&self, request: Arc<JoinRequest>) -> Result<(), CallbackError>;
    /// The six-digit verification code of an admitted viewer's connection (`"042 917"`), just before
    /// `on_viewer_connected`. Show it; if the technician reads the same digits from their screen, call
    /// `Host.confirm_verification(viewer)`. Different codes mean someone sits in the middle: disconnect.
    fn on_verification_code(&self, viewer: String, code: String) -> Result<(), CallbackError>;
    /// An admitted viewer's connection is up.
    fn on_viewer_connected(&self, viewer: String, name: String) -> Result<(), CallbackError>;
    /// A viewer's connection was lost; ICE is restarted for up to a minute.
    fn on_viewer_reconnecting(&self, viewer: String) -> Result<(), CallbackError>;
    /// A viewer's lost connection is back.
    fn on_viewer_reconnected(&self, viewer: String) -> Result<(), CallbackError>;
    /// The signaling connection is back after a loss; new viewers join with `code` (earlier codes are void).
    fn on_signaling_restored(&self, code: String) -> Result<(), CallbackError>;
    /// A viewer left.
    fn on_viewer_left(&self, viewer: String, reason: String) -> Result<(), CallbackError>;
    /// Clipboard text from a viewer holding the clipboard permission.
    fn on_clipboard(&self, viewer: String, text: String) -> Result<(), CallbackError>;
    /// A chat line from a viewer.
    fn on_chat(&self, viewer: String, text: String) -> Result<(), CallbackError>;
    /// A viewer's message was refused (e.g. input without the control permission).
    fn on_refused(&self, viewer: String, reason: String) -> Result<(), CallbackError>;
    /// The session ended.
    fn on_ended(&self, reason: String) -> Result<(), CallbackError>;
    /// A technician proved an unattended access (secret, and TOTP code when required); their connection follows.
    fn on_unattended_access(&self, viewer: String, access: String) -> Result<(), CallbackError>;
    /// Unattended attempts failed `failures` times in a row (3 and more): someone may be guessing; the next
    /// attempt waits `retry_after_secs`.
    fn on_access_failures(&self, failures: u32, retry_after_secs: u64) -> Result<(), CallbackError>;
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

fn dispatch(listener: &Arc<dyn HostListener>, event: core::HostEvent) -> Result<(), CallbackError> {
    use core::HostEvent as E;
    match event {
        E::JoinRequest(request) => listener.on_join_request(Arc::new(JoinRequest {
            viewer: request.viewer.clone(),
            name: request.name.clone(),
            describe: request.describe(),
            asks: request.asks.into(),
            verified: request.verified.clone().map(|v| (v.operator, v.account)),
            unattended_access: request.unattended_access.clone(),
            inner: Mutex::new(Some(request)),
        })),
        E::VerificationCode { viewer, code } => listener.on_verification_code(viewer, code),
        E::ViewerConnected { viewer, name } => listener.on_viewer_connected(viewer, name),
        E::ViewerReconnecting { viewer } => listener.on_viewer_reconnecting(viewer),
        E::ViewerReconnected { viewer } => listener.on_viewer_reconnected(viewer),
        E::SignalingRestored { code } => listener.on_signaling_restored(code),
        E::ViewerLeft { viewer, reason } => listener.on_viewer_left(viewer, reason),
        E::Clipboard { viewer, text } => listener.on_clipboard(viewer, text),
        E::Chat { viewer, text } => listener.on_chat(viewer, text),
        E::Refused { viewer, code } => listener.on_refused(viewer, format!("{code:?}")),
        E::Ended { reason } => listener.on_ended(reason),
        E::UnattendedAccess { viewer, access } => listener.on_unattended_access(viewer, access),
        E::AccessFailures { failures, retry_after } => listener.on_access_failures(failures, retry_after.as_secs()),
        _ => Ok(()),
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
        let (source, input, pusher): (
            Box<dyn peerdesk::capture::ScreenSource>,
            Option<Box<dyn peerdesk::input::InputSink>>,
            _,
        ) = match source {
            ScreenSource::Synthetic { width, height } => {
                let config = peerdesk::capture::synthetic::SyntheticConfig {
                    width,
                    height,
                    fps: options.fps,
                    ..Default::default()
                };
                (
                    Box::new(peerdesk::capture::synthetic::SyntheticSource::new(config).map_err(|e| invalid(&e))?),
                    None,
                    None,
                )
            }
            ScreenSource::X11 { display } => {
                let source =
                    peerdesk::capture::x11::X11Source::open(display.as_deref(), None).map_err(|e| invalid(&e))?;
                let sink = peerdesk::input::x11::XTestSink::open(display.as_deref(), Some(source.area()))
                    .ok()
                    .map(|s| Box::new(s) as Box<dyn peerdesk::input::InputSink>);
                (Box::new(source), sink, None)
            }
            ScreenSource::Pushed { width, height } => {
                let (pusher, source) = pushed_source(width, height).map_err(|e| invalid(&e))?;
                (Box::new(source), None, Some(pusher))
            }
        };
        let mut host = run(core::Host::start(config, source, input)).await??;
        let events = host.take_events();
        let (code, size) = (host.code().to_string(), host.screen_size());
        let device_id = host.device_id().map(|id| id.as_str().to_string());
        if let Some(events) = events {
            dispatch_thread("peerdesk-host-events", events, move |event| dispatch(&listener, event));
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

    /// Current figures.
    pub fn stats(&self) -> HostStats {
        let stats = self.with(|h| h.stats()).unwrap_or_default();
        HostStats {
            viewers: stats.viewers as u64,
            frames_encoded: stats.frames_encoded,
            bytes_encoded: stats.bytes_encoded,
            target_bitrate_bps: stats.target_bitrate_bps,
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
