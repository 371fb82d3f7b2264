"""peerdesk: peer-to-peer remote support from Python.

A customer's app shares its screen (``Host``); a technician joins by code (``Viewer``), sees decoded frames and,
with consent, sends input. The generated bindings live in ``peerdesk._ffi``; this module re-exports them with a
few Python conveniences: listeners as plain callables, frames as iterators, context managers, and zero-copy
plane buffers (``memoryview``, numpy-friendly).

    import asyncio, peerdesk

    async def main():
        async with await peerdesk.join("ws://127.0.0.1:8080/ws", "1234567890", loopback=True) as viewer:
            for frame in viewer.frames(count=10):
                print(frame.width, frame.height)

    asyncio.run(main())
"""

from __future__ import annotations

import ctypes
from typing import Callable, Iterator, Optional

from ._ffi.peerdesk_ffi import (  # noqa: F401  (re-exported API)
    CallbackError,
    FrameError,
    FrameListener,
    FrameStamp,
    Host,
    HostListener,
    HostOptions,
    HostStats,
    InputEvent,
    JoinRequest,
    MouseButton,
    Permissions,
    PushFormat,
    ScreenSource,
    SessionError,
    VideoFrame,
    Viewer,
    ViewerListener,
    ViewerOptions,
    ViewerStats,
    add_technician_access,
    device_id_of_key,
    peerdesk_version,
)

__all__ = [
    "Frame", "HostSession", "ViewerSession", "join", "share", "plane_view",
    "Host", "Viewer", "HostOptions", "ViewerOptions", "Permissions", "ScreenSource", "InputEvent", "MouseButton",
    "PushFormat", "SessionError", "FrameError", "VideoFrame", "FrameStamp", "peerdesk_version",
    "join_device", "add_technician_access", "device_id_of_key",
]

VIEW_ONLY = Permissions(control=False, clipboard=False)
CONTROL = Permissions(control=True, clipboard=False)
FULL = Permissions(control=True, clipboard=True)


def plane_view(frame: VideoFrame, plane: int) -> memoryview:
    """A zero-copy, read-only view of one plane (0 = Y, 1 = U, 2 = V).

    The view (and anything made from it: slices, numpy arrays) keeps ``frame`` alive, so its memory stays valid as
    long as the view is used. Do not call the low-level ``frame.release()`` while views exist; ``Frame.close()``
    (and ``with frame:``) knows and leaves the freeing to the last view instead.
    """
    length = frame.data_length(plane)
    pointer = frame.data_pointer(plane)
    if length == 0 or pointer == 0:
        return memoryview(b"")
    buffer = (ctypes.c_ubyte * length).from_address(pointer)
    buffer._peerdesk_frame = frame  # the picture lives as long as any view on it
    return memoryview(buffer).cast("B").toreadonly()


class _ReleasedFrame:
    """What a closed ``Frame`` refers to: every plane is empty."""

    def data_length(self, plane: int) -> int:
        return 0

    def data_pointer(self, plane: int) -> int:
        return 0

    def stride(self, plane: int) -> int:
        return 0

    def to_rgba(self) -> bytes:
        return b""

    def stamp(self):
        return None

    def release(self) -> None:
        pass


class Frame:
    """A decoded I420 frame with zero-copy plane access; use as a context manager to release it promptly."""

    def __init__(self, inner: VideoFrame):
        self._inner = inner
        self._views_given = False
        self.width: int = inner.width()
        self.height: int = inner.height()

    def plane(self, index: int) -> memoryview:
        """Plane ``index`` (0 = Y, 1 = U, 2 = V) without copying; rows are ``stride(index)`` bytes apart.

        The view keeps the picture alive: it stays valid after ``close()``, which then leaves the freeing to the
        last view (a view on freed memory was a read after free from safe Python)."""
        self._views_given = True
        return plane_view(self._inner, index)

    def stride(self, index: int) -> int:
        return self._inner.stride(index)

    def y_array(self):
        """The luma plane as a ``height x width`` numpy array view (no copy)."""
        import numpy as np

        data = np.frombuffer(self.plane(0), dtype=np.uint8)
        return data.reshape(-1, self.stride(0))[: self.height, : self.width]

    def rgba(self) -> bytes:
        """A packed RGBA copy (``width * 4`` bytes a row)."""
        return bytes(self._inner.to_rgba())

    def stamp(self) -> Optional[FrameStamp]:
        """The synthetic desktop's frame stamp, if present."""
        return self._inner.stamp()

    def close(self) -> None:
        """Frees the picture now, or, when views of it were handed out, once the last of them is gone."""
        if not self._views_given:
            self._inner.release()
        self._inner = _ReleasedFrame()

    def __enter__(self) -> "Frame":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _ViewerEvents(ViewerListener):
    def __init__(self, on_event: Optional[Callable[[str, tuple], None]]):
        self._on_event = on_event

    def _emit(self, name: str, *args) -> None:
        if self._on_event is not None:
            try:
                self._on_event(name, args)
            except Exception:  # a listener must never raise into Rust
                pass

    def on_cursor(self, x, y, visible):
        self._emit("cursor", x, y, visible)

    def on_clipboard(self, text):
        self._emit("clipboard", text)

    def on_chat(self, text):
        self._emit("chat", text)

    def on_permissions_changed(self, permissions):
        self._emit("permissions", permissions)

    def on_refused(self, code, message):
        self._emit("refused", code, message)

    def on_reconnecting(self):
        self._emit("reconnecting")

    def on_reconnected(self):
        self._emit("reconnected")

    def on_ended(self, reason):
        self._emit("ended", reason)


