"""peerdesk: peer-to-peer remote support from Python.

A customer's app shares its screen (``share``); a technician joins by code (``join``), sees decoded frames and,
with consent, sends input. Frames and events are async iterators; events are typed (``ViewerEvent.CHAT``,
``HostEvent.JOIN_REQUEST``, ...); failures raise typed exceptions (``SessionError.Denied``, ``FrameError.BadBuffer``).
The generated bindings live in ``peerdesk._ffi``; this module re-exports them with a few Python conveniences.

    import asyncio, peerdesk

    async def main():
        async with await peerdesk.join("ws://127.0.0.1:8080/ws", "1234567890") as viewer:
            async for frame in viewer.frames(count=10):
                with frame:
                    print(frame.width, frame.height, frame.plane(0).nbytes)

    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import ctypes
from typing import AsyncIterator, Callable, Generic, Iterator, Optional, TypeVar, Union

from ._ffi.peerdesk_ffi import (  # noqa: F401  (re-exported API)
    CallbackError,
    CursorImage,
    FrameError,
    FrameListener,
    FrameStamp,
    Host,
    HostEvent,
    HostListener,
    HostOptions,
    HostStats,
    InputEvent,
    JoinRequest,
    MouseButton,
    Permissions,
    PushFormat,
    RefusalCode,
    ScreenSource,
    SessionError,
    VideoFrame,
    Viewer,
    ViewerEvent,
    ViewerListener,
    ViewerOptions,
    ViewerStats,
    add_technician_access,
    detach_listeners,
    device_id_of_key,
    peerdesk_version,
)

__all__ = [
    "Frame", "HostSession", "ViewerSession", "join", "share", "plane_view",
    "Host", "Viewer", "HostOptions", "ViewerOptions", "Permissions", "ScreenSource", "InputEvent", "MouseButton",
    "PushFormat", "SessionError", "FrameError", "VideoFrame", "FrameStamp", "peerdesk_version",
    "join_device", "add_technician_access", "device_id_of_key", "HostEvent", "ViewerEvent", "RefusalCode",
    "CursorImage", "JoinRequest", "HostStats", "ViewerStats", "VIEW_ONLY", "CONTROL", "FULL",
]

# Sessions still running when the interpreter exits must not call into it while it finalizes (that aborts the
# process): from here on their events are dropped.
atexit.register(detach_listeners)

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
        #: When the host captured this picture, in microseconds on the host's source clock: since the UNIX epoch
        #: for a shared screen, the ``timestamp_us`` the host app pushed it with for pushed frames.
        self.capture_timestamp_us: int = inner.capture_timestamp_us()

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


E = TypeVar("E")

#: Events kept for an app that reads ``events()`` slower than they come; beyond it the oldest is dropped and
#: counted in ``events_dropped`` (chat and cursor moves are what a slow reader loses, never memory).
EVENT_QUEUE = 256


class _EventStream(Generic[E]):
    """Typed events from a listener thread to one async iterator on the loop that joined, and to an optional
    callback on the listener thread. Bounded: see ``EVENT_QUEUE``."""

    def __init__(self, on_event: Optional[Callable[[E], None]], is_end: Callable[[E], bool]):
        self._loop = asyncio.get_running_loop()
        self._queue: collections.deque = collections.deque()
        self._wake = asyncio.Event()
        self._on_event = on_event
        self._is_end = is_end
        self._ended = False
        self.dropped = 0

    def deliver(self, event: E) -> None:
        """Called on the listener thread for every event, in order."""
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a callback must never raise into Rust
                pass
        try:
            self._loop.call_soon_threadsafe(self._put, event)
        except RuntimeError:  # the loop that joined is closed: nobody can iterate any more
            pass

    def _put(self, event: E) -> None:
        if len(self._queue) >= EVENT_QUEUE:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._wake.set()

    async def __aiter__(self) -> AsyncIterator[E]:
        while not self._ended:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            event = self._queue.popleft()
            if self._is_end(event):
                self._ended = True
            yield event


class _ViewerEvents(ViewerListener):
    def __init__(self, stream: "_EventStream[ViewerEvent]"):
        self._stream = stream

    def on_event(self, event: ViewerEvent) -> None:
        self._stream.deliver(event)


class ViewerSession:
    """A joined session: ``async for frame in frames()``, ``async for event in events()``, input, ``leave()``
    (or use ``async with``)."""

    def __init__(self, viewer: Viewer, events: "_EventStream[ViewerEvent]"):
        self.viewer = viewer
        self._events = events

    @property
    def size(self) -> tuple[int, int]:
        """The host's screen size in pixels, ``(width, height)``."""
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

    @property
    def events_dropped(self) -> int:
        """Events dropped because ``events()`` was read too slowly (more than ``EVENT_QUEUE`` waiting)."""
        return self._events.dropped

    async def frames(self, count: Optional[int] = None) -> AsyncIterator[Frame]:
        """Decoded frames as they arrive, until ``count`` are delivered or the session ends. Awaiting does not
        block the event loop or poll; frames taken too slowly are dropped oldest first (``stats().frames_dropped``)."""
        delivered = 0
        while count is None or delivered < count:
            inner = await self.viewer.receive_frame()
            if inner is None:
                return
            delivered += 1
            yield Frame(inner)

    def frames_blocking(self, count: Optional[int] = None, timeout: float = 5.0) -> Iterator[Frame]:
        """``frames()`` for a thread of your own: blocks the calling thread; also stops when none comes within
        ``timeout`` seconds."""
        delivered = 0
        while count is None or delivered < count:
            inner = self.viewer.next_frame(int(timeout * 1000))
            if inner is None:
                return
            delivered += 1
            yield Frame(inner)

    def events(self) -> AsyncIterator[ViewerEvent]:
        """Typed events (``ViewerEvent.CURSOR``, ``CHAT``, ``PERMISSIONS_CHANGED``, ``REFUSED``, ...) in order,
        ending after ``ViewerEvent.ENDED``. One reader at a time."""
        return self._events.__aiter__()

    def send_input(self, event: InputEvent) -> None:
        """Sends input; the host checks permissions and refuses with a ``ViewerEvent.REFUSED``."""
        self.viewer.send_input(event)

    def move_pointer(self, x: float, y: float) -> None:
        """Moves the host's pointer to fractions ``x``, ``y`` (0–1) of its screen."""
        self.viewer.send_input(InputEvent.POINTER_MOVE(x=x, y=y))

    def send_clipboard(self, text: str) -> None:
        """Sends clipboard text (needs the clipboard permission)."""
        self.viewer.send_clipboard(text)

    def send_chat(self, text: str) -> None:
        """Sends a chat line to the host."""
        self.viewer.send_chat(text)

    def stats(self) -> ViewerStats:
        """Connection figures: rtt, bitrate, fps, frames, drops, loss and repair counters."""
        return self.viewer.stats()

    async def leave(self) -> None:
        """Leaves the session (the host sees ``HostEvent.VIEWER_LEFT``)."""
        await self.viewer.leave()

    async def __aenter__(self) -> "ViewerSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.leave()


