"""A real host and viewer through the Python bindings, over loopback WebRTC with the signaling server process."""

import asyncio
import dataclasses
import threading

import pytest

import peerdesk
from peerdesk import FrameError, InputEvent, Permissions, ScreenSource, SessionError


def run(coro):
    return asyncio.run(coro)


async def _first(events, kind):
    """The first event of ``kind`` from an async event stream."""
    async for event in events:
        if isinstance(event, kind):
            return event


async def _count(items) -> int:
    return len([item async for item in items])


def test_viewer_frames_follow_the_synthetic_desktop(server):
    async def scenario():
        host = await peerdesk.share(server, ScreenSource.SYNTHETIC(width=640, height=360),
                                    consent=lambda request: peerdesk.VIEW_ONLY, loopback=True)
        assert len(host.code) == 10
        viewer = await peerdesk.join(server, host.code, "pytest", loopback=True)
        assert viewer.size == (640, 360)
        numbers = []
        async for frame in viewer.frames(count=15):
            with frame:
                stamp = frame.stamp()
                assert stamp is not None, "the frame stamp must survive encode and decode"
                numbers.append(stamp.frame_number)
                y = frame.plane(0)
                assert len(y) >= frame.stride(0) * (frame.height - 1) + frame.width
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
        stats = viewer.stats()
        assert stats.frames >= 15
        # A view outlives close(): it keeps its picture alive, so later frames (which dav1d decodes into recycled
        # pictures) cannot change what it shows. Before, this read freed memory.
        kept = None
        async for frame in viewer.frames(count=1):
            with frame:
                kept = frame.plane(0)
                before = bytes(kept)
        async for frame in viewer.frames(count=10):
            with frame:
                frame.plane(0)
        import gc
        gc.collect()
        assert bytes(kept) == before
        await viewer.leave()
        await host.end()

    run(scenario())


