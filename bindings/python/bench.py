"""Binding benchmark: what crossing into Python costs per frame, beside what the Rust side does.

Run after bindings/python/test.sh has built the package:  target/python-venv/bin/python bindings/python/bench.py

Measures on a 1080p session over loopback (signaling server process, host with pushed frames, viewer here):
- push_frame of a 1920x1080 BGRA frame from Python bytes (p50/p95 ms),
- taking a ready decoded frame: next_frame + zero-copy Y-plane memoryview + stamp-free accessors (p50/p95 ms),
- frames per second a Python viewer sustains against the synthetic 1080p desktop at 30 fps.
"""

import asyncio
import os
import pathlib
import statistics
import subprocess
import threading
import time

import peerdesk
import numpy as np
from peerdesk import ScreenSource

ROOT = pathlib.Path(__file__).resolve().parents[2]


def start_server():
    binary = ROOT / "target" / "ci" / "peerdesk-signaling-server"
    proc = subprocess.Popen([str(binary), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
    line = proc.stdout.readline()
    return proc, f"ws://{line.split()[-1]}/ws"


PUSH_NUMPY = os.environ.get("PEERDESK_BENCH_PUSH") == "numpy"


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round((len(values) - 1) * p)))]


async def bench(url):
    width, height = 1920, 1080
    picture = bytes(range(256)) * (width * height * 4 // 256)
    host = await peerdesk.share(url, ScreenSource.PUSHED(width=width, height=height),
                                consent=lambda request: peerdesk.VIEW_ONLY, loopback=True)
    push_ms = []
    stop = threading.Event()

    def pusher():
        frame = 0
        while not stop.is_set():
            data = bytearray(picture)
            data[frame % 1000] ^= 0xFF  # a change, so the frame is encoded
            # PEERDESK_BENCH_PUSH=numpy hands in a numpy array (the buffer protocol) instead of bytes.
            data = np.frombuffer(data, dtype=np.uint8) if PUSH_NUMPY else bytes(data)
            t = time.perf_counter()
            host.push_frame(data, width, height, width * 4, timestamp_us=frame * 33_333)
            push_ms.append((time.perf_counter() - t) * 1000)
            frame += 1
            stop.wait(1 / 30)

    thread = threading.Thread(target=pusher)
    thread.start()
    viewer = await peerdesk.join(url, host.code, "bench", loopback=True)
    take_ms = []
    for _ in range(60):
        time.sleep(0.05)  # let a frame be ready, so only the taking is timed
        t = time.perf_counter()
        inner = viewer.viewer.next_frame(0)
        if inner is None:
            continue
        frame = peerdesk.Frame(inner)
        y = frame.plane(0)
        _ = (frame.width, frame.height, frame.stride(0), len(y))
        take_ms.append((time.perf_counter() - t) * 1000)
        frame.close()
    stop.set()
    thread.join()
    await viewer.leave()
    await host.end()

    # A Python viewer on the demo workload: the synthetic 1080p desktop at 30 fps.
    host = await peerdesk.share(url, ScreenSource.SYNTHETIC(width=1920, height=1080),
                                consent=lambda request: peerdesk.VIEW_ONLY, loopback=True)
    viewer = await peerdesk.join(url, host.code, "bench", loopback=True)
    for frame in viewer.frames_blocking(count=10):
        frame.close()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < 5:
        for frame in viewer.frames_blocking(count=1):
            _ = frame.plane(0)
            frame.close()
            count += 1
    fps = count / (time.perf_counter() - start)
    await viewer.leave()
    await host.end()

    print(f"python push_frame 1080p BGRA from {'a numpy array' if PUSH_NUMPY else 'bytes'}: p50 {statistics.median(push_ms):.2f} ms, p95 {pct(push_ms, 0.95):.2f} ms "
          f"({len(push_ms)} calls)")
    print(f"python take a ready frame (next_frame + Y memoryview): p50 {statistics.median(take_ms):.3f} ms, "
          f"p95 {pct(take_ms, 0.95):.3f} ms ({len(take_ms)} frames)")
    print(f"python viewer on the 1080p30 synthetic desktop: {fps:.1f} fps")


if __name__ == "__main__":
    proc, url = start_server()
    try:
        asyncio.run(bench(url))
    finally:
        proc.terminate()
        proc.wait()