async def _join(options: ViewerOptions, on_event: Optional[Callable[[ViewerEvent], None]]) -> ViewerSession:
    events: _EventStream[ViewerEvent] = _EventStream(on_event, lambda e: e.is_ended())
    return ViewerSession(await Viewer.join(options, _ViewerEvents(events)), events)


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
    on_event: Optional[Callable[[ViewerEvent], None]] = None,
) -> ViewerSession:
    """Joins the host owning ``code``; raises ``SessionError.Denied`` / ``InvalidCode`` / ``ExpiredCode``.
    ``trusted_ca_pem`` adds a private CA for a ``wss://`` server; ``relay_only`` connects only through TURN;
    ``account`` and ``token`` sign in with a technician account of the server's operator first (the host's
    prompt then says who verified you; a wrong token raises ``SessionError.AuthenticationFailed``).
    ``on_event`` is called with each typed event on peerdesk's event thread, besides ``events()``."""
    options = ViewerOptions(server_url=server_url, code=code, name=name, loopback=loopback,
                            frame_queue=frame_queue, ice_servers=[], relay_only=relay_only,
                            trusted_ca_pem=trusted_ca_pem, account=account, token=token)
    return await _join(options, on_event)


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
    on_event: Optional[Callable[[ViewerEvent], None]] = None,
) -> ViewerSession:
    """Unattended access to ``device_id`` as the technician ``access``: the secret (and TOTP code) are proven
    with a PAKE bound to the connection, never sent. Raises ``SessionError.AuthenticationFailed`` (with
    ``retry_after_secs``) for a wrong secret or code and ``SessionError.HostNotAuthenticated`` when the device
    cannot prove itself."""
    options = ViewerOptions(server_url=server_url, code="", name=access, loopback=loopback,
                            frame_queue=frame_queue, ice_servers=[], relay_only=relay_only,
                            trusted_ca_pem=trusted_ca_pem, device_id=device_id, access=access, secret=secret,
                            totp_code=totp_code)
    return await _join(options, on_event)