def test_pushed_frames_arrive_with_their_pixels(server):
    width, height = 320, 240
    # Left half red, right half blue, BGRA.
    row = bytes([0, 0, 255, 255]) * (width // 2) + bytes([255, 0, 0, 255]) * (width // 2)
    picture = row * height

    async def scenario():
        host = await peerdesk.share(server, ScreenSource.PUSHED(width=width, height=height),
                                    consent=lambda request: peerdesk.VIEW_ONLY, loopback=True)
        stop = threading.Event()

        def pusher():
            t = 0
            while not stop.is_set():
                host.push_frame(picture, width, height, width * 4, timestamp_us=t)
                t += 33_000
                stop.wait(0.033)

        thread = threading.Thread(target=pusher)
        thread.start()
        try:
            viewer = await peerdesk.join(server, host.code, "pytest", loopback=True)
            frame = await anext(viewer.frames(count=1))
            # The picture carries the timestamp it was pushed with (the host's capture time), not its arrival.
            assert frame.capture_timestamp_us % 33_000 == 0, frame.capture_timestamp_us
            assert frame.capture_timestamp_us < 60_000_000, frame.capture_timestamp_us
            rgba = frame.rgba()
            left = rgba[(120 * width + 40) * 4:(120 * width + 40) * 4 + 3]
            right = rgba[(120 * width + 280) * 4:(120 * width + 280) * 4 + 3]
            assert abs(left[0] - 255) < 20 and left[2] < 30, left
            assert abs(right[2] - 255) < 20 and right[0] < 30, right
            await viewer.leave()
        finally:
            stop.set()
            thread.join()
        # Bad buffers are typed errors, never crashes.
        with pytest.raises(FrameError.BadBuffer):
            host.push_frame(picture[:100], width, height, width * 4)
        with pytest.raises(FrameError.InvalidSize):
            host.push_frame(picture, 0, height, width * 4)
        await host.end()

    run(scenario())


def test_consent_denied_raises_denied(server):
    async def scenario():
        host = await peerdesk.share(server, ScreenSource.SYNTHETIC(width=320, height=240),
                                    consent=lambda request: None, loopback=True)
        with pytest.raises(SessionError.Denied):
            await peerdesk.join(server, host.code, "pytest", loopback=True)
        await host.end()

    run(scenario())


def test_view_only_input_is_refused_by_the_host(server):
    async def scenario():
        host = await peerdesk.share(server, ScreenSource.SYNTHETIC(width=320, height=240),
                                    consent=lambda request: Permissions(control=False, clipboard=False),
                                    loopback=True)
        viewer = await peerdesk.join(server, host.code, "pytest", loopback=True)
        viewer.send_input(InputEvent.POINTER_MOVE(x=0.5, y=0.5))
        refused = await asyncio.wait_for(_first(viewer.events(), peerdesk.ViewerEvent.REFUSED), 20)
        assert refused.code == peerdesk.RefusalCode.PERMISSION_DENIED, refused
        await viewer.leave()
        await host.end()

    run(scenario())


def test_verification_code_matches_and_confirmation_grants_control(server):
    async def scenario():
        host = await peerdesk.share(server, ScreenSource.SYNTHETIC(width=320, height=240),
                                    consent=lambda request: Permissions(control=True, clipboard=False),
                                    loopback=True, require_verification=True)
        viewer = await peerdesk.join(server, host.code, "pytest", loopback=True)

        shown = await asyncio.wait_for(_first(host.events(), peerdesk.HostEvent.VERIFICATION_CODE), 20)
        assert shown.code == viewer.verification_code, (shown.code, viewer.verification_code)
        assert viewer.viewer.permissions().control is False
        host.confirm_verification(shown.viewer)
        changed = await asyncio.wait_for(_first(viewer.events(), peerdesk.ViewerEvent.PERMISSIONS_CHANGED), 20)
        assert changed.permissions.control is True
        await viewer.leave()
        await host.end()

    run(scenario())


def test_typed_events_and_async_streams_end_to_end(server):
    """No consent callable: the app answers the join request from the host's event stream; both streams carry
    typed dataclass events and end with ENDED; frames come from an async iterator while events are read."""
    async def scenario():
        host = await peerdesk.share(server, ScreenSource.SYNTHETIC(width=320, height=240), loopback=True)
        host_events = host.events()
        joining = asyncio.ensure_future(peerdesk.join(server, host.code, "tech", loopback=True))
        request = await asyncio.wait_for(anext(host_events), 20)
        assert isinstance(request, peerdesk.HostEvent.JOIN_REQUEST), request
        assert dataclasses.is_dataclass(request)
        assert request.request.name() == "tech" and "tech" in request.request.describe()
        request.request.allow(peerdesk.VIEW_ONLY)
        viewer = await asyncio.wait_for(joining, 20)

        connected = await asyncio.wait_for(anext(host_events), 20)
        assert isinstance(connected, peerdesk.HostEvent.VERIFICATION_CODE), connected
        connected = await asyncio.wait_for(anext(host_events), 20)
        assert isinstance(connected, peerdesk.HostEvent.VIEWER_CONNECTED) and connected.name == "tech", connected

        numbers = [frame.stamp().frame_number async for frame in viewer.frames(count=5)]
        assert numbers == sorted(numbers) and len(numbers) == 5, numbers

        host.send_chat("hello \x1b[31m")
        viewer.send_chat("hi")
        chat = await asyncio.wait_for(_first(viewer.events(), peerdesk.ViewerEvent.CHAT), 20)
        assert chat == peerdesk.ViewerEvent.CHAT(text="hello \x1b[31m"), chat
        async for event in host_events:
            if isinstance(event, peerdesk.HostEvent.CHAT):
                assert (event.viewer, event.text) == (connected.viewer, "hi"), event
                break

        stats = viewer.stats()
        assert stats.frames >= 5 and stats.keyframes >= 1 and stats.packets_lost >= 0, stats
        assert stats.keyframe_requests >= 0 and stats.packets_recovered <= stats.packets_nacked, stats
        assert host.stats().encode_time_us > 0, host.stats()

        await host.end("done for today")
        rest = [event async for event in viewer.events()]
        assert isinstance(rest[-1], peerdesk.ViewerEvent.ENDED), rest
        leftover = await asyncio.wait_for(_count(viewer.frames()), 10)  # the frame stream ends too
        assert leftover <= 3, leftover  # at most the frame queue's content
        rest = [event async for event in host_events]
        assert isinstance(rest[-1], peerdesk.HostEvent.ENDED), rest

    run(scenario())


def test_any_buffer_is_pushed_without_a_copy_in_python(server):
    """bytes, bytearray, memoryview and numpy frames go in through the buffer protocol; a strided view is refused."""
    import numpy as np

    width, height = 320, 240
    picture = np.zeros((height, width, 4), dtype=np.uint8)
    picture[:, : width // 2] = (0, 0, 255, 255)  # BGRA red on the left
    picture[:, width // 2:] = (255, 0, 0, 255)  # blue on the right

    async def scenario():
        host = await peerdesk.share(server, ScreenSource.PUSHED(width=width, height=height),
                                    consent=lambda request: peerdesk.VIEW_ONLY, loopback=True)
        for data in (picture, picture.tobytes(), bytearray(picture.tobytes()), memoryview(picture.tobytes())):
            host.push_frame(data, width, height, width * 4)
        viewer = await peerdesk.join(server, host.code, "pytest", loopback=True)
        host.push_frame(picture, width, height, width * 4, timestamp_us=1)
        frame = await asyncio.wait_for(anext(viewer.frames(count=1)), 20)
        rgba = frame.rgba()
        left = rgba[(120 * width + 40) * 4:(120 * width + 40) * 4 + 3]
        assert abs(left[0] - 255) < 20 and left[2] < 30, left
        with pytest.raises(TypeError):
            host.push_frame(picture[:, ::2], width // 2, height, width * 4)
        with pytest.raises(FrameError.BadBuffer):
            host.push_frame(bytearray(100), width, height, width * 4)
        await viewer.leave()
        await host.end()

    run(scenario())


def test_errors_map_to_exceptions(server):
    with pytest.raises(SessionError.InvalidCode):
        run(peerdesk.join(server, "0000000000", "pytest", loopback=True))
    with pytest.raises(SessionError.Connection):
        run(peerdesk.join("ws://127.0.0.1:9/ws", "0000000000", "pytest", loopback=True))


def test_a_session_over_wss_with_a_private_ca(tls_server):
    url, ca_pem = tls_server

    async def scenario():
        host = await peerdesk.share(url, ScreenSource.SYNTHETIC(width=320, height=240),
                                    consent=lambda request: Permissions(control=False, clipboard=False),
                                    loopback=True, trusted_ca_pem=ca_pem)
        viewer = await peerdesk.join(url, host.code, "pytest", loopback=True, trusted_ca_pem=ca_pem)
        frames = [frame async for frame in viewer.frames(count=3)]
        assert len(frames) == 3
        await viewer.leave()
        # Without the CA, the server's certificate is refused.
        with pytest.raises(SessionError.Connection):
            await peerdesk.join(url, host.code, "pytest", loopback=True)
        await host.end()

    run(scenario())


def _totp(secret_base32: str, at: float) -> str:
    """RFC 6238 (SHA-1, 30 s, 6 digits) written independently of the SDK, as an authenticator app computes it."""
    import base64
    import hashlib
    import hmac
    import struct

    key = base64.b32decode(secret_base32 + "=" * (-len(secret_base32) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


def test_unattended_access_with_secret_and_totp(server, tmp_path):
    import time

    key, policy = str(tmp_path / "device.key"), str(tmp_path / "access.json")
    totp_secret = peerdesk.add_technician_access(policy, "alex", "correct horse battery", peerdesk.CONTROL,
                                                 ask_customer=False, with_totp=True)
    assert totp_secret and "correct horse" not in (tmp_path / "access.json").read_text()
    device_id = peerdesk.device_id_of_key(key)
    events = []

    async def scenario():
        host = await peerdesk.share(server, ScreenSource.SYNTHETIC(width=320, height=240),
                                    consent=lambda request: None, loopback=True, device_key_path=key,
                                    access_policy_path=policy, on_event=events.append)
        assert host.device_id == device_id
        viewer = await peerdesk.join_device(server, device_id, "alex", "correct horse battery",
                                            totp_code=_totp(totp_secret, time.time()), loopback=True)
        assert viewer.viewer.permissions() == peerdesk.CONTROL
        assert viewer.device_public_key is not None and len(viewer.device_public_key) == 32
        assert len([frame async for frame in viewer.frames(count=3)]) == 3
        await viewer.leave()
        with pytest.raises(SessionError.AuthenticationFailed) as failed:
            await peerdesk.join_device(server, device_id, "alex", "wrong horse battery",
                                       totp_code=_totp(totp_secret, time.time()), loopback=True)
        assert failed.value.retry_after_secs == 1
        await host.end()

    run(scenario())
    assert any(isinstance(e, peerdesk.HostEvent.UNATTENDED_ACCESS) and e.access == "alex" for e in events), events