class ViewerSession:
    """A joined session: iterate ``frames()``, send input, ``leave()`` (or use ``async with``)."""

    def __init__(self, viewer: Viewer):
        self.viewer = viewer

    @property
    def size(self) -> tuple[int, int]:
        return self.viewer.width(), self.viewer.height()

    @property
    def device_public_key(self) -> Optional[bytes]:
        """Unattended sessions: the device's Ed25519 public key, which it proved it holds (pin it after the first
        session); ``None`` otherwise."""
        key = self.viewer.device_public_key()
        return bytes(key) if key is not None else None

    @property
    def verification_code(self) -> str:
        """Six digits (``"042 917"``) to read to the person sharing: their app shows the same code only if
        nobody sits in the middle of the encrypted connection."""
        return self.viewer.verification_code()

    def frames(self, count: Optional[int] = None, timeout: float = 5.0) -> Iterator[Frame]:
        """Yields decoded frames until ``count`` are delivered, the session ends, or none comes within ``timeout``."""
        delivered = 0
        while count is None or delivered < count:
            inner = self.viewer.next_frame(int(timeout * 1000))
            if inner is None:
                return
            delivered += 1
            yield Frame(inner)

    def send_input(self, event: InputEvent) -> None:
        self.viewer.send_input(event)

    def move_pointer(self, x: float, y: float) -> None:
        self.viewer.send_input(InputEvent.POINTER_MOVE(x=x, y=y))

    def send_clipboard(self, text: str) -> None:
        self.viewer.send_clipboard(text)

    def stats(self) -> ViewerStats:
        return self.viewer.stats()

    async def leave(self) -> None:
        await self.viewer.leave()

    async def __aenter__(self) -> "ViewerSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.leave()


async def join(
    server_url: str,
    code: str,
    name: str = "peerdesk viewer",
    *,
    loopback: bool = False,
    frame_queue: int = 3,
    relay_only: bool = False,
    trusted_ca_pem: Optional[str] = None,
    account: Optional[str] = None,
    token: Optional[str] = None,
    on_event: Optional[Callable[[str, tuple], None]] = None,
) -> ViewerSession:
    """Joins the host owning ``code``; raises ``SessionError.Denied`` / ``InvalidCode`` / ``ExpiredCode``.
    ``trusted_ca_pem`` adds a private CA for a ``wss://`` server; ``relay_only`` connects only through TURN;
    ``account`` and ``token`` sign in with a technician account of the server's operator first (the host's
    prompt then says who verified you; a wrong token raises ``SessionError.AuthenticationFailed``)."""
    options = ViewerOptions(server_url=server_url, code=code, name=name, loopback=loopback,
                            frame_queue=frame_queue, ice_servers=[], relay_only=relay_only,
                            trusted_ca_pem=trusted_ca_pem, account=account, token=token)
    return ViewerSession(await Viewer.join(options, _ViewerEvents(on_event)))


async def join_device(
    server_url: str,
    device_id: str,
    access: str,
    secret: str,
    *,
    totp_code: Optional[str] = None,
    loopback: bool = False,
    frame_queue: int = 3,
    relay_only: bool = False,
    trusted_ca_pem: Optional[str] = None,
    on_event: Optional[Callable[[str, tuple], None]] = None,
) -> ViewerSession:
    """Unattended access to ``device_id`` as the technician ``access``: the secret (and TOTP code) are proven
    with a PAKE bound to the connection, never sent. Raises ``SessionError.AuthenticationFailed`` (with
    ``retry_after_secs``) for a wrong secret or code and ``SessionError.HostNotAuthenticated`` when the device
    cannot prove itself."""
    options = ViewerOptions(server_url=server_url, code="", name=access, loopback=loopback,
                            frame_queue=frame_queue, ice_servers=[], relay_only=relay_only,
                            trusted_ca_pem=trusted_ca_pem, device_id=device_id, access=access, secret=secret,
                            totp_code=totp_code)
    return ViewerSession(await Viewer.join(options, _ViewerEvents(on_event)))