#: Decides a join request: the permissions to admit the viewer with, or ``None`` to deny.
Consent = Callable[[JoinRequest], Optional[Permissions]]


class _HostEvents(HostListener):
    def __init__(self, consent: Optional[Consent], stream: "_EventStream[HostEvent]"):
        self._consent = consent
        self._stream = stream

    def on_event(self, event: HostEvent) -> None:
        if self._consent is not None and event.is_join_request():
            request = event.request
            try:
                permissions = self._consent(request)
            except Exception:
                permissions = None
            if permissions is None:
                request.deny("the host declined")
            else:
                request.allow(permissions)
        self._stream.deliver(event)


class _PyBuffer(ctypes.Structure):
    """CPython's ``Py_buffer``: how any buffer's address is read without a copy."""

    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_char_p), ("shape", ctypes.c_void_p), ("strides", ctypes.c_void_p),
                ("suboffsets", ctypes.c_void_p), ("internal", ctypes.c_void_p)]


_PyBUF_C_CONTIGUOUS = 0x0020 | 0x0010 | 0x0008  # PyBUF_C_CONTIGUOUS: refuse buffers that are not one block
ctypes.pythonapi.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
ctypes.pythonapi.PyObject_GetBuffer.restype = ctypes.c_int
ctypes.pythonapi.PyBuffer_Release.argtypes = [ctypes.POINTER(_PyBuffer)]
ctypes.pythonapi.PyBuffer_Release.restype = None


class HostSession:
    """A shared screen: ``code``, ``async for event in events()``, pushed frames, ``end()`` (or ``async with``)."""

    def __init__(self, host: Host, events: "_EventStream[HostEvent]"):
        self.host = host
        self._events = events

    @property
    def code(self) -> str:
        """The one-time code to tell the viewer (ten digits)."""
        return self.host.code()

    @property
    def device_id(self) -> Optional[str]:
        """With unattended access: the nine-digit device ID technicians reach this host by."""
        return self.host.device_id()

    @property
    def events_dropped(self) -> int:
        """Events dropped because ``events()`` was read too slowly (more than ``EVENT_QUEUE`` waiting)."""
        return self._events.dropped

    def events(self) -> AsyncIterator[HostEvent]:
        """Typed events (``HostEvent.JOIN_REQUEST``, ``VERIFICATION_CODE``, ``VIEWER_CONNECTED``, ...) in order,
        ending after ``HostEvent.ENDED``. Without a ``consent`` callable, answer ``JOIN_REQUEST`` here with
        ``event.request.allow(peerdesk.CONTROL)`` or ``event.request.deny("...")``."""
        return self._events.__aiter__()

    async def invite(self) -> str:
        """Another one-time code, for another viewer."""
        return await self.host.invite()

    def set_permissions(self, viewer: str, permissions: Permissions) -> None:
        """Changes a viewer's permissions (a revocation applies to its next message)."""
        self.host.set_permissions(viewer, permissions)

    def confirm_verification(self, viewer: str) -> None:
        """The user found ``viewer``'s verification code (``HostEvent.VERIFICATION_CODE``) equal to the
        technician's; with ``require_verification``, its granted control and clipboard apply from now on."""
        self.host.confirm_verification(viewer)

    def send_chat(self, text: str) -> None:
        """Sends a chat line to every viewer."""
        self.host.send_chat(text)

    def stats(self) -> HostStats:
        """Host-side figures: viewers, frames and bytes encoded, target bitrate, encode time."""
        return self.host.stats()

    def push_frame(self, data: Union[bytes, bytearray, memoryview, object], width: int, height: int, stride: int,
                   rgba: bool = False, timestamp_us: int = 0) -> None:
        """Hands in a BGRA (or RGBA) frame, ``stride`` bytes a row, from ``bytes`` or any C-contiguous object
        with the buffer protocol (``bytearray``, ``memoryview``, a numpy array, ``mmap``), without copying it:
        peerdesk reads it in place during the call (``bytes`` too; it used to be copied into the call first).
        Raises ``FrameError.BadBuffer`` / ``InvalidSize``."""
        pixel_format = PushFormat.RGBA if rgba else PushFormat.BGRA
        view = _PyBuffer()
        try:
            ctypes.pythonapi.PyObject_GetBuffer(data, ctypes.byref(view), _PyBUF_C_CONTIGUOUS)
        except (BufferError, TypeError, ValueError) as e:
            raise TypeError(f"a C-contiguous buffer is required, not {type(data).__name__}") from e
        try:
            self.host.push_frame_from_address(view.buf or 0, view.len, width, height, stride, pixel_format,
                                              timestamp_us)
        finally:
            ctypes.pythonapi.PyBuffer_Release(ctypes.byref(view))

    async def end(self, reason: str = "the host stopped sharing") -> None:
        """Ends the session for every viewer."""
        await self.host.end(reason)

    async def __aenter__(self) -> "HostSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.end()


async def share(
    server_url: str,
    source: ScreenSource,
    consent: Optional[Consent] = None,
    *,
    name: str = "peerdesk host",
    fps: int = 30,
    loopback: bool = False,
    require_verification: bool = False,
    relay_only: bool = False,
    trusted_ca_pem: Optional[str] = None,
    device_key_path: Optional[str] = None,
    access_policy_path: Optional[str] = None,
    on_event: Optional[Callable[[HostEvent], None]] = None,
) -> HostSession:
    """Starts sharing ``source``. ``consent(request)`` returns permissions to admit the viewer, or ``None`` to
    deny (``request.describe()`` says who asks for what, in words for a prompt); without it, answer
    ``HostEvent.JOIN_REQUEST`` from ``events()``. With ``require_verification``, control and clipboard apply
    only after ``confirm_verification``. With ``device_key_path`` and ``access_policy_path`` (see
    ``add_technician_access``), technicians also connect unattended (``HostEvent.UNATTENDED_ACCESS``,
    ``HostEvent.ACCESS_FAILURES``)."""
    options = HostOptions(server_url=server_url, name=name, fps=fps, max_bitrate_bps=4_000_000,
                          loopback=loopback, ice_servers=[], require_verification=require_verification,
                          relay_only=relay_only, trusted_ca_pem=trusted_ca_pem, device_key_path=device_key_path,
                          access_policy_path=access_policy_path)
    events: _EventStream[HostEvent] = _EventStream(on_event, lambda e: e.is_ended())
    return HostSession(await Host.start(options, source, _HostEvents(consent, events)), events)