class _HostEvents(HostListener):
    def __init__(self, consent: Callable[[str, str], Optional[Permissions]], on_event):
        self._consent = consent
        self._on_event = on_event

    def _emit(self, name: str, *args) -> None:
        if self._on_event is not None:
            try:
                self._on_event(name, args)
            except Exception:
                pass

    def on_join_request(self, request):
        try:
            permissions = self._consent(request.viewer(), request.name())
        except Exception:
            permissions = None
        if permissions is None:
            request.deny("the host declined")
        else:
            request.allow(permissions)

    def on_verification_code(self, viewer, code):
        self._emit("verification", viewer, code)

    def on_viewer_connected(self, viewer, name):
        self._emit("connected", viewer, name)

    def on_viewer_reconnecting(self, viewer):
        self._emit("reconnecting", viewer)

    def on_viewer_reconnected(self, viewer):
        self._emit("reconnected", viewer)

    def on_signaling_restored(self, code):
        self._emit("signaling_restored", code)

    def on_viewer_left(self, viewer, reason):
        self._emit("left", viewer, reason)

    def on_clipboard(self, viewer, text):
        self._emit("clipboard", viewer, text)

    def on_chat(self, viewer, text):
        self._emit("chat", viewer, text)

    def on_refused(self, viewer, reason):
        self._emit("refused", viewer, reason)

    def on_ended(self, reason):
        self._emit("ended", reason)

    def on_unattended_access(self, viewer, access):
        self._emit("unattended_access", viewer, access)

    def on_access_failures(self, failures, retry_after_secs):
        self._emit("access_failures", failures, retry_after_secs)


class HostSession:
    """A shared screen: ``code``, permissions, pushed frames, ``end()`` (or use ``async with``)."""

    def __init__(self, host: Host):
        self.host = host

    @property
    def code(self) -> str:
        return self.host.code()

    @property
    def device_id(self) -> Optional[str]:
        """With unattended access: the nine-digit device ID technicians reach this host by."""
        return self.host.device_id()

    def confirm_verification(self, viewer: str) -> None:
        """The user found ``viewer``'s verification code (event ``verification``) equal to the technician's;
        with ``require_verification``, its granted control and clipboard apply from now on."""
        self.host.confirm_verification(viewer)

    def push_frame(self, data, width: int, height: int, stride: int, rgba: bool = False, timestamp_us: int = 0) -> None:
        """Hands in a BGRA (or RGBA) frame from any bytes-like object (bytes, memoryview, numpy array)."""
        self.host.push_frame(bytes(data) if not isinstance(data, bytes) else data, width, height, stride,
                             PushFormat.RGBA if rgba else PushFormat.BGRA, timestamp_us)

    async def end(self, reason: str = "the host stopped sharing") -> None:
        await self.host.end(reason)

    async def __aenter__(self) -> "HostSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.end()


async def share(
    server_url: str,
    source: ScreenSource,
    consent: Callable[[str, str], Optional[Permissions]],
    *,
    name: str = "peerdesk host",
    fps: int = 30,
    loopback: bool = False,
    require_verification: bool = False,
    relay_only: bool = False,
    trusted_ca_pem: Optional[str] = None,
    device_key_path: Optional[str] = None,
    access_policy_path: Optional[str] = None,
    on_event=None,
) -> HostSession:
    """Starts sharing ``source``; ``consent(viewer_id, name)`` returns permissions to admit, or None to deny.
    With ``require_verification``, control and clipboard apply only after ``confirm_verification``; each
    viewer's code arrives as the event ``("verification", (viewer_id, code))``. With ``device_key_path`` and
    ``access_policy_path`` (see ``add_technician_access``), technicians also connect unattended: events
    ``("unattended_access", (viewer_id, access))`` and ``("access_failures", (failures, retry_after_secs))``."""
    options = HostOptions(server_url=server_url, name=name, fps=fps, max_bitrate_bps=4_000_000,
                          loopback=loopback, ice_servers=[], require_verification=require_verification,
                          relay_only=relay_only, trusted_ca_pem=trusted_ca_pem, device_key_path=device_key_path,
                          access_policy_path=access_policy_path)
    return HostSession(await Host.start(options, source, _HostEvents(consent, on_event)))
